import Logging
import Notmuch
import Rules
import SystemPackage

/// Where the rules come from.
public enum RulesSource: Sendable, Equatable {
    /// The file named by `deliver.rules` in the notmuch config, if any.
    case configured
    case file(String)
    case none
}

/// What one delivery is asked to do: `notmuch insert`'s options, and ours.
public struct DeliveryOptions: Sendable {
    public var folder: String?
    public var createFolder = false
    /// Keep the file even when indexing fails (`notmuch new` picks it up later).
    public var keep = false
    public var runHooks = true
    public var worldReadable = false
    public var decrypt: DecryptPolicy?
    /// Command-line tag changes, applied after `new.tags` and the rules.
    public var tagOperations: [TagOperation] = []
    public var config: ConfigSource = .search
    public var profile: String?
    public var rules: RulesSource = .configured
    public var envelope = Envelope()
    public var home: String?
    /// NOTMUCH_DELIVER_TIMINGS: where to append this delivery's phase times.
    public var timingsFile: String?

    public init() {}
}

/// What a delivery did.
public struct DeliveryReport: Sendable {
    /// The message's file, after any move or rename for maildir flags.
    public let path: String
    public let messageID: String?
    public let tags: [String]
    /// False only with --keep, when indexing failed and the file was kept.
    public let indexed: Bool
    public let duplicate: Bool
    /// A rule discarded the message: nothing is stored.
    public let discarded: Bool
    /// Set when the delivery succeeded in a degraded way (--keep).
    public let warning: String?
    /// Each rule's outcome, for `explain`.
    public let traces: [RuleTrace]
}

/// The settings a delivery reads from the notmuch configuration.
struct DeliverySettings {
    let mailRoot: String
    let newTags: [TagOperation]
    let synchronizeFlags: Bool
    let hookDirectory: String?
    let rules: RuleSet

    /// Reads the config without taking the database's write lock.
    init(options: DeliveryOptions) throws(DeliveryError) {
        let loaded: Database.LoadedConfig
        do {
            loaded = try Database.loadConfig(config: options.config, profile: options.profile)
        } catch {
            throw DeliveryError.config("cannot load the notmuch configuration: \(error)")
        }
        if case .file(let path) = options.config, loaded.missingConfigFile {
            throw DeliveryError.config("config file '\(path)' not found")
        }
        let database = loaded.database
        guard let mailRoot = database.mailRoot else {
            throw DeliveryError.config("no mail root: set database.mail_root (or database.path) in the notmuch config")
        }
        self.mailRoot = mailRoot
        self.newTags = try TagOperation.fromNewTags(database.newTags)
        do { self.synchronizeFlags = try database.synchronizesFlags() } catch {
            throw DeliveryError.config("maildir.synchronize_flags: \(error)")
        }
        self.hookDirectory = database.hookDirectory

        let rulesPath: String?
        switch options.rules {
        case .none: rulesPath = nil
        case .file(let path): rulesPath = path
        case .configured: rulesPath = database.configValues(RulesLoader.configKey).first
                .map { RulesLoader.expand($0, home: options.home) }
        }
        if let rulesPath {
            let (rules, errors) = RulesLoader.load(path: rulesPath)
            for error in errors { DeliveryLog.logger.error("\(error)") }
            self.rules = rules
        } else {
            self.rules = .empty
        }
    }
}

/// Delivers one message: durable in the maildir first, then indexed, tagged
/// by `new.tags`, the rules and the command line, moved to the folder a rule
/// chose, all in one atomic section committed before it returns.
public enum Delivery {
    public static func deliver(_ options: DeliveryOptions, input: FileDescriptor) throws(DeliveryError) -> DeliveryReport {
        var timer = PhaseTimer(path: options.timingsFile)
        defer { timer.write() }
        let settings = try DeliverySettings(options: options)
        timer.mark("config")
        let maildir = try MailFolder.resolve(root: settings.mailRoot, name: options.folder,
                                             create: options.createFolder)
        let file = try write(input, to: maildir, worldReadable: options.worldReadable)
        timer.mark("write")

        let report: DeliveryReport
        do {
            report = try index(file, settings: settings, options: options, commit: true, timer: &timer)
        } catch let failure {
            guard options.keep, failure.kind != .usage else {
                Maildir.discard(file.current)
                throw failure
            }
            return DeliveryReport(path: file.current.string, messageID: nil, tags: [], indexed: false,
                                  duplicate: false, discarded: false,
                                  warning: "\(failure.message); kept '\(file.current)' for a later 'notmuch new'",
                                  traces: [])
        }
        if report.discarded {
            DeliveryLog.logger.notice("discarded \(report.messageID ?? "(no Message-ID)") by rule")
        }
        if options.runHooks, let hooks = settings.hookDirectory {
            Hook.run("post-insert", in: hooks)
        }
        timer.mark("hook")
        return report
    }

