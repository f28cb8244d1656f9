internal import CPosix
import Mbox
import Notmuch
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// What an import is asked to do.
public struct ImportOptions: Sendable {
    /// Folder, tags, rules, config: as for one delivery.
    public var delivery = DeliveryOptions()
    public var format: MboxFormat = .auto
    public var dryRun = false
    /// Messages per commit: their files are synced together before the
    /// commit that indexes them.
    public var batchSize = 1000

    public init() {}
}

public struct ImportFailure: Sendable, CustomStringConvertible {
    public let archive: String
    public let line: Int
    public let offset: Int
    public let reason: String
    public var description: String { "\(archive):\(line) (byte \(offset)): \(reason)" }
}

public struct ImportProgress: Sendable {
    public var messages = 0
    public var bytes = 0
    public var archive = ""
}

public struct ImportReport: Sendable {
    public var imported = 0
    /// Already in the database with the same content (a re-run, or a resumed one).
    public var skipped = 0
    /// A Message-ID already in the database, with other content: stored as another copy.
    public var duplicateCopies = 0
    public var failures: [ImportFailure] = []
    public var seconds = 0.0
    public var bytes = 0
}

/// Replays mbox archives into the maildir and the database: one database
/// session, batched transactions, the same tags and rules as a delivery.
/// Safe to re-run and to resume: a message's file name is the SHA-1 of its
/// content, so a second pass finds what the first stored, even a file an
/// interrupted batch left unindexed.
public final class Importer {
    private let options: ImportOptions
    private let settings: DeliverySettings
    private let maildir: Maildir
    private var database: Database?
    private var batch: [Pending] = []
    /// The batch's file names, to notice the same bytes twice in it.
    private var staged = Set<FilePath>()
    private var report = ImportReport()
    private var progress = ImportProgress()
    private let onProgress: (ImportProgress) -> Void

    private struct Pending {
        let temporary: FilePath?
        let final: FilePath
        let tags: [TagOperation]
        let archive: String
        let message: (line: Int, offset: Int)
        let duplicate: Bool
    }

    public init(_ options: ImportOptions, onProgress: @escaping (ImportProgress) -> Void = { _ in }) throws(DeliveryError) {
        self.options = options
        self.onProgress = onProgress
        settings = try DeliverySettings(options: options.delivery)
        // A dry run creates nothing, not even the folder.
        maildir = options.dryRun
            ? Maildir(FilePath(settings.mailRoot))
            : try MailFolder.resolve(root: settings.mailRoot, name: options.delivery.folder,
                                     create: options.delivery.createFolder)
    }

    public func run(_ archives: [String]) throws(DeliveryError) -> ImportReport {
        let started = Clock.now
        if !options.dryRun { database = try open() }
        for archive in archives {
            progress.archive = archive
            let reader: MboxReader
            do {
                reader = MboxReader(source: try Archive.open(archive), format: options.format, name: archive)
            } catch {
                // One unreadable archive does not cost the others.
                report.failures.append(ImportFailure(archive: archive, line: 0, offset: 0, reason: "cannot read: \(error)"))
                continue
            }
            while true {
                let message: MboxMessage
                do {
                    guard let next = try reader.next() else { break }
                    message = next
                } catch {
                    let reason = (error as? MboxError)?.description ?? "\(error)"
                    report.failures.append(ImportFailure(archive: archive, line: 0, offset: progress.bytes, reason: reason))
                    break
                }
                progress.messages += 1
                progress.bytes += message.bytes.count
                report.bytes += message.bytes.count
                if options.dryRun {
                    report.imported += 1
                } else {
                    try stage(message, archive: archive)
                    if batch.count >= options.batchSize { try commitBatch() }
                }
                if progress.messages % 100 == 0 { onProgress(progress) }
            }
        }
        try commitBatch()
        if let database {
            do { try database.close() } catch { throw DeliveryError(.temporary, "cannot commit: \(error)") }
        }
        onProgress(progress)
        report.seconds = Clock.now - started
        return report
    }

    private func open() throws(DeliveryError) -> Database {
        do { return try options.delivery.openDatabase() } catch {
            throw DeliveryError(.temporary, "cannot open the notmuch database: \(error)")
        }
    }

