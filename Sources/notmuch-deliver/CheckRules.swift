import ArgumentParser
import DeliveryKit
import Rules

struct CheckRules: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-rules",
        abstract: "Check a rules file; exit 1 if it has errors.")

    @Argument(help: "The rules file (default: deliver.rules from the notmuch config).")
    var file: String?

    @OptionGroup var notmuch: NotmuchConfigArguments

    @Option(help: ArgumentHelp("With --recipient: check the virtual mailbox's own rules, which a delivery "
                               + "with this --mail-root reads (its .notmuch/deliver.rules).",
                               valueName: "template"))
    var mailRoot: String?

    @Option(help: "With --mail-root: the address whose mailbox it is.")
    var recipient: String?

    func validate() throws {
        if (mailRoot == nil) != (recipient == nil) {
            throw ValidationError("--mail-root and --recipient go together")
        }
    }

    func run() throws {
        // Found as a delivery finds it, so that what is checked is what is applied.
        var options = DeliveryOptions()
        notmuch.apply(to: &options)
        options.rules = file.map { .file($0) } ?? .configured
        options.mailRootTemplate = mailRoot
        options.envelope = Envelope(recipient: recipient)
        let found: String?
        do { found = try RulesLoader.path(for: options) } catch {
            complain(error.message)
            throw ExitCode(1)
        }
        guard let path = found else {
            complain(mailRoot == nil
                     ? "no rules file: give one, or set \(RulesLoader.configKey) in the notmuch config"
                     : "no rules file: give one, or write deliver.rules in the mailbox's .notmuch folder")
            throw ExitCode(1)
        }
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
}