    /// Runs the whole delivery but stores nothing: the message goes through
    /// a scratch file in the mail root's tmp/ and an atomic section that is
    /// never committed. For `explain`.
    public static func explain(_ options: DeliveryOptions, input: FileDescriptor) throws(DeliveryError) -> DeliveryReport {
        let settings = try DeliverySettings(options: options)
        let scratch = try MailFolder.resolve(root: settings.mailRoot, name: nil, create: false)
        let file = try write(input, to: scratch, worldReadable: false, into: scratch.tmp)
        defer { Maildir.discard(file.current) }
        var timer = PhaseTimer(path: nil)
        return try index(file, settings: settings, options: options, commit: false, timer: &timer)
    }

    /// Where the delivered file is now: rules and flags may move it.
    final class DeliveredFile {
        let original: FilePath
        var current: FilePath
        init(_ path: FilePath) { original = path; current = path }
    }

    static func write(_ input: FileDescriptor, to maildir: Maildir, worldReadable: Bool,
                      into directory: FilePath? = nil) throws(DeliveryError) -> DeliveredFile {
        let permissions: FilePermissions = worldReadable ? [.ownerReadWrite, .groupRead, .otherRead] : .ownerReadWrite
        do {
            return DeliveredFile(try maildir.deliver(from: input, permissions: permissions, into: directory))
        } catch {
            switch error {
            case .emptyInput:
                throw DeliveryError(.notAMessage, "empty input: no message on standard input")
            case .read(let errno):
                throw DeliveryError(.temporary, "cannot read the message from standard input: \(errno)")
            case .write(let errno, let path):
                throw DeliveryError(.temporary, "cannot write '\(path)': \(errno)")
            }
        }
    }

    /// Thrown out of the atomic section to leave it uncommitted.
    private struct Uncommitted: Error { let report: DeliveryReport }

    static func index(_ file: DeliveredFile, settings: DeliverySettings, options: DeliveryOptions,
                      commit: Bool, timer: inout PhaseTimer) throws(DeliveryError) -> DeliveryReport {
        let database: Database
        do {
            database = try Database.open(mode: .readWrite, config: options.config, profile: options.profile)
        } catch {
            throw DeliveryError(.temporary, "cannot open the notmuch database: \(error)")
        }
        timer.mark("open")
        var moves: [FilePath] = []
        do {
            let report = try database.atomically {
                let report = try tagAndFile(file, database: database, settings: settings, options: options,
                                            commit: commit, moves: &moves)
                if !commit { throw Uncommitted(report: report) }
                return report
            }
            timer.mark("index")
            try database.close()
            try makeDurable(moves)
            timer.mark("commit")
            return report
        } catch let uncommitted as Uncommitted {
            return uncommitted.report
        } catch let error as NotmuchError where error.status == .fileNotEmail {
            throw DeliveryError(.notAMessage, "the input is not an email message (no From, Subject or To header)")
        } catch let error as DeliveryError {
            throw error
        } catch {
            throw DeliveryError(.temporary, "cannot index '\(file.current)': \(error)")
        }
    }

