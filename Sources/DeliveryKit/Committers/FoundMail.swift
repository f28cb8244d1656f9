import MaildirKit
import Notmuch
import Rules
import SystemPackage
import Threads

/// The delivery core as a watcher of the maildir uses it: files that a
/// sync tool wrote are indexed as `notmuch new` indexes them (`new.tags`,
/// maildir flags as tags), and then given the same rules and Sieve script
/// as a delivery, in the transaction that also applies the delivery queue.
/// Built from the same options as a delivery; build another to reload.
public struct FoundMail {
    let mailbox: Mailbox
    /// What a found file is indexed as: no envelope, the options' filing
    /// (decryption; its tag operations are a delivery's, not applied here).
    let request: MessageRequest
    var settings: DeliverySettings { mailbox.settings }

    public init(options: DeliveryOptions) throws(DeliveryError) {
        mailbox = try Mailboxes(options).find(recipient: nil)
        var filing = Filing()
        filing.decrypt = options.filing.decrypt
        request = MessageRequest(envelope: Envelope(), filing: filing)
    }

    public var mailRoot: String { settings.mailRoot }
    public var databasePath: String { settings.databasePath }
    public var synchronizesFlags: Bool { settings.synchronizeFlags }
    /// How long a commit waits for another writer before it tries again later.
    public var lockTimeout: Double { settings.lockTimeout }
    public var hookDirectory: String? { settings.hookDirectory }
    /// `new.ignore`: names and `/regex/`s that `notmuch new` skips.
    public var ignoredNames: [String] { settings.newIgnore }
    public var hasRules: Bool { !settings.rules.isEmpty }
    /// The rules file and the Sieve script these settings read, if any.
    public var ruleFiles: [String] { [settings.rulesPath, settings.sievePath].compactMap { $0 } }

    /// What became of a file that was not in the database.
    public enum Outcome {
        /// A new message: tagged, and given the rules (which may have moved
        /// or renamed its file, or discarded it). Its log line is written.
        case indexed(DeliveryReport)
        /// One more file of a known message; its tags follow its flags.
        case duplicate
        /// libnotmuch finds no mail headers in it: skipped, nothing changed.
        case notMail
        /// Gone before it could be read (renamed or deleted meanwhile).
        case vanished
    }

    /// Opens the database for writing. libnotmuch waits for the write lock
    /// without limit: look at `Database.isWriteLockHeld` first.
    public func openForWriting() throws(NotmuchError) -> Database {
        try mailbox.openDatabase()
    }

    /// Indexes a file found in the maildir, inside the caller's transaction.
    /// `moves` gets the directories whose entries a rule or a flag rename
    /// changed, to be synced before the commit.
    public func index(_ path: String, in database: Database, moves: inout [FilePath]) throws -> Outcome {
        let started = Monotonic.seconds
        let indexed: Database.Indexed
        do throws(NotmuchError) {
            indexed = try database.indexFile(path, decrypt: request.filing.decrypt)
        } catch {
            if error.status == .fileNotEmail { return .notMail }
            if error.status == .fileError { return .vanished }
            throw error
        }
        if indexed.isDuplicate {
            if settings.synchronizeFlags { try indexed.message.syncMaildirFlagsToTags() }
            return .duplicate
        }
        // As notmuch new: new.tags, and the flags as tags (no `unread` for
        // a seen file); the order between them makes no difference.
        let message = indexed.message
        try message.withTagsFrozen {
            for operation in settings.newTags + Self.flagTags(path, synchronizing: settings.synchronizeFlags) {
                switch operation {
                case .add(let tag): try message.addTag(tag)
                case .remove(let tag): try message.removeTag(tag)
                }
            }
        }
        var location = FilePath(path)
        var report: DeliveryReport
        if settings.rules.isEmpty {
            report = DeliveryReport(path: path, messageID: message.id, tags: message.tags, outcome: .indexed,
                                    warning: nil, traces: [])
        } else {
            // The job finds the file indexed by us, without the delivery's
            // marker: it owes the rules (and no new.tags, given above). It
            // renames no file for its flags: a sync tool's file keeps its
            // name unless the rules changed what its flags say (below).
            var ruleSettings = settings
            ruleSettings.synchronizeFlags = false
            let job = IndexJob(.archiveMessage(statusTags: [], inPlace: true), request: request, settings: ruleSettings)
            report = try job.run(in: database, location: &location, moves: &moves)
            if settings.synchronizeFlags, report.outcome != .discarded,
               let current = try database.findMessage(filename: location.string),
               Self.flagsDisagree(location.string, tags: current.tags) {
                try current.syncTagsToMaildirFlags()
                let renamed = IndexJob.currentPath(of: location, among: current.filenames)
                if renamed != location {
                    moves += [location.directory, renamed.directory]
                    location = renamed
                }
            }
            if report.outcome != .discarded, let current = try database.findMessage(filename: location.string) {
                // Not a delivery's: a delivery of these very bytes that
                // comes after still owes its own tags.
                try current.removeProperty(IndexJob.deliveredProperty)
                report = DeliveryReport(path: location.string, messageID: current.id, tags: current.tags,
                                        outcome: .indexed, warning: nil, traces: [])
            }
        }
        DeliveryLog.delivery(report, mailRoot: settings.mailRoot, milliseconds: (Monotonic.seconds - started) * 1000)
        return .indexed(report)
    }

