import ArgumentParser
import DeliveryKit
import Notmuch
import SystemPackage

extension DecryptPolicy: ExpressibleByArgument {}

@main
struct NotmuchDeliver: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notmuch-deliver",
        abstract: "Deliver one message from standard input into a maildir and index it with notmuch.",
        discussion: """
            Accepts the command line of 'notmuch insert'. Exit status: 0 delivered and indexed; \
            64 usage error; 65 the input is not a message; 75 temporary failure (the MTA retries).
            """)

    @Option(name: .customLong("folder"), help: "Maildir folder, relative to database.mail_root.")
    var folder: String?

    @Flag(help: "Create the folder if it does not exist.")
    var createFolder = false

    @Flag(help: "Keep the delivered file even if indexing fails.")
    var keep = false

    @Flag(name: [.customLong("no-hooks"), .customShort("n")], help: "Do not run the post-insert hook.")
    var noHooks = false

    @Flag(help: "Make the file readable by everyone (0644, less the umask) instead of 0600.")
    var worldReadable = false

    @Option(help: "How to index encrypted parts: false, true, auto or nostash.")
    var decrypt: DecryptPolicy?

    @Option(name: .customLong("tag"), help: "Add this tag (repeatable).")
    var addTags: [String] = []

    @Option(name: .customLong("remove-tag"), help: "Remove this tag (repeatable).")
    var removeTags: [String] = []

    @Option(help: "The notmuch config file (default: as notmuch finds it).")
    var config: String?

    @Option(help: "The notmuch profile.")
    var profile: String?

    @Argument(parsing: .allUnrecognized, help: "Tag operations: +TAG adds, -TAG removes, in order.")
    var tagOperations: [String] = []

    /// ArgumentParser would read `-inbox` as the short flags -i -n -b -o -x,
    /// so tag operations are taken out of the command line before it parses.
    static func main() {
        let (operations, rest) = splitTagOperations(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parse(rest)
            command.tagOperations += operations
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    /// Options whose value may follow as the next argument.
    static let optionsWithValue: Set<String> = ["--folder", "--decrypt", "--tag", "--remove-tag", "--config", "--profile"]
    static let shortFlags: Set<String> = ["-n", "-h"]

    static func splitTagOperations(_ arguments: [String]) -> (operations: [String], rest: [String]) {
        var operations: [String] = []
        var rest: [String] = []
        var valueExpected = false
        for argument in arguments {
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

    func run() throws {
        do {
            let report = try Delivery.deliver(try options(), input: .standardInput)
            if let warning = report.warning { complain("warning: \(warning)") }
        } catch {
            complain(error.message)
            throw ExitCode(error.exitStatus.rawValue)
        }
    }

    func options() throws(DeliveryError) -> DeliveryOptions {
        var options = DeliveryOptions()
        options.folder = folder
        options.createFolder = createFolder
        options.keep = keep
        options.runHooks = !noHooks
        options.worldReadable = worldReadable
        options.decrypt = decrypt
        options.config = config.map { .file($0) } ?? .search
        options.profile = profile
        for tag in addTags { options.tagOperations.append(try TagOperation(parsing: "+" + tag)) }
        for tag in removeTags { options.tagOperations.append(try TagOperation(parsing: "-" + tag)) }
        for argument in tagOperations {
            if argument.hasPrefix("--") {
                throw DeliveryError(.usage, "unknown option '\(argument)'; see --help")
            }
            options.tagOperations.append(try TagOperation(parsing: argument))
        }
        return options
    }
}

/// One line on stderr, prefixed with the program's name.
func complain(_ line: String) {
    var text = "notmuch-deliver: \(line)\n"
    text.withUTF8 { bytes in _ = try? FileDescriptor.standardError.writeAll(bytes) }
}
