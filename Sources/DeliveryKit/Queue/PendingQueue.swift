import FoundationEssentials
import Notmuch
import Rules
import SystemPackage
import MaildirKit

/// What is needed to finish a delivery later: the file, and everything
/// that decides its tags and folder. One small text file per message (see
/// `encoded`); Decodable for the JSON records of earlier versions.
public struct PendingRecord: Decodable, Sendable, Equatable {
    /// Only in the JSON records of earlier versions; the text format's
    /// header line carries its own.
    var version = 1
    /// The message file, relative to the mail root.
    var path: String
    var tagOperations: [String]
    /// The rules file the delivery used; "" or nil: none.
    var rulesFile: String?
    var recipient: String?
    var sender: String?
    var recipientExtension: String?
    var decrypt: String?
    /// The Sieve script the delivery used; "" or nil: none.
    var sieveFile: String? = nil
}

extension PendingRecord {
    /// The envelope the delivery found, for the rules.
    var envelope: Envelope { Envelope(recipient: recipient, sender: sender, recipientExtension: recipientExtension) }

    /// The delivery's request again, as far as the record carries it
    /// (its rules are the record's files: see `QueueApplier`).
    var request: MessageRequest {
        var filing = Filing()
        filing.tagOperations = tagOperations.compactMap { try? TagOperation(parsing: $0) }
        filing.decrypt = decrypt.flatMap(DecryptPolicy.init(rawValue:))
        return MessageRequest(envelope: envelope, filing: filing)
    }

    /// A record's fields: their names in a record file, and in a queue
    /// entry's name.
    enum Field: String, CaseIterable {
        case tag, rules, sieve, recipient, sender, `extension`, decrypt, path

        var short: String {
            switch self {
            case .tag: "t"
            case .rules: "r"
            case .sieve: "S"
            case .recipient: "R"
            case .sender: "s"
            case .extension: "e"
            case .decrypt: "d"
            case .path: "p"
            }
        }
    }

    /// The fields in the order both formats write them: the tag operations
    /// in order, the others when set, and `path` last.
    var fields: [(Field, String)] {
        var fields = tagOperations.map { (Field.tag, $0) }
        let optional: [(Field, String?)] = [(.rules, rulesFile), (.sieve, sieveFile), (.recipient, recipient), (.sender, sender),
                                            (.extension, recipientExtension), (.decrypt, decrypt)]
        for (field, value) in optional { if let value { fields.append((field, value)) } }
        return fields + [(.path, path)]
    }

    /// The record from its fields; nil unless `path` comes last (a record
    /// cut short has lost it). Unknown fields were skipped by the caller.
    init?(fields: [(Field, String)]) {
        guard let (last, path) = fields.last, last == .path else { return nil }
        func value(_ field: Field) -> String? { fields.first { $0.0 == field }?.1 }
        self.init(path: path, tagOperations: fields.filter { $0.0 == .tag }.map(\.1), rulesFile: value(.rules),
                  recipient: value(.recipient), sender: value(.sender), recipientExtension: value(.extension),
                  decrypt: value(.decrypt), sieveFile: value(.sieve))
    }

    /// The first line of a record file.
    static let header = "notmuch-deliver-record 2"

    /// A record file: the header, then one `FIELD VALUE` line per field,
    /// values percent-escaped so that none holds a line break. A record cut
    /// short (a crash before its fsync) has no `path` line, or one without
    /// its line break, and is refused. Written by hand, not with
    /// JSONEncoder: Codable's first use costs a process about a millisecond
    /// of runtime type work, and every queued delivery is a new process.
    public var encoded: String {
        var text = Self.header + "\n"
        for (field, value) in fields { text += field.rawValue + " " + Self.escape(value) + "\n" }
        return text
    }

