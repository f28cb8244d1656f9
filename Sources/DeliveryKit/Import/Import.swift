import MailParsing
import Mbox
import Notmuch
import SystemPackage
import MaildirKit
import Threads

/// What an import is asked to do.
public struct ImportOptions: Sendable {
    /// Folder, tags, rules, config: as for one delivery.
    public var delivery = DeliveryOptions()
    public var format: MboxFormat = .auto
    public var dryRun = false
    /// Messages per commit (a whole number of chunks of 100 when larger).
    public var batchSize = 250
    /// Larger messages are reported as failed and not stored: postfix's
    /// default `message_size_limit`, as a mail server would have refused
    /// them too.
    public var maxMessageSize = ImportOptions.defaultMaxMessageSize
    public static let defaultMaxMessageSize = 10_240_000

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
    /// Seconds left for this archive, estimated from how far into its file
    /// reading has got; nil for a pipe, or too early to tell.
    public var secondsLeft: Double?
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
    private let mailbox: Mailbox
    private var settings: DeliverySettings { mailbox.settings }
    /// What each archive message is filed as: no envelope, the command line's filing.
    private let request: MessageRequest
    private let maildir: Maildir
    private var database: Database?
    private var report = ImportReport()
    private let onProgress: (ImportProgress) -> Void

    /// `onProgress` is called from the thread that reads the archives.
    public init(_ options: ImportOptions, onProgress: @escaping (ImportProgress) -> Void = { _ in }) throws(DeliveryError) {
        self.options = options
        self.onProgress = onProgress
        mailbox = try Mailboxes(options.delivery).find(recipient: nil)
        request = MessageRequest(envelope: Envelope(), filing: options.delivery.filing)
        // A dry run creates nothing, not even the folder, but checks its name.
        if options.dryRun {
            let database = MailFolder.databaseComponents(root: mailbox.settings.mailRoot,
                                                         databaseFolder: mailbox.settings.databaseFolder)
            do { _ = try MailFolder.components(of: options.delivery.filing.folder, database: database) } catch {
                throw DeliveryError(error)
            }
        }
        maildir = options.dryRun
            ? Maildir(FilePath(mailbox.settings.mailRoot))
            : try mailbox.maildir(for: options.delivery.filing)
    }

    public func run(_ archives: [String]) throws(DeliveryError) -> ImportReport {
        let started = Monotonic.seconds
        if !options.dryRun { database = try open() }
        let stager = ImportStager(archives: archives, maildir: maildir, options: options, onProgress: onProgress)
        let reading = BackgroundCall { stager.run() }
        // Without a thread of its own the reading would wait for ever for
        // an indexing that cannot start.
        guard reading.hasThread else {
            throw DeliveryError(.temporary, "cannot start a thread to read the archives; try again")
        }
        var tookLast = false
        do throws(DeliveryError) {
            while true {
                let chunk = stager.chunks.take()
                tookLast = chunk.isLast
                report.failures += chunk.failures
                report.skipped += chunk.repeats
                report.imported += chunk.counted
                report.bytes += chunk.bytes
                if let error = chunk.error { throw error }
                try index(chunk.messages)
                if uncommitted.count >= options.batchSize || chunk.isLast { try commit() }
                if chunk.isLast { break }
            }
        } catch {
            if !tookLast { stager.stop(); discardUntilLast(stager) }
            throw error
        }
        reading.wait()
        if let database {
            do { try database.close() } catch { throw DeliveryError(.temporary, "cannot commit: \(error)") }
        }
        if !options.dryRun { maildir.removeStaleTemporaryFiles() }
        report.seconds = Monotonic.seconds - started
        return report
    }

    /// After a failure: the reading thread, told to stop, hands over what
    /// it had written still; those files go. The failed batch's own files
    /// stay where they are, for a re-run to pick up.
    private func discardUntilLast(_ stager: ImportStager) {
        while true {
            let chunk = stager.chunks.take()
            for message in chunk.messages {
                if let temporary = message.temporary { try? FileSystem.unlink(temporary) }
            }
            if chunk.isLast { return }
        }
    }

    private func open() throws(DeliveryError) -> Database {
        do { return try mailbox.openDatabase() } catch {
            throw DeliveryError(.temporary, "cannot open the notmuch database: \(error)")
        }
    }

