import Logging
import Notmuch
import Rules
import Sieve
import SystemPackage
import MaildirKit

/// Where the rules come from.
public enum RulesSource: Sendable, Equatable {
    /// The file named by `deliver.rules` in the notmuch config, if any.
    case configured
    case file(String)
    case none
}

/// What a front door was started with: where the configuration and the
/// rules come from, the mailboxes it serves, quotas and timeouts. Built once
/// from the command line and the same for every message; each message's own
/// envelope and filing are a `MessageRequest`.
public struct DeliveryOptions: Sendable {
    /// The filing the command line asks for, which each message's request
    /// starts from.
    public var filing = Filing()
    public var runHooks = true
    public var config: ConfigSource = .search
    public var profile: String?
    public var rules: RulesSource = .configured
    /// Where the Sieve script comes from (`deliver.sieve`, `--sieve`);
    /// it runs before the rules.
    public var sieve: RulesSource = .configured
    public var home: String?
    /// NOTMUCH_DELIVER_TIMINGS: where to append this delivery's phase times.
    public var timingsFile: String?
    /// A virtual mailbox: `/srv/vmail/%d/%u` names the mail root from the
    /// envelope recipient; the mailbox needs no notmuch config file, and its
    /// maildir and database are created on first delivery.
    public var mailRootTemplate: String?
    /// `--quota`, as written (checked with the configuration).
    public var quota: String?
    /// `--quota-warn`, as written: thresholds in percent (`80,95`), for
    /// mailboxes with no configuration of their own (virtual ones).
    public var quotaWarn: String?
    /// `--quota-permanent`: an over-quota refusal bounces.
    public var quotaPermanent = false

    /// How long to wait for the database's write lock before queueing;
    /// nil: `deliver.lock_timeout` from the config, else the default.
    public var lockTimeout: Double?

    /// The longest lock timeout taken: an hour, beyond any MTA's patience
    /// (postfix's command_time_limit is 1000 s). Infinity and NaN are no
    /// timeouts at all.
    public static let maximumLockTimeout = 3600.0

    /// Whether `seconds` can be a lock timeout.
    public static func isValidLockTimeout(_ seconds: Double) -> Bool {
        seconds.isFinite && seconds >= 0 && seconds <= maximumLockTimeout
    }

    public init() {}
}

/// What a delivery did.
public struct DeliveryReport: Sendable {
    /// How a delivery that succeeded ended; the log line says it by name.
    public enum Outcome: String, Sendable {
        /// Indexed, tagged by new.tags, the rules and the command line.
        case indexed
        /// Its Message-ID was in the database already: one more file of
        /// that message, whose tags stay as they are.
        case duplicate
        /// A rule discarded the message: nothing is stored.
        case discarded
        /// Durable in the maildir, and queued: the write lock did not come
        /// in time or the database could not be opened; the next delivery
        /// or `flush` indexes it.
        case queued
        /// Indexing failed and --keep kept the file for a later `notmuch new`.
        case keptUnindexed = "kept-unindexed"
    }

    /// The message's file, after any move or rename for maildir flags.
    public let path: String
    public let messageID: String?
    public let tags: [String]
    public let outcome: Outcome
    /// Set when the delivery succeeded in a degraded way (--keep).
    public let warning: String?
    /// Each rule's outcome, for `explain`.
    public let traces: [RuleTrace]
    /// For the log line; nil when not known without reading the file again.
    var from: String?
    var subject: String?
    public var mailRoot: String?
    /// A thread is still blocked in libnotmuch's lock wait (and may yet
    /// take the lock): run no hook that could wait for it.
    var abandonedLockWait = false

    static func queuedReport(_ path: FilePath, abandoned: Bool) -> DeliveryReport {
        var report = DeliveryReport(path: path.string, messageID: nil, tags: [], outcome: .queued,
                                    warning: nil, traces: [])
        report.abandonedLockWait = abandoned
        return report
    }
}

/// The settings a delivery reads from the notmuch configuration.
struct DeliverySettings: Sendable {
    let mailRoot: String
    let databasePath: String
    let newTags: [TagOperation]
    var synchronizeFlags: Bool
    let hookDirectory: String?
    /// `new.ignore`, for the watcher: read with the rest, so that it needs
    /// no second load of the configuration.
    let newIgnore: [String]
    let lockTimeout: Double
    var rules: RuleSet
    /// Where `rules` came from (nil: none), to find them again for a queued record.
    var rulesPath: String?
    /// Where the Sieve script in `rules` came from (nil: none), likewise.
    var sievePath: String?
    /// `deliver.sieve_separator`, for a queued record's script.
    var sieveSeparator: Character = SieveRules.defaultSeparator
    let quota: QuotaPolicy
    let quotaWarnings: QuotaWarnings