    /// Decides what to do with one message and, if it is to be stored,
    /// writes it to tmp/ (synced later, with the whole batch).
    private func stage(_ message: MboxMessage, archive: String) throws(DeliveryError) {
        guard let database else { return }
        let bytes = message.bytes
        let digest = ContentChecksum.hex(of: bytes)
        let headers = HeaderScan(bytes)
        let status = ArchiveStatus(status: headers.value("status"), xStatus: headers.value("x-status"))
        let name = digest + ".import"
        let final = status.isNew ? maildir.new.appending(name) : maildir.cur.appending(name + ":2," + status.maildirFlags)
        do {
            let stored = FileSystem.kind(of: final) != .missing
            if stored, try database.findMessage(filename: final.string) != nil {
                report.skipped += 1
                return
            }
            if !staged.insert(final).inserted {
                // The same bytes twice in the archive: one file.
                report.skipped += 1
                return
            }
            var duplicate = false
            if !stored {
                let id = headers.messageID ?? "notmuch-sha1-" + digest
                if let existing = try database.findMessage(id: id) {
                    if existing.filenames.contains(where: { Self.sameContent($0, bytes) }) {
                        report.skipped += 1
                        return
                    }
                    duplicate = true
                }
                let temporary = maildir.tmp.appending(name)
                try Self.write(bytes, to: temporary)
                if !headers.hasDate, let date = Self.envelopeDate(message.envelope) {
                    var times = [timespec(tv_sec: date, tv_nsec: 0), timespec(tv_sec: date, tv_nsec: 0)]
                    _ = temporary.withPlatformString { utimensat(AT_FDCWD, $0, &times, 0) }
                }
                batch.append(Pending(temporary: temporary, final: final, tags: status.tags, archive: archive,
                                     message: (message.line, message.offset), duplicate: duplicate))
            } else {
                // Left by an interrupted run: stored, not yet indexed.
                batch.append(Pending(temporary: nil, final: final, tags: status.tags, archive: archive,
                                     message: (message.line, message.offset), duplicate: false))
            }
        } catch let error as DeliveryError {
            throw error
        } catch {
            throw DeliveryError(.temporary, "\(archive):\(message.line): \(error)")
        }
    }

    /// Syncs the batch's files, moves them into place, indexes them in one
    /// transaction and commits: a message counts as imported only then.
    private func commitBatch() throws(DeliveryError) {
        guard !batch.isEmpty, let database else { return }
        let pending = batch
        batch = []
        staged = []
        do {
            // One syncfs for the batch's files, instead of one fsync each.
            let fd = try FileDescriptor.open(maildir.tmp, .readOnly, options: [.directory, .closeOnExec])
            let synced = cposix_syncfs(fd.rawValue)
            try fd.close()
            if synced != 0 { throw Errno(rawValue: errno) }
            for item in pending { if let temporary = item.temporary { try FileSystem.rename(temporary, item.final) } }
            try FileSystem.fsyncDirectory(maildir.new)
            try FileSystem.fsyncDirectory(maildir.cur)
        } catch {
            throw DeliveryError(.temporary, "cannot store the batch in '\(maildir.path)': \(error)")
        }
        var moves: [FilePath] = []
        var imported = 0, copies = 0
        do {
            // One atomic section per message, as `notmuch new` does: one
            // around the whole batch measured a third slower. The files are
            // durable already, so a commit Xapian makes on its own mid-batch
            // loses no message (a rule's move not yet synced can leave the
            // database naming the old path until `notmuch new`); the batch
            // counts as imported only after the close below.
            for item in pending {
                try database.atomically {
                    let file = Delivery.DeliveredFile(item.final)
                    var job = IndexJob(file: file, options: options.delivery, settings: settings, commit: true)
                    job.archiveTags = item.tags
                    job.describes = false
                    job.mayBeIndexedAlready = item.temporary == nil
                    do {
                        let result = try job.run(in: database, moves: &moves)
                        imported += 1
                        if result.duplicate || item.duplicate { copies += 1 }
                    } catch let error as NotmuchError where error.status == .fileNotEmail {
                        report.failures.append(ImportFailure(archive: item.archive, line: item.message.line,
                                                             offset: item.message.offset,
                                                             reason: "not an email message (no From, Subject or To)"))
                        Maildir.discard(item.final)
                    }
                }
            }
            try Delivery.makeDurable(moves)
            try database.close()
            self.database = try open()
        } catch let error as DeliveryError {
            throw error
        } catch {
            throw DeliveryError(.temporary, "cannot index the batch: \(error); run the import again to resume")
        }
        report.imported += imported
        report.duplicateCopies += copies
    }