    private enum Verdict {
        /// The same content is there already, and owes nothing.
        case skip
        /// The file is in place, not yet indexed (an interrupted run stored it).
        case indexInPlace
        /// A new file; `duplicate`: another copy of a known Message-ID.
        case indexNew(duplicate: Bool)
        /// Someone else (`notmuch new`, after an interrupted run) indexed
        /// the file at this path with `new.tags` only: the rest is owed.
        case owed(FilePath)
    }

    /// What the database says of a staged message. The file's place is
    /// looked at again here: the reading thread looked before an earlier
    /// copy of the same bytes was put there (and indexed, or moved on by a
    /// rule or a flag rename).
    private func verdict(_ message: StagedMessage, in database: Database) throws -> Verdict {
        if FileSystem.kind(of: message.final) != .missing {
            guard let indexed = try database.findMessage(filename: message.final.string) else { return .indexInPlace }
            return try Self.owesImport(indexed) ? .owed(message.final) : .skip
        }
        // Gone since the reading thread saw it: moved on after its indexing.
        if message.temporary == nil { return .skip }
        guard let existing = try database.findMessage(id: message.messageID ?? "notmuch-sha1-" + message.digest) else {
            return .indexNew(duplicate: false)
        }
        // Moved by a rule or renamed for its flags, perhaps before a
        // `notmuch new` indexed it there.
        if let same = existing.filenames.first(where: { Self.digest(ofFile: $0) == message.digest }) {
            return try Self.owesImport(existing) ? .owed(FilePath(same)) : .skip
        }
        return .indexNew(duplicate: true)
    }

    /// Whether a message holding one of our files still waits for the
    /// import's tags, rules and Status flags. The import marks the messages
    /// it finishes, as deliveries do, so one without the mark was indexed
    /// by someone else. Only a message of that one file: a file that is a
    /// copy of a message known before is one more name for it, and an
    /// import leaves such a message's tags alone.
    private static func owesImport(_ message: Message) throws -> Bool {
        try message.property(IndexJob.deliveredProperty) == nil && message.filenames.count == 1
    }

    /// Indexed since the last commit: how many, how many of them copies
    /// of a known Message-ID, and the directories their rule moves and
    /// flag renames touched.
    private var uncommitted = (count: 0, copies: 0, moves: [FilePath]())

    /// Moves a chunk's synced files into place and indexes them, in the
    /// transaction `commit` ends. A failure of one message costs that
    /// message only; one of the disk or the database stops the import.
    private func index(_ chunk: [StagedMessage]) throws(DeliveryError) {
        guard !chunk.isEmpty, let database else { return }
        var kept: [Entry] = []
        var placed: [Entry] = []
        do {
            for message in chunk {
                let verdict = try verdict(message, in: database)
                if case .indexNew(let duplicate) = verdict {
                    kept.append(Entry(message: message, path: message.final, inPlace: false, duplicate: duplicate))
                    continue
                }
                if let temporary = message.temporary { try? FileSystem.unlink(temporary) }
                switch verdict {
                case .indexInPlace:
                    kept.append(Entry(message: message, path: message.final, inPlace: true, duplicate: false))
                case .owed(let path):
                    kept.append(Entry(message: message, path: path, inPlace: true, duplicate: false, indexedBefore: true))
                case .skip, .indexNew:
                    report.skipped += 1
                }
            }
            var directories = Set<FilePath>()
            for entry in kept {
                if !entry.inPlace, let temporary = entry.message.temporary {
                    do {
                        try FileSystem.rename(temporary, entry.path)
                    } catch {
                        guard MessageFault.belongsToMessage(error) else { throw error }
                        fail(entry.message, "cannot move its file into place: \(error)")
                        continue
                    }
                }
                placed.append(entry)
                directories.insert(entry.path.directory)
            }
            // Their names (ours, or an interrupted run's) reach the disk
            // before the database names them: a commit Xapian makes on its
            // own (`database.autocommit`) may come before `commit`. A chunk
            // a re-run skips whole syncs nothing.
            for directory in directories { try FileSystem.fsyncDirectory(directory) }
        } catch {
            throw DeliveryError(.temporary, "cannot store the messages in '\(maildir.path)': \(error)")
        }
        for entry in placed { try indexOne(entry) }
    }

    /// A message to index, and where its file is.
    private struct Entry {
        let message: StagedMessage
        let path: FilePath
        /// The file is there already (not renamed from tmp/ by this run).
        let inPlace: Bool
        let duplicate: Bool
        /// Someone else indexed the file first: what they did stays.
        var indexedBefore = false
    }

