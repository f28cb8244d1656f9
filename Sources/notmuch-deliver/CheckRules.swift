import ArgumentParser
import DeliveryKit
import Notmuch
import Rules

struct CheckRules: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-rules",
        abstract: "Check a rules file; exit 1 if it has errors.")

    @Argument(help: "The rules file (default: deliver.rules from the notmuch config).")
    var file: String?

    @OptionGroup var notmuch: NotmuchConfigArguments

    func run() throws {
        guard let path = file ?? configuredRulesPath() else {
            complain("no rules file: give one, or set \(RulesLoader.configKey) in the notmuch config")
            throw ExitCode(1)
        }
        let text: String
        do { text = try RulesLoader.readFile(path) } catch {
            complain("\(path): cannot read: \(error)")
            throw ExitCode(1)
        }
        let (rules, errors) = RuleParser.parse(text, origin: path)
        for error in errors { print(error) }
        for warning in rules.warnings { print(warning) }
        guard errors.isEmpty else { throw ExitCode(1) }
        print("\(path): \(rules.rules.count) rules, no errors")
    }

    func configuredRulesPath() -> String? {
        let source: ConfigSource = notmuch.config.map { .file($0) } ?? .search
        guard let loaded = try? Database.loadConfig(config: source, profile: notmuch.profile) else { return nil }
        return loaded.database.configValues(RulesLoader.configKey).first
            .map { RulesLoader.expand($0, home: ProcessEnvironment.value("HOME")) }
    }
}