    /// The work of the atomic section. `moves` collects directories whose
    /// entries changed after new/ was synced, to sync once committed.
    private static func tagAndFile(_ file: DeliveredFile, database: Database, settings: DeliverySettings,
                                   options: DeliveryOptions, commit: Bool,
                                   moves: inout [FilePath]) throws -> DeliveryReport {
        let indexed = try database.indexFile(file.original.string, decrypt: options.decrypt)
        var message = indexed.message
        // A known Message-ID: this file is one more copy; its tags stay as they are.
        guard !indexed.isDuplicate else {
            if settings.synchronizeFlags { try syncFlags(message, file, &moves) }
            return report(file, message, duplicate: true, traces: [])
        }
        for operation in settings.newTags { try apply(operation, to: message) }

        var folder: String?
        var discard = false
        let facts = DeliveryFacts(path: file.original.string, envelope: options.envelope,
                                  database: database, messageID: message.id)
        let traces = try settings.rules.evaluate(facts) { effect in
            switch effect {
            case .addTag(let tag): try message.addTag(tag)
            case .removeTag(let tag): try message.removeTag(tag)
            case .folder(let name): folder = name
            case .discard: discard = true
            }
        }
        if discard {
            try database.removeFile(file.original.string)
            try FileSystem.unlink(file.original)
            moves.append(file.original.removingLastComponent())
            return DeliveryReport(path: file.original.string, messageID: message.id, tags: [], indexed: true,
                                  duplicate: false, discarded: true, warning: nil, traces: traces)
        }
        try message.withTagsFrozen {
            for operation in options.tagOperations { try apply(operation, to: message) }
        }
        // `explain` only reports the folder; it creates and moves nothing.
        if commit, let folder, let target = try movingTarget(folder, settings: settings, file: file) {
            let source = file.current
            try FileSystem.rename(source, target)
            file.current = target
            moves += [source.removingLastComponent(), target.removingLastComponent()]
            // The new name first: removing the only name would remove the message.
            _ = try database.indexFile(target.string, decrypt: options.decrypt)
            try database.removeFile(source.string)
            // libnotmuch caches a message's filenames; ask again for the current ones.
            guard let moved = try database.findMessage(id: message.id) else { throw NotmuchError(.fileError) }
            message = moved
        }
        if settings.synchronizeFlags { try syncFlags(message, file, &moves) }
        return report(file, message, duplicate: false, traces: traces)
    }

    private static func apply(_ operation: TagOperation, to message: Message) throws {
        switch operation {
        case .add(let tag): try message.addTag(tag)
        case .remove(let tag): try message.removeTag(tag)
        }
    }

    /// The path in the rule's folder (created if missing), or nil if the file is there already.
    private static func movingTarget(_ folder: String, settings: DeliverySettings,
                                     file: DeliveredFile) throws -> FilePath? {
        let maildir = try MailFolder.resolve(root: settings.mailRoot, name: folder, create: true)
        guard let name = file.current.lastComponent else { return nil }
        let target = maildir.new.appending(name)
        return target == file.current ? nil : target
    }

    private static func syncFlags(_ message: Message, _ file: DeliveredFile, _ moves: inout [FilePath]) throws {
        try message.syncTagsToMaildirFlags()
        let renamed = currentPath(of: file.current, among: message.filenames)
        if renamed != file.current {
            moves += [file.current.removingLastComponent(), renamed.removingLastComponent()]
            file.current = renamed
        }
    }

    private static func report(_ file: DeliveredFile, _ message: Message, duplicate: Bool,
                               traces: [RuleTrace]) -> DeliveryReport {
        DeliveryReport(path: file.current.string, messageID: message.id, tags: message.tags, indexed: true,
                       duplicate: duplicate, discarded: false, warning: nil, traces: traces)
    }

    /// The file's name after a flag rename keeps its unique part (before ':2,').
    static func currentPath(of original: FilePath, among filenames: [String]) -> FilePath {
        guard let base = original.lastComponent?.string else { return original }
        for name in filenames {
            let path = FilePath(name)
            guard let last = path.lastComponent?.string else { continue }
            if last == base || last.hasPrefix(base + ":") { return path }
        }
        return original
    }

    /// Renames and removals inside the transaction touched these
    /// directories; once committed, their entries must reach the disk.
    static func makeDurable(_ directories: [FilePath]) throws(DeliveryError) {
        var seen = Set<FilePath>()
        for directory in directories where seen.insert(directory).inserted {
            do { try FileSystem.fsyncDirectory(directory) } catch {
                throw DeliveryError(.temporary, "cannot sync '\(directory)': \(error)")
            }
        }
    }
}