    /// `database.path`, which no delivery folder may be or be inside: the
    /// database's own folder, or the folder of its `.notmuch` (the mail
    /// root itself, then, which reserves nothing more than `.notmuch`).
    var databaseFolder: String { databasePath }

    /// The maildir for a folder name from any source, through the one gate
    /// (MailFolder) that refuses names that are not folders.
    func maildir(_ name: String?, create: Bool, worldReadable: Bool = false) throws(DeliveryError) -> Maildir {
        do {
            return try MailFolder.resolve(root: mailRoot, name: name, create: create, databaseFolder: databaseFolder,
                                          worldReadable: worldReadable)
        } catch { throw DeliveryError(error) }
    }

    /// A few seconds: long enough for a mail client's tagging, short
    /// enough that an MTA never waits on a `notmuch new` of hours.
    static let defaultLockTimeout = 5.0

    /// Reads the config without taking the database's write lock.
    /// `Mailboxes` is the one caller: nothing else reads settings.
    init(location: MailboxLocation, options: DeliveryOptions, rulesCache: RulesCache) throws(DeliveryError) {
        let loaded: Database.LoadedConfig
        if let problem = ConfigFileCheck.problem(location.config, profile: location.profile) {
            throw DeliveryError.config(problem)
        }
        do {
            loaded = try Database.loadConfig(config: location.config, profile: location.profile,
                                             databasePath: location.root)
        } catch {
            throw DeliveryError.config("cannot load the notmuch configuration: \(error)")
        }
        if case .file(let path) = location.config, loaded.missingConfigFile {
            throw DeliveryError.config("config file '\(path)' not found")
        }
        let database = loaded.database
        guard let mailRoot = database.mailRoot else {
            throw DeliveryError.config("no mail root: set database.mail_root (or database.path) in the notmuch config")
        }
        self.mailRoot = mailRoot
        self.databasePath = database.databasePath ?? mailRoot
        self.newTags = try TagOperation.fromNewTags(database.newTags)
        do { self.synchronizeFlags = try database.synchronizesFlags() } catch {
            throw DeliveryError.config("maildir.synchronize_flags: \(error)")
        }
        // --no-hooks: no hook of this process runs, whoever commits.
        self.hookDirectory = options.runHooks ? database.hookDirectory : nil
        self.newIgnore = database.configValues("new.ignore")
        if let timeout = options.lockTimeout {
            guard DeliveryOptions.isValidLockTimeout(timeout) else {
                throw DeliveryError(.usage, "lock timeout \(timeout) is not between 0 and \(Int(DeliveryOptions.maximumLockTimeout)) seconds")
            }
            self.lockTimeout = timeout
        } else if let text = database.configValues("deliver.lock_timeout").first {
            guard let value = Double(text), DeliveryOptions.isValidLockTimeout(value) else {
                throw DeliveryError.config("deliver.lock_timeout = '\(text)' is not a number of seconds "
                                           + "between 0 and \(Int(DeliveryOptions.maximumLockTimeout))")
            }
            self.lockTimeout = value
        } else {
            self.lockTimeout = Self.defaultLockTimeout
        }

        self.quota = try QuotaPolicy(options: options) { database.configValues($0).first }
        // Lists: notmuch splits `80;95` into its items already.
        self.quotaWarnings = try QuotaWarnings { key in
            if key == QuotaWarnings.thresholdsKey, let thresholds = options.quotaWarn { return thresholds }
            let items = database.configValues(key)
            return items.isEmpty ? nil : items.joined(separator: ";")
        }

        let rulesPath = try RulesLoader.path(for: options, mailboxRoot: location.root) {
            database.configValues(RulesLoader.configKey).first
        }
        self.rulesPath = rulesPath
        self.rules = rulesPath.map { rulesCache.rules(at: $0) } ?? .empty
        // The Sieve script runs first and feeds the same tags (see Docs/sieve.md).
        let sievePath = try SieveLoader.path(for: options, mailboxRoot: location.root) {
            database.configValues(SieveLoader.configKey).first
        }
        self.sievePath = sievePath
        self.sieveSeparator = try SieveLoader.separator(database.configValues(SieveLoader.separatorKey).first)
        if let sievePath {
            rules = rules.with(prelude: rulesCache.sieve(at: sievePath, separator: sieveSeparator))
        }
    }
}