    // MARK: Helpers

    static func write(_ bytes: [UInt8], to path: FilePath) throws {
        let fd = try FileDescriptor.open(path, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                         permissions: .ownerReadWrite)
        defer { try? fd.close() }
        _ = try fd.writeAll(bytes)
    }

    static func sameContent(_ path: String, _ bytes: [UInt8]) -> Bool {
        guard let fd = try? FileDescriptor.open(FilePath(path), .readOnly) else { return false }
        defer { try? fd.close() }
        guard let size = try? fd.seek(offset: 0, from: .end), size == bytes.count,
              (try? fd.seek(offset: 0, from: .start)) != nil else { return false }
        var other = [UInt8](repeating: 0, count: bytes.count)
        var filled = 0
        while filled < other.count {
            let count = (try? other.withUnsafeMutableBytes { try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[filled...])) }) ?? 0
            if count == 0 { break }
            filled += count
        }
        return filled == bytes.count && other == bytes
    }

    /// The From_ line's date (`Mon Nov 24 09:00:00 2025`, in UTC by convention).
    static func envelopeDate(_ envelope: String) -> Int? {
        let words = envelope.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard words.count >= 5 else { return nil }
        let date = words.suffix(5).joined(separator: " ")
        var parts = tm()
        guard cposix_strptime(date, "%a %b %d %H:%M:%S %Y", &parts) != nil else { return nil }
        return timegm(&parts)
    }
}

/// The few headers the import reads itself, from the header block only.
struct HeaderScan {
    private var fields: [String: String] = [:]

    init(_ bytes: [UInt8]) {
        var start = 0
        var last: String?
        while start < bytes.count {
            let end = bytes[start...].firstIndex(of: 10).map { $0 + 1 } ?? bytes.count
            var line = bytes[start..<end]
            start = end
            while let tail = line.last, tail == 10 || tail == 13 { line = line.dropLast() }
            if line.isEmpty { break }
            if let first = line.first, first == 32 || first == 9 {
                if let key = last { fields[key, default: ""] += " " + String(decoding: line, as: UTF8.self).trimmingWhitespace() }
                continue
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { last = nil; continue }
            let key = String(decoding: line[..<colon], as: UTF8.self).lowercased()
            if fields[key] == nil {
                fields[key] = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingWhitespace()
                last = key
            } else {
                last = nil
            }
        }
    }

    func value(_ name: String) -> String? { fields[name] }

    var hasDate: Bool { fields["date"] != nil }

    /// As notmuch reads it: the first `<…>` of Message-ID.
    var messageID: String? {
        guard let raw = fields["message-id"], !raw.isEmpty else { return nil }
        if let open = raw.firstIndex(of: "<"), let close = raw[open...].firstIndex(of: ">") {
            let id = raw[raw.index(after: open)..<close]
            return id.isEmpty ? nil : String(id)
        }
        return raw
    }
}

/// What mbox `Status:`/`X-Status:` say, as maildir flags and notmuch tags:
/// R read (no `unread`, S), O old (cur/, still unread), A answered
/// (`replied`, R), F flagged (`flagged`, F), T draft (`draft`, D),
/// D deleted (`deleted`; maildir has no flag notmuch maps to it).
struct ArchiveStatus {
    let letters: Set<Character>

    init(status: String?, xStatus: String?) {
        letters = Set((status ?? "") + (xStatus ?? ""))
    }

    var isNew: Bool { letters.isDisjoint(with: ["R", "O", "A", "F", "T"]) }

    var maildirFlags: String {
        var flags = ""
        if letters.contains("T") { flags += "D" }
        if letters.contains("F") { flags += "F" }
        if letters.contains("A") { flags += "R" }
        if letters.contains("R") { flags += "S" }
        return flags
    }

    var tags: [TagOperation] {
        var tags: [TagOperation] = []
        if letters.contains("R") { tags.append(.remove("unread")) }
        if letters.contains("A") { tags.append(.add("replied")) }
        if letters.contains("F") { tags.append(.add("flagged")) }
        if letters.contains("T") { tags.append(.add("draft")) }
        if letters.contains("D") { tags.append(.add("deleted")) }
        return tags
    }
}
