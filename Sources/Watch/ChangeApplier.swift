import DeliveryKit
import Logging
import Notmuch
import SystemPackage
import MaildirKit

/// What one transaction did, for the log line per burst.
public struct Counts: Sendable, CustomStringConvertible {
    public var added = 0
    /// Files of messages already known: copies and renames' new names.
    public var addedFilenames = 0
    public var removed = 0
    /// Filenames removed from messages that stay (a rename's old name).
    public var removedFilenames = 0
    public var notMail = 0
    public var directoriesRemoved = 0

    public var isEmpty: Bool {
        added + addedFilenames + removed + removedFilenames + notMail + directoriesRemoved == 0
    }

    mutating func add(_ other: Counts) {
        added += other.added
        addedFilenames += other.addedFilenames
        removed += other.removed
        removedFilenames += other.removedFilenames
        notMail += other.notMail
        directoriesRemoved += other.directoriesRemoved
    }

    public var description: String {
        "added=\(added) renamed-or-copied=\(addedFilenames) removed=\(removed) "
            + "filenames-removed=\(removedFilenames) not-mail=\(notMail) folders-removed=\(directoriesRemoved)"
    }
}

/// Carries a set of changes out inside a transaction, checking each
/// against the disk as it is now: the scan or the events that found them
/// may be a moment old, and a file may have come back or gone since.
struct ChangeApplier {
    let found: FoundMail
    let tree: MailTree
    let nonMail: NonMailFiles
    let log: Logger

    func apply(_ changes: Changes, in database: Database, moves: inout [FilePath]) throws -> Counts {
        var counts = Counts()
        // A queued delivery's file is the queue's to index, in this same
        // transaction when this process has its turn, with its delivery's tags.
        let queued = changes.additions.isEmpty ? [] : found.queuedFiles()
        for path in changes.additions where !queued.contains(path) {
            try add(path, in: database, counts: &counts, moves: &moves)
        }
        for path in changes.removals {
            try remove(path, in: database, counts: &counts)
        }
        for directory in changes.removedDirectories
        where DirectoryListing.kind(of: directory) != .directory {
            try removeTree(directory, in: database, counts: &counts)
        }
        for (directory, seconds) in changes.mtimes {
            try database.directory(directory)?.setMtime(seconds)
        }
        return counts
    }

    private func add(_ path: String, in database: Database, counts: inout Counts, moves: inout [FilePath]) throws {
        if nonMail.remembers(path) { return }
        if let known = try database.findMessage(filename: path) {
            // Indexed already (a rule's rename, another program): its flags
            // may still be news.
            if found.synchronizesFlags { try known.syncMaildirFlagsToTags() }
            return
        }
        switch try found.index(path, in: database, moves: &moves) {
        case .indexed: counts.added += 1
        case .duplicate: counts.addedFilenames += 1
        case .vanished: break
        case .notMail:
            counts.notMail += 1
            nonMail.remember(path)
            log.notice("ignoring non-mail file \(path)")
        }
    }

    private func remove(_ path: String, in database: Database, counts: inout Counts) throws {
        nonMail.forget(path)
        // Came back (or was never gone: a scan raced a rename).
        if DirectoryListing.kind(of: path) == .file { return }
        guard let message = try database.findMessage(filename: path) else { return }
        let id = message.id
        switch try database.removeFilename(path) {
        case .messageRemoved:
            counts.removed += 1
        case .otherFilesRemain:
            counts.removedFilenames += 1
            if found.synchronizesFlags { try database.findMessage(id: id)?.syncMaildirFlagsToTags() }
        }
    }

    /// A directory gone from disk: every file the database has below it,
    /// then its document, as `notmuch new` removes one.
    private func removeTree(_ directory: String, in database: Database, counts: inout Counts) throws {
        nonMail.forget(under: directory)
        guard let known = try database.directory(directory) else { return }
        for name in try known.childFiles() {
            try remove(tree.join(directory, name), in: database, counts: &counts)
        }
        for name in try known.childDirectories() {
            try removeTree(tree.join(directory, name), in: database, counts: &counts)
        }
        try known.delete()
        counts.directoriesRemoved += 1
    }
}
