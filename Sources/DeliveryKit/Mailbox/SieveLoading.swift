import MaildirKit
import Notmuch
import Rules
import Sieve
import SystemPackage

/// Finds and reads a delivery's Sieve script. As with a rules file, a
/// script that cannot be read or compiled costs its effects, never the
/// mail: the errors are logged and the delivery goes on without it.
public enum SieveLoader {
    /// The notmuch config key naming the script.
    public static let configKey = "deliver.sieve"
    /// The config key for the separator of the script's mailbox names.
    public static let separatorKey = "deliver.sieve_separator"
    /// A virtual mailbox's own script, in its `.notmuch` folder.
    public static let mailboxFileName = "deliver.sieve"

    /// The script and its errors (FILE:LINE:COLUMN: …), for `check-rules`.
    public static func compile(path: String) -> Result<SieveScript, SieveErrors> {
        let text: String
        do {
            text = try RulesLoader.readFile(path)
        } catch {
            return .failure(SieveErrors(errors: [SieveError(file: path, location: SieveLocation(line: 1, column: 1),
                                                            message: "cannot read the Sieve script: \(error)")]))
        }
        return SieveParser.parse(text, origin: path)
    }

    /// The `fileinto`s of the script whose folder no delivery can use, as
    /// FILE:LINE: messages, for `check-rules`; mailbox names read with the
    /// configured `deliver.sieve_separator` when the configuration can be read.
    public static func folderProblems(_ script: SieveScript, options: DeliveryOptions) -> [String] {
        let configured = try? Database.loadConfig(config: options.config, profile: options.profile)
            .database.configValues(separatorKey).first
        let separator = (try? Self.separator(configured ?? nil)) ?? SieveRules.defaultSeparator
        return SieveRules(script: script, separator: separator).folderProblems()
    }

    /// The script ready to run, or nil with its errors logged.
    static func loadLogging(path: String, separator: Character) -> SieveRules? {
        switch compile(path: path) {
        case .success(let script):
            return SieveRules(script: script, separator: separator)
        case .failure(let errors):
            for error in errors.errors {
                DeliveryLog.logger.error("\(error); delivering without the Sieve script until it is fixed (check with: notmuch-deliver check-rules)")
            }
            return nil
        }
    }

    /// `deliver.sieve_separator`: one character, `/` when unset.
    static func separator(_ configured: String?) throws(DeliveryError) -> Character {
        guard let configured, !configured.isEmpty else { return SieveRules.defaultSeparator }
        guard configured.count == 1, let character = configured.first else {
            throw DeliveryError.config("\(separatorKey) = '\(configured)' is not one character (such as . or /)")
        }
        return character
    }

    /// The script a delivery with `options` runs, nil for none: found as
    /// the rules file is (`ScriptLocation`).
    public static func path(for options: DeliveryOptions, recipient: String?) throws(DeliveryError) -> String? {
        try ScriptLocation.sieve.path(for: options, recipient: recipient)
    }

    static func path(for options: DeliveryOptions, mailboxRoot: String?,
                     configured: () throws(DeliveryError) -> String?) throws(DeliveryError) -> String? {
        try ScriptLocation.sieve.path(for: options, mailboxRoot: mailboxRoot, configured: configured)
    }
}

extension RulesLoader {
    /// A queued record's rules and Sieve script, read again when it is
    /// applied (paths "" or nil: none).
    static func loadLogging(rules rulesPath: String?, sieve sievePath: String?, separator: Character) -> RuleSet {
        var rules = (rulesPath ?? "").isEmpty ? RuleSet.empty : loadLogging(path: rulesPath!)
        if let sievePath, !sievePath.isEmpty {
            rules = rules.with(prelude: SieveLoader.loadLogging(path: sievePath, separator: separator))
        }
        return rules
    }
}

extension SieveLoader {
    /// Runs a script on the message in a file, with no database (a
    /// `notmuch` test is false): for `check-rules --sieve-actions`, which
    /// the differential test against Pigeonhole reads.
    public static func run(_ script: SieveScript, onMessageAt path: String, envelope: Envelope) throws(SieveError) -> SieveOutcome {
        try script.run(DeliveryFacts(path: path, envelope: envelope, database: nil, messageID: nil))
    }
}
