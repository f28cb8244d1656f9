import ArgumentParser
import DeliveryKit
import Notmuch
import Rules
import Sieve

struct CheckRules: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-rules",
        abstract: "Check a rules file or a Sieve script; exit 1 if it has errors.",
        discussion: "A file whose name ends in .sieve, or any file with --sieve, is checked as a Sieve script. "
            + "With --mail-root and --recipient, the virtual mailbox's own rules or script (deliver.rules "
            + "or deliver.sieve in its \(Database.folderName) folder) are checked, as a delivery reads them.")

    @Argument(help: "The rules file or Sieve script (default: deliver.rules, or with --sieve deliver.sieve, from the notmuch config).")
    var file: String?

    @OptionGroup var notmuch: NotmuchConfigArguments

    /// --recipient alone is the envelope of --sieve-actions.
    @OptionGroup var mailbox: VirtualMailboxArguments

    @Flag(help: "Check a Sieve script, whatever its name.")
    var sieve = false

    @Option(help: ArgumentHelp("Run the Sieve script on this message (no database: notmuch tests are false) and print "
                               + "its actions, one per line: 'store MAILBOX FLAGS…' or 'discard'; --recipient "
                               + "and --sender give its envelope.", valueName: "message"))
    var sieveActions: String?

    @Option(help: "With --sieve-actions: the envelope sender.")
    var sender: String?

    func validate() throws {
        // --recipient alone is the envelope of --sieve-actions.
        if mailbox.mailRoot != nil ? mailbox.recipient == nil : (mailbox.recipient != nil && sieveActions == nil) {
            throw ValidationError("--mail-root and --recipient go together")
        }
        if sender != nil, sieveActions == nil {
            throw ValidationError("--sender goes with --sieve-actions")
        }
    }

    private var checksSieve: Bool { sieve || sieveActions != nil || (file?.hasSuffix(".sieve") ?? false) }

    func run() throws {
        // Found as a delivery finds it, so that what is checked is what is applied.
        var options = DeliveryOptions()
        notmuch.apply(to: &options)
        options.rules = file.map { .file($0) } ?? .configured
        options.sieve = file.map { .file($0) } ?? .configured
        options.mailRootTemplate = mailbox.mailRoot
        let recipient = mailbox.mailRoot == nil ? nil : mailbox.recipient
        let found: String?
        do {
            found = try checksSieve ? SieveLoader.path(for: options, recipient: recipient)
                : RulesLoader.path(for: options, recipient: recipient)
        } catch {
            complain(error.message)
            throw ExitCode(1)
        }
        guard let path = found else {
            let (key, name) = checksSieve ? (SieveLoader.configKey, "Sieve script") : (RulesLoader.configKey, "rules file")
            complain(mailbox.mailRoot == nil
                     ? "no \(name): give one, or set \(key) in the notmuch config"
                     : "no \(name): give one, or write \(key) in the mailbox's .notmuch folder")
            throw ExitCode(1)
        }
        if checksSieve { try checkSieve(path, options: options); return }
        let text: String
        do { text = try RulesLoader.readFile(path) } catch {
            complain("\(path): cannot read: \(error)")
            throw ExitCode(1)
        }
        let (rules, errors) = RuleParser.parse(text, origin: path)
        for error in errors { diagnostic("\(error)") }
        for warning in rules.warnings { diagnostic("\(warning)") }
        guard errors.isEmpty else { throw ExitCode(1) }
        print("\(path): \(rules.rules.count) rules, no errors")
    }

    private func checkSieve(_ path: String, options: DeliveryOptions) throws {
        let script: SieveScript
        switch SieveLoader.compile(path: path) {
        case .success(let compiled): script = compiled
        case .failure(let errors):
            for error in errors.errors { diagnostic("\(error)") }
            throw ExitCode(1)
        }
        let folderProblems = SieveLoader.folderProblems(script, options: options)
        for problem in folderProblems { diagnostic(problem) }
        guard let message = sieveActions else {
            // The actions of --sieve-actions are Sieve's, whatever the folders.
            guard folderProblems.isEmpty else { throw ExitCode(1) }
            print("\(path): Sieve script, no errors")
            return
        }
        do {
            let outcome = try SieveLoader.run(script, onMessageAt: message, envelope: Envelope(recipient: mailbox.recipient, sender: sender))
            for line in outcome.normalised { print(line) }
        } catch {
            complain("\(error)")
            throw ExitCode(1)
        }
    }
}