    /// Whether a file's maildir flags say otherwise than the message's
    /// tags (a rule set `flagged` or took `unread` away): only then is it
    /// renamed, as `notmuch tag` would rename it.
    static func flagsDisagree(_ path: String, tags: [String]) -> Bool {
        let tags = Set(tags)
        var implied = Set<String>()
        for operation in flagTags(path, synchronizing: true) {
            if case .add(let tag) = operation { implied.insert(tag) }
        }
        // No info part: no flags, and unread.
        if !path.contains(":2,") { implied.insert("unread") }
        return tags.intersection(["draft", "flagged", "passed", "replied", "unread"]) != implied
    }

    /// The tag changes a new file's maildir flags make, as libnotmuch's
    /// flags-to-tags and `notmuch new`'s `unread` rule make them. Only a
    /// file in `cur/` or `new/` with an info part (`:2,`) has flags.
    static func flagTags(_ path: String, synchronizing: Bool) -> [TagOperation] {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[parts.count - 2] == "cur" || parts[parts.count - 2] == "new" else { return [] }
        // What follows the first ":2," of the name, as libnotmuch reads it.
        let name = Array(parts[parts.count - 1].utf8)
        guard let start = (0..<max(name.count - 2, 0)).first(where: { name[$0...$0 + 2].elementsEqual(":2,".utf8) })
        else { return [] }
        let flags = String(decoding: name[(start + 3)...], as: UTF8.self)
        let seen = flags.contains("S")
        guard synchronizing else { return seen ? [.remove("unread")] : [] }
        var operations: [TagOperation] = []
        for (flag, tag) in [("D", "draft"), ("F", "flagged"), ("P", "passed"), ("R", "replied")]
        where flags.contains(flag) {
            operations.append(.add(tag))
        }
        operations.append(seen ? .remove("unread") : .add("unread"))
        return operations
    }

    /// The files that queued deliveries name (absolute paths): the queue
    /// applies them with the tags and envelope of their delivery, which a
    /// watcher indexing them first would lose.
    public func queuedFiles() -> Set<String> {
        let queue = PendingQueue(databasePath: settings.databasePath)
        var files = Set<String>()
        for name in queue.names() {
            guard let record = try? queue.read(name) else { continue }
            files.insert(FilePath(settings.mailRoot).appending(record.path).string)
        }
        return files
    }

    /// Whether deliveries wait in the queue: a commit with nothing else
    /// to do is then still worth opening the database for.
    public var hasQueuedDeliveries: Bool {
        !PendingQueue(databasePath: settings.databasePath).names().isEmpty
    }

    /// Runs `work` in one transaction on a database opened for writing,
    /// with every queued delivery when this process can have the queue's
    /// flusher turn; then commits and closes the database. The directories
    /// `work` adds to its list are synced before the commit.
    public func commit(_ database: Database, _ work: (inout [FilePath]) throws -> Void) throws {
        let queue = mailbox.queue
        if !queue.names().isEmpty, let turn = queue.tryBecomeFlusher() {
            defer { try? turn.close() }
            let applier = mailbox.applier
            var timer = PhaseTimer(path: nil)
            let prepared = applier.prepareQueue(until: Monotonic.seconds + 1)
            let drained = try applier.applyQueue(in: database, prepared: prepared, timer: &timer, first: work)
            // The queued deliveries' own log lines, as their flusher writes them.
            for report in drained.reports.values where report.outcome != .queued {
                DeliveryLog.delivery(report, mailRoot: settings.mailRoot, milliseconds: 0)
            }
            return
        }
        try database.atomically {
            var moves: [FilePath] = []
            try work(&moves)
            try IndexOutcome.makeDurable(moves)
        }
        try database.close()
    }
}