    /// Reads `encoded`'s format; nil when it is not a whole record. Works
    /// on bytes, not Characters: a value starting with a combining mark
    /// (a sender is the remote side's to choose) would otherwise merge with
    /// the space before it.
    public init?(encoded text: String) {
        var lines = Array(text.utf8).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        guard lines.first.map({ Array($0) }) == Array(Self.header.utf8), lines.last?.isEmpty == true else { return nil }
        lines.removeFirst()
        lines.removeLast()
        guard let fields = Self.parse(lines, separator: UInt8(ascii: " "), key: { Field(rawValue: $0) }) else { return nil }
        self.init(fields: fields)
    }

    /// The record as a queue entry's name, when it fits in one (NAME_MAX,
    /// 255 bytes): `Q1~t=TAG…~r=RULES~R=RECIPIENT~s=SENDER~e=EXTENSION~d=DECRYPT~p=PATH`,
    /// values percent-escaped where they hold `/`, `~`, `%` or a control
    /// character. An entry so named needs no content, so nothing of its own
    /// to sync (see `PendingQueue.enqueue`).
    public var fileName: String? {
        let separators = [UInt8(ascii: "/"), UInt8(ascii: "~")]
        var name = Self.namePrefix
        for (field, value) in fields { name += "~" + field.short + "=" + Self.escape(value, also: separators) }
        return name.utf8.count <= 255 ? name : nil
    }

    static let namePrefix = "Q1"

    /// Reads `fileName`'s format; nil for any other name.
    public init?(fileName: String) {
        let parts = Array(fileName.utf8).split(separator: UInt8(ascii: "~"), omittingEmptySubsequences: false)
        guard parts.first.map({ Array($0) }) == Array(Self.namePrefix.utf8) else { return nil }
        let fields = Self.parse(Array(parts.dropFirst()), separator: UInt8(ascii: "=")) { key in
            Field.allCases.first { $0.short == key }
        }
        guard let fields else { return nil }
        self.init(fields: fields)
    }

