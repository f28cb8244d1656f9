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

    /// The script a delivery with `options` runs, nil for none: the file
    /// given; else a virtual mailbox's own `.notmuch/deliver.sieve`, if it
    /// has one; else `deliver.sieve` from the notmuch config. Found as
    /// `RulesLoader.path(for:)` finds the rules file.
    public static func path(for options: DeliveryOptions) throws(DeliveryError) -> String? {
        var options = options
        if options.sieve == .configured, let template = options.mailRootTemplate {
            guard let recipient = options.envelope.recipient else {
                throw DeliveryError(.usage, "--mail-root needs the recipient: pass --recipient ADDR")
            }
            options.databasePath = try VirtualMailbox.path(template: template, recipient: recipient)
        }
        return try path(for: options) { () throws(DeliveryError) -> String? in
            let loaded: Database.LoadedConfig
            do {
                loaded = try Database.loadConfig(config: options.config, profile: options.profile)
            } catch {
                throw DeliveryError(.temporary, "cannot load the notmuch configuration: \(error)")
            }
            return loaded.database.configValues(configKey).first
        }
    }

    static func path(for options: DeliveryOptions,
                     configured: () throws(DeliveryError) -> String?) throws(DeliveryError) -> String? {
        switch options.sieve {
        case .none: return nil
        case .file(let path): return path
        case .configured:
            if let mailbox = options.databasePath {
                let own = FilePath(mailbox).appending(".notmuch").appending(mailboxFileName)
                return FileSystem.kind(of: own) == .notADirectory ? own.string : nil
            }
            return try configured().map { RulesLoader.expand($0, home: options.home) }
        }
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
