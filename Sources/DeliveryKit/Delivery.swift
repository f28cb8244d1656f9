import Notmuch
import SystemPackage

/// What one delivery is asked to do: `notmuch insert`'s options.
public struct DeliveryOptions: Sendable {
    public var folder: String?
    public var createFolder = false
    /// Keep the file even when indexing fails (`notmuch new` picks it up later).
    public var keep = false
    public var runHooks = true
    public var worldReadable = false
    public var decrypt: DecryptPolicy?
    /// Command-line tag changes, applied after `new.tags`.
    public var tagOperations: [TagOperation] = []
    public var config: ConfigSource = .search
    public var profile: String?

    public init() {}
}

/// What a delivery did.
public struct DeliveryReport: Sendable {
    /// The message's file, after any rename for maildir flags.
    public let path: String
    public let messageID: String?
    public let tags: [String]
    /// False only with --keep, when indexing failed and the file was kept.
    public let indexed: Bool
    public let duplicate: Bool
    /// Set when the delivery succeeded in a degraded way (--keep).
    public let warning: String?
}

/// The settings a delivery reads from the notmuch configuration.
struct DeliverySettings {
    let mailRoot: String
    let newTags: [TagOperation]
    let synchronizeFlags: Bool
    let hookDirectory: String?

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
    }
}

/// Delivers one message: durable in the maildir first, then indexed and
/// tagged in one atomic section, committed before it returns.
public enum Delivery {
    public static func deliver(_ options: DeliveryOptions, input: FileDescriptor) throws(DeliveryError) -> DeliveryReport {
        let settings = try DeliverySettings(options: options)
        let maildir = try MailFolder.resolve(root: settings.mailRoot, name: options.folder,
                                             create: options.createFolder)
        let file = try write(input, to: maildir, worldReadable: options.worldReadable)

        let report: DeliveryReport
        do {
            report = try index(file, settings: settings, options: options)
        } catch let failure {
            guard options.keep else {
                Maildir.discard(file.current)
                throw failure
            }
            return DeliveryReport(path: file.current.string, messageID: nil, tags: [], indexed: false,
                                  duplicate: false,
                                  warning: "\(failure.message); kept '\(file.current)' for a later 'notmuch new'")
        }
        if options.runHooks, let hooks = settings.hookDirectory {
            Hook.run("post-insert", in: hooks)
        }
        return report
    }

    /// Where the delivered file is now: libnotmuch may rename it for flags.
    final class DeliveredFile {
        let original: FilePath
        var current: FilePath
        init(_ path: FilePath) { original = path; current = path }
    }

    static func write(_ input: FileDescriptor, to maildir: Maildir, worldReadable: Bool) throws(DeliveryError) -> DeliveredFile {
        let permissions: FilePermissions = worldReadable ? [.ownerReadWrite, .groupRead, .otherRead] : .ownerReadWrite
        do {
            return DeliveredFile(try maildir.deliver(from: input, permissions: permissions))
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

    static func index(_ file: DeliveredFile, settings: DeliverySettings,
                      options: DeliveryOptions) throws(DeliveryError) -> DeliveryReport {
        let database: Database
        do {
            database = try Database.open(mode: .readWrite, config: options.config, profile: options.profile)
        } catch {
            throw DeliveryError(.temporary, "cannot open the notmuch database: \(error)")
        }
        do {
            let report = try database.atomically {
                let indexed = try database.indexFile(file.original.string, decrypt: options.decrypt)
                let message = indexed.message
                // A known Message-ID: this file is one more copy; its tags stay as they are.
                if !indexed.isDuplicate {
                    try message.withTagsFrozen {
                        for operation in settings.newTags + options.tagOperations {
                            switch operation {
                            case .add(let tag): try message.addTag(tag)
                            case .remove(let tag): try message.removeTag(tag)
                            }
                        }
                    }
                }
                if settings.synchronizeFlags {
                    try message.syncTagsToMaildirFlags()
                    file.current = currentPath(of: file.original, among: message.filenames)
                }
                return DeliveryReport(path: file.current.string, messageID: message.id, tags: message.tags,
                                      indexed: true, duplicate: indexed.isDuplicate, warning: nil)
            }
            try database.close()
            if file.current != file.original { try makeRenameDurable(from: file.original, to: file.current) }
            return report
        } catch let error as NotmuchError where error.status == .fileNotEmail {
            throw DeliveryError(.notAMessage, "the input is not an email message (no From, Subject or To header)")
        } catch let error as DeliveryError {
            throw error
        } catch {
            throw DeliveryError(.temporary, "cannot index '\(file.current)': \(error)")
        }
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

    static func makeRenameDurable(from original: FilePath, to current: FilePath) throws(DeliveryError) {
        do {
            try FileSystem.fsyncDirectory(current.removingLastComponent())
            try FileSystem.fsyncDirectory(original.removingLastComponent())
        } catch {
            throw DeliveryError(.temporary, "cannot sync the maildir after renaming to '\(current)': \(error)")
        }
    }
}
