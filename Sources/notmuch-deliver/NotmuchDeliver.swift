import ArgumentParser
import MaildirKit

@main
struct NotmuchDeliver: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notmuch-deliver",
        abstract: "Deliver one message from standard input into a maildir and index it with notmuch.",
        discussion: """
            Accepts the command line of 'notmuch insert'. Exit status: 0 delivered and indexed; \
            64 usage error; 65 the input is not a message; 75 temporary failure (the MTA retries); \
            77 over quota with --quota-permanent.
            """,
        version: notmuchDeliverVersion,
        subcommands: [Deliver.self, CheckRules.self, Explain.self, Flush.self, Import.self, Quota.self, Lmtp.self, WatchCommand.self],
        defaultSubcommand: Deliver.self)

    static let subcommandNames: Set<String> = ["deliver", "check-rules", "explain", "flush", "import", "quota", "lmtp", "watch", "help"]

    /// ArgumentParser would read `-inbox` as the short flags -i -n -b -o -x,
    /// so tag operations are taken out of the command line before it parses.
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        // A virtual mailbox is its own home (see VirtualMailbox.becomeHome).
        if !arguments.contains(where: { $0.hasPrefix("--mail-root") }) { ProcessSetup.ensureHome() }
        let subcommand = arguments.first.flatMap { subcommandNames.contains($0) ? $0 : nil }
        if subcommand == "lmtp" || subcommand == "watch" { ProcessSetup.ensureMallocForGLib() }
        if ["check-rules", "flush", "import", "quota", "lmtp", "watch", "help"].contains(subcommand) || isRootOption(arguments.first) {
            main(arguments)
            return
        }
        if subcommand != nil { arguments.removeFirst() }
        let (operations, rest) = splitTagOperations(arguments)
        if subcommand != "explain", var request = QuickCommandLine.deliveryRequest(rest) {
            request.tagOperations += operations
            ProcessEnvironment.exitImmediately(request.deliver())
        }
        do {
            if subcommand == "explain" {
                var command = try Explain.parse(rest)
                command.delivery.tagOperations += operations
                try command.run()
            } else {
                var command = try Deliver.parse(rest)
                command.delivery.tagOperations += operations
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    /// The options of the program itself, which the root command answers:
    /// `--version`, `--help` listing the subcommands, and completion scripts.
    static func isRootOption(_ argument: String?) -> Bool {
        guard let argument else { return false }
        return ["--version", "--help", "-h"].contains(argument)
            || argument.hasPrefix("--generate-completion-script")
    }

    /// Options whose value may follow as the next argument.
    static let optionsWithValue = Set(QuickCommandLine.options.keys)
    /// Flags that look like tag operations; `-h` is help's.
    static let shortFlags = Set(QuickCommandLine.flags.keys.filter { !$0.hasPrefix("--") }).union(["-h"])

    static func splitTagOperations(_ arguments: [String]) -> (operations: [String], rest: [String]) {
        var operations: [String] = []
        var rest: [String] = []
        var valueExpected = false
        for argument in arguments {
            // ArgumentParser reads `--folder=` as a missing value; notmuch
            // insert as the top-level folder.
            if argument == "--folder=" && !valueExpected {
                rest += ["--folder", ""]
                continue
            }
            let isOperation = argument.hasPrefix("+")
                || (argument.hasPrefix("-") && !argument.hasPrefix("--") && !shortFlags.contains(argument))
            if isOperation && !valueExpected {
                operations.append(argument)
            } else {
                rest.append(argument)
            }
            valueExpected = optionsWithValue.contains(argument)
        }
        return (operations, rest)
    }
}