    /// How one message's atomic section ended.
    private enum Indexing {
        case indexed(DeliveryReport)
        /// libnotmuch refused the file before changing anything.
        case notMail
        /// The message's own failure, its changes undone.
        case failed(any Error)
    }

    /// One atomic section per message, as `notmuch new` does: one around
    /// the whole batch measured a third slower. The files are durable
    /// already, so a commit Xapian makes on its own mid-batch loses no
    /// message (a rule's move not yet synced can leave the database naming
    /// the old path until `notmuch new`); the batch counts as imported
    /// only after `commit`.
    private func indexOne(_ entry: Entry) throws(DeliveryError) {
        guard let database else { return }
        let (message, inPlace, duplicate, indexedBefore) = (entry.message, entry.inPlace, entry.duplicate, entry.indexedBefore)
        // Refused before GMime reads it, as a delivery refuses it; the
        // archive's other messages go on.
        if !indexedBefore, let excess = MessageLimits.scan(ofFile: entry.path.string)?.excess {
            fail(message, "\(excess)")
            Maildir.discard(entry.path)
            return
        }
        // The job marks the message delivered, as a delivery's does: without
        // the mark a re-run cannot tell a message this import finished from
        // one `notmuch new` indexed from a file an interrupted run left.
        let job = IndexJob(.archiveMessage(statusTags: message.tags, inPlace: inPlace), request: request,
                           settings: settings)
        var location = entry.path
        let outcome: Indexing
        do {
            outcome = try database.atomically { try run(job, in: database, location: &location, undoing: !indexedBefore) }
        } catch {
            throw DeliveryError(.temporary, "cannot index the batch: \(error); run the import again to resume")
        }
        switch outcome {
        case .indexed(let result):
            uncommitted.count += 1
            if result.outcome == .duplicate || duplicate { uncommitted.copies += 1 }
        case .notMail:
            fail(message, "not an email message (no From, Subject or To)")
            Maildir.discard(entry.path)
        case .failed(let error):
            fail(message, "\(error)")
            if !indexedBefore { for path in Set([location, entry.path]) { Maildir.discard(path) } }
        }
    }

    /// The job, inside the message's atomic section. A failure of the
    /// message's own is undone in the same section: libnotmuch has no call
    /// to cancel one section (closing the database with one open cancels
    /// the whole uncommitted batch, files already renamed and moved by
    /// rules included), but removing the file's names removes the message
    /// that indexing just made, with whatever tags it had got. Not
    /// `undoing` a file someone else indexed before: what they did stays.
    private func run(_ job: IndexJob, in database: Database, location: inout FilePath,
                     undoing: Bool) throws -> Indexing {
        let original = location
        do {
            return .indexed(try job.run(in: database, location: &location, moves: &uncommitted.moves))
        } catch let refused as IndexJob.Refused where refused.error.status == .fileNotEmail {
            return .notMail
        } catch {
            guard MessageFault.belongsToMessage(error) else { throw error }
            if undoing {
                for path in Set([location, original]) { try database.removeFile(path.string) }
            }
            return .failed(error)
        }
    }

    private func fail(_ message: StagedMessage, _ reason: String) {
        report.failures.append(ImportFailure(archive: message.archive, line: message.line,
                                             offset: message.offset, reason: reason))
    }

    /// Makes the renames durable, then commits: the messages indexed since
    /// the last commit count as imported only now.
    private func commit() throws(DeliveryError) {
        guard uncommitted.count > 0 || !uncommitted.moves.isEmpty, let database else { return }
        do {
            try IndexOutcome.makeDurable(uncommitted.moves)
            try database.close()
            self.database = try open()
        } catch let error as DeliveryError {
            throw error
        } catch {
            throw DeliveryError(.temporary, "cannot index the batch: \(error); run the import again to resume")
        }
        report.imported += uncommitted.count
        report.duplicateCopies += uncommitted.copies
        uncommitted = (0, 0, [])
    }

    // MARK: Helpers

    /// The SHA-1 of a file's content, or nil when it cannot be read.
    static func digest(ofFile path: String) -> String? {
        guard let fd = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) else { return nil }
        defer { try? fd.close() }
        let checksum = ContentChecksum()
        guard (try? fd.readChunks { checksum.update(Array($0)); return true }) != nil else { return nil }
        return checksum.hex
    }

    /// The From_ line's date (`Mon Nov 24 09:00:00 2025`, in UTC by convention).
    static func envelopeDate(_ envelope: String) -> Int? {
        FromLineDate.seconds(in: envelope)
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
