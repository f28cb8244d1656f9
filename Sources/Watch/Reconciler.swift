import DeliveryKit
import Logging
import MaildirKit
import Notmuch
import SystemPackage
import Threads

/// A watcher's failure: what went wrong, for one line in the log or on stderr.
public struct WatchError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One mailbox's database kept equal to its maildir: a scan of a tree, or
/// a set of changes, committed in transactions that take the write lock
/// only for as long as they run. Built from the configuration; build
/// another to read it again (SIGHUP).
public final class Reconciler {
    public let found: FoundMail
    public let tree: MailTree
    let options: DeliveryOptions
    let nonMail: NonMailFiles
    let log = Logger(label: "notmuch-deliver")

    /// Asked while waiting for the write lock: true ends the wait at once
    /// (the watcher's SIGTERM), as if the lock had not come in time.
    var givesUpWaiting: () -> Bool = { false }

    /// Additions per transaction: a first scan of a large tree commits as
    /// it goes (and lets other writers in between) instead of building
    /// one transaction of everything in memory. Xapian's in-memory changes
    /// cost more as they grow: 5,000 new files in a 100,000-message tree
    /// were indexed in 9 s of wall (6 s CPU) in transactions of 250,
    /// against 42 s (13 s CPU) in transactions of 2,000 (make bench,
    /// figure 11; the import found 250 best too).
    static let additionsPerCommit = 250

    /// `nonMail`: what an earlier reconciler of this process learnt.
    public init(options: DeliveryOptions, keeping earlier: Reconciler? = nil) throws(WatchError) {
        self.options = options
        do { found = try FoundMail(options: options) } catch { throw WatchError(error.message) }
        let ignore: IgnoreList
        do { ignore = try IgnoreList(found.ignoredNames) } catch { throw WatchError(error.description) }
        guard Database.exists(databasePath: found.databasePath) else {
            throw WatchError("no notmuch database at '\(found.databasePath)': run 'notmuch new' once to create it")
        }
        tree = MailTree(root: found.mailRoot, ignore: ignore,
                        databaseFolder: Database.folder(databasePath: found.databasePath))
        nonMail = earlier?.nonMail ?? NonMailFiles()
    }

    func openReadOnly() throws(NotmuchError) -> Database {
        try Database.open(mode: .readOnly, config: options.config, profile: options.profile)
    }

    /// Compares `directory` (the whole mail root by default) with the
    /// database as `notmuch new` would, and commits the difference. Nil
    /// when the write lock did not come in time (nothing committed).
    public func reconcile(_ directory: String? = nil) throws -> Counts? {
        let changes = try scan(directory ?? tree.root)
        return try commit(changes)
    }

    func scan(_ directory: String) throws -> Changes {
        let database = try openReadOnly()
        defer { try? database.close() }
        return try TreeScan(tree: tree, database: database).scan(directory)
    }

    /// Commits `changes`: additions in transactions of a bounded size, the
    /// removals and the directory mtimes in the last. Nil when the write
    /// lock did not come in time; what was committed before stays, and
    /// applying the same changes again is harmless.
    func commit(_ changes: Changes) throws -> Counts? {
        var counts = Counts()
        // Nothing to write: no write lock, no open for writing, no commit
        // (a `watch --once` with nothing new is then a read, as notmuch new's is).
        if changes.isEmpty && !found.hasQueuedDeliveries { return counts }
        var rest = changes
        while rest.additions.count > Self.additionsPerCommit {
            var part = Changes()
            part.additions = Array(rest.additions.prefix(Self.additionsPerCommit))
            guard let done = try withWriteLock({ try apply(part, in: $0) }) else { return nil }
            counts.add(done)
            rest.additions.removeFirst(Self.additionsPerCommit)
        }
        guard let done = try withWriteLock({ try apply(rest, in: $0) }) else { return nil }
        counts.add(done)
        return counts
    }

    private func apply(_ changes: Changes, in database: Database) throws -> Counts {
        var counts = Counts()
        let applier = ChangeApplier(found: found, tree: tree, nonMail: nonMail, log: log)
        try found.commit(database) { moves in
            counts = try applier.apply(changes, in: database, moves: &moves)
        }
        return counts
    }

    /// Runs `body` on the database opened for writing, once no other
    /// writer holds it; nil when one holds it past the lock timeout.
    /// libnotmuch would wait for the lock without limit, so the lock is
    /// looked at first; between the look and the open another writer can
    /// still slip in, and then the open waits for it.
    func withWriteLock<T>(_ body: (Database) throws -> T) throws -> T? {
        let deadline = Monotonic.seconds + found.lockTimeout
        while Database.isWriteLockHeld(databasePath: found.databasePath) {
            if Monotonic.seconds >= deadline || givesUpWaiting() { return nil }
            Pause.sleep(seconds: 0.02)
        }
        let database: Database
        do { database = try found.openForWriting() } catch {
            throw WatchError("cannot open the notmuch database for writing: \(error)")
        }
        return try body(database)
    }
}