    /// Splits each part at its first `separator` into a field and its
    /// unescaped value; nil when a part has no separator or a bad escape.
    /// Fields `key` does not know are skipped.
    private static func parse(_ parts: [ArraySlice<UInt8>], separator: UInt8,
                              key: (String) -> Field?) -> [(Field, String)]? {
        var fields: [(Field, String)] = []
        for part in parts {
            guard let split = part.firstIndex(of: separator),
                  let value = unescape(part[(split + 1)...]) else { return nil }
            if let field = key(String(decoding: part[..<split], as: UTF8.self)) { fields.append((field, value)) }
        }
        return fields
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    private static func escape(_ value: String, also extra: [UInt8] = []) -> String {
        var bytes: [UInt8] = []
        for byte in value.utf8 {
            if byte < 0x20 || byte == 0x7f || byte == UInt8(ascii: "%") || extra.contains(byte) {
                bytes += [UInt8(ascii: "%"), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 15)]]
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func unescape(_ text: ArraySlice<UInt8>) -> String? {
        var bytes: [UInt8] = []
        var utf8 = text.makeIterator()
        while let byte = utf8.next() {
            guard byte == UInt8(ascii: "%") else { bytes.append(byte); continue }
            guard let high = utf8.next().flatMap(hexValue), let low = utf8.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}

/// A durable queue of deliveries waiting for the database's write lock,
/// next to the database. Records appear by atomic rename once fsynced, so
/// a reader sees whole records or none; they go only after the commit
/// that applied them.
public struct PendingQueue: Sendable {
    let directory: FilePath

    /// The queue's directory name inside the database's folder.
    static let directoryName = "notmuch-deliver-queue"

    init(databasePath: String) {
        // Beside the xapian/ directory, inside the database's own folder.
        directory = FilePath(Database.folder(databasePath: databasePath)).appending(Self.directoryName)
    }

    /// Queues a delivery of `message` (the file, already synced) and
    /// returns the entry's name. Durable only after `makeDurable`: until
    /// then the delivery has not reported success, and a crash is the MTA's
    /// to retry.
    ///
    /// Usually the entry is a hard link to the message file, named after
    /// the record (`PendingRecord.fileName`): the link is atomic, its inode
    /// is the message's, synced already, and only the queue directory is
    /// left to sync, one fsync fewer per queued delivery than a record file
    /// (it measured 4 to 8 % of a burst). A record too long for a name, or a
    /// message the queue cannot link to (another filesystem), is written to
    /// a file of its own, `MESSAGE.record`, put in place by rename.
    /// `linking` is false when `notmuch new` could take a link for mail
    /// (a queue inside the mail root but not under a `.notmuch` folder).
    func enqueue(_ record: PendingRecord, message: FilePath, linking: Bool = true) throws -> String {
        let queue = try openContainedDirectory()
        defer { try? queue.close() }
        // A flusher lock nobody can take would leave the record for ever.
        if FileSystem.isSymlink(Self.flusherLock, in: queue) {
            throw ContainedDirectories.Refusal.symlink(directory.appending(Self.flusherLock))
        }
        if linking, let name = record.fileName {
            let entry = directory.appending(name)
            do {
                try FileSystem.link(message, entry)
                return name
            } catch {
                // The same record for the same file: an MTA's retry of this
                // delivery queued it already.
                if error == .fileExists, FileSystem.sameFile(entry, message) { return name }
                // Otherwise (a stale entry for another file of that name, the
                // database on another filesystem than the maildir, one
                // without hard links), a record file.
            }
        }
        let name = (message.lastComponent?.string ?? MaildirName.unique()) + Self.recordSuffix
        // Two retries of one message may queue at once: each its own temp file.
        let temporary = directory.appending(".tmp-\(ProcessEnvironment.processID)-" + name)
        var data = record.encoded
        let fd = try FileSystem.openRegularFile(temporary.string, for: .writingAfresh,
                                                followSymlinks: false)
        do {
            try data.withUTF8 { try fd.writeEverything(UnsafeRawBufferPointer($0)) }
            try fd.close()
        } catch {
            try? fd.close()
            try? FileSystem.unlink(temporary)
            throw error
        }
        try FileSystem.rename(temporary, directory.appending(name))
        return name
    }

    /// Syncs a record and its directory entry. A record a flusher has
    /// already applied and removed needs nothing more.
    func makeDurable(_ name: String) throws {
        if PendingRecord(fileName: name) != nil {
            // A link to the message, whose content is synced: only its name is new.
            return try FileSystem.fsyncDirectory(directory)
        }
        do {
            let fd = try FileSystem.openRegularFile(directory.appending(name).string, followSymlinks: false)
            defer { try? fd.close() }
            try FileSystem.fsync(fd)
        } catch FileSystem.RegularFileProblem.missing {
            return
        }
        try FileSystem.fsyncDirectory(directory)
    }

    /// A record's name: its message file's, and this.
    static let recordSuffix = ".record"
    /// Records of earlier versions, still read.
    static let jsonSuffix = ".json"

    /// The records' names, sorted (so every flusher takes them in the same order).
    func names() -> [String] {
        // Not through a link out of the database folder: a flush would
        // apply and remove whatever records it found there.
        guard let queue = try? openContainedDirectory(create: false) else { return [] }
        defer { try? queue.close() }
        guard let entries = try? FileSystem.list(queue) else { return [] }
        // Not `.tmp-…` files: a record still being written is not queued yet.
        return entries.filter {
            !$0.hasPrefix(".tmp-") && ($0.hasPrefix(PendingRecord.namePrefix + "~")
                || $0.hasSuffix(Self.recordSuffix) || $0.hasSuffix(Self.jsonSuffix))
        }.sorted()
    }

    /// `names` (some of the queue's) in the order they were queued, as far
    /// as the disk tells: by their entry's modification time (a linked
    /// entry's is its message's, written just before it was queued), then
    /// by name. A server applying what a killed one left takes the oldest
    /// first, so that no record waits behind ever newer ones. A name gone
    /// meanwhile goes last.
    func oldestFirst(_ names: [String]) -> [String] {
        guard names.count > 1, let queue = try? openContainedDirectory(create: false) else { return names }
        defer { try? queue.close() }
        let unknown = (seconds: Int.max, nanoseconds: Int.max)
        let dated = names.map { name -> (name: String, time: (seconds: Int, nanoseconds: Int)) in
            guard let info = name.withCString({ try? Stat($0, relativeTo: queue, flags: .symlinkNoFollow) }) else {
                return (name, unknown)
            }
            return (name, (info.st_mtim.tv_sec, info.st_mtim.tv_nsec))
        }
        return dated.sorted { $0.time != $1.time ? $0.time < $1.time : $0.name < $1.name }.map(\.name)
    }

    func contains(_ name: String) -> Bool {
        FileSystem.kind(of: directory.appending(name)) != .missing
    }

    func read(_ name: String, in folder: FilePath? = nil) throws -> PendingRecord {
        if let record = PendingRecord(fileName: name) { return record }
        let text = try RulesLoader.readFile((folder ?? directory).appending(name).string)
        if name.hasSuffix(Self.jsonSuffix) {
            return try JSONDecoder().decode(PendingRecord.self, from: Data(text.utf8))
        }
        guard let record = PendingRecord(encoded: text) else { throw UnreadableRecord() }
        return record
    }

    struct UnreadableRecord: Error, CustomStringConvertible {
        var description: String { "not a whole record" }
    }

    /// Among processes with queued records, one at a time goes for the
    /// database and takes every record along; the others leave theirs to it.
    /// Without this they all queue up in Xapian's lock wait, and each
    /// commits a batch of almost nothing. Nil: another has the turn.
    /// Closing the descriptor (or dying) gives the turn back.
    func tryBecomeFlusher() -> FileDescriptor? {
        guard let queue = try? openContainedDirectory() else { return nil }
        defer { try? queue.close() }
        guard let lock = FileSystem.openLockFile(Self.flusherLock, in: queue) else { return nil }
        if FileSystem.tryLockExclusively(lock) { return lock }
        try? lock.close()
        return nil
    }

    static let flusherLock = "flusher.lock"

    /// Opens the queue directory in the database's folder, creating it if
    /// missing and `create` is set; one that is a symlink leading out of that folder is
    /// refused: records and the lock must not be written elsewhere.
    /// Why the queue cannot be read, when its directory exists but leads
    /// out of the database folder (or is no directory); nil otherwise. A
    /// flush says so instead of finding nothing to do.
    func unusableReason() -> String? {
        do {
            try openContainedDirectory(create: false).close()
            return nil
        } catch let refusal as ContainedDirectories.Refusal {
            if case .missing = refusal { return nil }
            return "the queue directory cannot be used: \(refusal)"
        } catch {
            return nil
        }
    }

    private func openContainedDirectory(create: Bool = true) throws(ContainedDirectories.Refusal) -> FileDescriptor {
        let parent = directory.directory
        guard let name = directory.lastComponent?.string else { throw .notADirectory(directory) }
        var contained = try ContainedDirectories(root: parent)
        defer { contained.close() }
        return try contained.open(name, in: contained.rootDescriptor, at: parent, create: create)
    }

    /// Removes applied records; called only after their commit.
    /// `syncing` false: records applied and committed, whose transaction
    /// marked them done (`IndexJob.recordProperty`): one that comes back
    /// after a crash is recognised and dropped, so the removal need not
    /// reach the disk before the delivery reports (one fsync fewer each).
    func remove(_ names: [String], syncing: Bool = true) {
        guard !names.isEmpty else { return }
        for name in names { try? FileSystem.unlink(directory.appending(name)) }
        if syncing { try? FileSystem.fsyncDirectory(directory) }
    }
}
