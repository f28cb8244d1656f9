import FoundationEssentials
import Rules
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// What is needed to finish a delivery later: the file, and everything
/// that decides its tags and folder. One small JSON file per message.
public struct PendingRecord: Codable, Sendable, Equatable {
    public var version = 1
    /// The message file, relative to the mail root.
    public var path: String
    public var tagOperations: [String]
    /// The rules file the delivery used; "" or nil: none.
    public var rulesFile: String?
    public var recipient: String?
    public var sender: String?
    public var recipientExtension: String?
    public var decrypt: String?
}

/// A durable queue of deliveries waiting for the database's write lock,
/// next to the database. Records appear by atomic rename once fsynced, so
/// a reader sees whole records or none; they go only after the commit
/// that applied them.
public struct PendingQueue: Sendable {
    public let directory: FilePath
    /// Xapian's lock file for the same database.
    public let lockFile: FilePath

    public init(databasePath: String) {
        let lock = WriteLock.lockFile(databasePath: databasePath)
        lockFile = lock
        // Beside the xapian/ directory, inside the database's own folder.
        directory = lock.directory.directory.appending("notmuch-deliver-queue")
    }

    /// Writes the record, named after the message file so it is unique,
    /// and puts it in place. Durable only after `makeDurable`: until then
    /// the delivery has not reported success, and a crash is the MTA's to
    /// retry (a record left empty is dropped as unreadable).
    public func enqueue(_ record: PendingRecord) throws {
        try FileSystem.makeDirectory(directory, mode: 0o700)
        let name = (FilePath(record.path).lastComponent?.string ?? MaildirName.unique())
        let final = directory.appending(name + ".json")
        // Two retries of one message may queue at once: each its own temp file.
        let temporary = directory.appending(".tmp-\(getpid())-" + name)
        let data = try JSONEncoder().encode(record)
        let fd = try FileDescriptor.open(temporary, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                         permissions: .ownerReadWrite)
        do {
            _ = try fd.writeAll(data)
            try fd.close()
        } catch {
            try? fd.close()
            try? FileSystem.unlink(temporary)
            throw error
        }
        try FileSystem.rename(temporary, final)
    }

    /// Syncs a record and its directory entry. A record a flusher has
    /// already applied and removed needs nothing more.
    public func makeDurable(_ name: String) throws {
        do {
            let fd = try FileDescriptor.open(directory.appending(name), .readOnly, options: [.closeOnExec])
            defer { try? fd.close() }
            try FileSystem.fsync(fd)
        } catch Errno.noSuchFileOrDirectory {
            return
        }
        try FileSystem.fsyncDirectory(directory)
    }

    /// The records' names, sorted (so every flusher takes them in the same order).
    public func names() -> [String] {
        guard let entries = try? FileSystem.list(directory) else { return [] }
        return entries.filter { $0.hasSuffix(".json") }.sorted()
    }

    public func contains(_ name: String) -> Bool {
        FileSystem.kind(of: directory.appending(name)) != .missing
    }

    public func read(_ name: String) throws -> PendingRecord {
        let text = try RulesLoader.readFile(directory.appending(name).string)
        return try JSONDecoder().decode(PendingRecord.self, from: Data(text.utf8))
    }

    /// Among processes with queued records, one at a time goes for the
    /// database and takes every record along; the others leave theirs to it.
    /// Without this they all queue up in Xapian's lock wait, and each
    /// commits a batch of almost nothing. Nil: another has the turn.
    /// Closing the descriptor (or dying) gives the turn back.
    public func tryBecomeFlusher() -> FileDescriptor? {
        let path = directory.appending("flusher.lock")
        try? FileSystem.makeDirectory(directory, mode: 0o700)
        guard let fd = try? FileDescriptor.open(path, .readWrite, options: [.create, .closeOnExec],
                                                permissions: .ownerReadWrite) else { return nil }
        if flock(fd.rawValue, LOCK_EX | LOCK_NB) == 0 { return fd }
        try? fd.close()
        return nil
    }

    /// Removes applied records; called only after their commit.
    public func remove(_ names: [String]) {
        guard !names.isEmpty else { return }
        for name in names { try? FileSystem.unlink(directory.appending(name)) }
        try? FileSystem.fsyncDirectory(directory)
    }
}
