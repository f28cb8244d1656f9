internal import CPosix
import Mbox
import Synchronization
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// An archive message written to tmp/ (or found in place), waiting for the
/// database to say whether it is new.
struct StagedMessage {
    /// Nil: the file is in place already, stored by an interrupted run.
    let temporary: FilePath?
    let final: FilePath
    let digest: String
    let messageID: String?
    /// What the archive's Status flags say.
    let tags: [TagOperation]
    let archive: String
    let line: Int
    let offset: Int
}

/// Up to a chunk of staged messages, their files synced; what the
/// archives held besides (failures, bytes); and whether it is the last.
struct StagedChunk {
    var messages: [StagedMessage] = []
    var failures: [ImportFailure] = []
    /// The same bytes twice within the chunk: stored once.
    var repeats = 0
    /// A dry run's messages, counted and not written.
    var counted = 0
    var bytes = 0
    var error: DeliveryError?
    var isLast = false
}

/// Reads and splits the archives and writes each message to tmp/, on a
/// thread of its own and at most two chunks ahead of the indexing (one
/// handed over, one being written): libnotmuch's work,
/// which cannot be shared out, then has a CPU to itself, and the disk's
/// syncs overlap with it. It asks nothing of the database.
final class ImportStager: @unchecked Sendable {
    let chunks = Handoff<StagedChunk>()
    private let archives: [String]
    private let maildir: Maildir
    private let format: MboxFormat
    private let chunkSize: Int
    private let dryRun: Bool
    private let onProgress: (ImportProgress) -> Void
    private var progress = ImportProgress()
    private let stopping = Atomic<Bool>(false)

    init(archives: [String], maildir: Maildir, format: MboxFormat, chunkSize: Int, dryRun: Bool,
         onProgress: @escaping (ImportProgress) -> Void) {
        self.archives = archives
        self.maildir = maildir
        self.format = format
        self.chunkSize = chunkSize
        self.dryRun = dryRun
        self.onProgress = onProgress
    }

    /// Asks `run` to hand over what it has, marked last, and end.
    func stop() { stopping.store(true, ordering: .releasing) }

    /// Hands every chunk over, the last one marked; stops at the first error,
    /// or when asked to.
    func run() {
        var chunk = StagedChunk()
        var finals = Set<FilePath>()
        for archive in archives {
            progress.archive = archive
            progress.secondsLeft = nil
            let started = Clock.now
            let source: ByteSource
            let reader: MboxReader
            do {
                source = try Archive.open(archive)
                reader = MboxReader(source: source, format: format, name: archive)
            } catch {
                // One unreadable archive does not cost the others.
                chunk.failures.append(ImportFailure(archive: archive, line: 0, offset: 0, reason: "cannot read: \(error)"))
                continue
            }
            while true {
                let message: MboxMessage
                do {
                    guard let next = try reader.next() else { break }
                    message = next
                } catch {
                    let reason = (error as? MboxError)?.description ?? "\(error)"
                    chunk.failures.append(ImportFailure(archive: archive, line: 0, offset: progress.bytes, reason: reason))
                    break
                }
                if stopping.load(ordering: .acquiring) {
                    hand(chunk, last: true)
                    return
                }
                progress.messages += 1
                progress.bytes += message.bytes.count
                chunk.bytes += message.bytes.count
                if dryRun {
                    chunk.counted += 1
                } else {
                    do {
                        if let staged = try stage(message, archive: archive, finals: &finals) {
                            chunk.messages.append(staged)
                        } else {
                            chunk.repeats += 1
                        }
                    } catch {
                        chunk.error = error
                        hand(chunk, last: true)
                        return
                    }
                    if chunk.messages.count >= chunkSize {
                        guard hand(chunk, last: false) else { return }
                        chunk = StagedChunk()
                        finals = []
                    }
                }
                if progress.messages % 100 == 0 {
                    if let fraction = source.fractionRead, fraction > 0.01 {
                        progress.secondsLeft = (Clock.now - started) * (1 - fraction) / fraction
                    }
                    onProgress(progress)
                }
            }
        }
        onProgress(progress)
        hand(chunk, last: true)
    }

    /// Syncs the chunk's files (one syncfs for all of them, instead of an
    /// fsync each) and passes it on. False after an error.
    @discardableResult
    private func hand(_ chunk: StagedChunk, last: Bool) -> Bool {
        var chunk = chunk
        chunk.isLast = last || chunk.error != nil
        if chunk.error == nil, chunk.messages.contains(where: { $0.temporary != nil }) {
            do {
                let fd = try FileDescriptor.open(maildir.tmp, .readOnly, options: [.directory, .closeOnExec])
                let synced = cposix_syncfs(fd.rawValue)
                try fd.close()
                if synced != 0 { throw Errno(rawValue: errno) }
            } catch {
                chunk.error = DeliveryError(.temporary, "cannot sync the messages in '\(maildir.tmp)': \(error)")
                chunk.isLast = true
            }
        }
        chunks.put(chunk)
        return !chunk.isLast
    }

    /// Writes one message to a uniquely named file in tmp/, unless its file
    /// is in place already. Nil when the same bytes came earlier in the chunk.
    private func stage(_ message: MboxMessage, archive: String,
                       finals: inout Set<FilePath>) throws(DeliveryError) -> StagedMessage? {
        let bytes = message.bytes
        let digest = ContentChecksum.hex(of: bytes)
        let headers = HeaderScan(bytes)
        let status = ArchiveStatus(status: headers.value("status"), xStatus: headers.value("x-status"))
        // Named after the content, so that a second run finds what the first stored.
        let name = digest + ".import"
        let final = status.isNew ? maildir.new.appending(name) : maildir.cur.appending(name + ":2," + status.maildirFlags)
        guard finals.insert(final).inserted else { return nil }
        var temporary: FilePath?
        if FileSystem.kind(of: final) == .missing {
            // A unique name: a copy of the same bytes in the chunk before
            // may still be on its way into place.
            let path = maildir.tmp.appending(MaildirName.unique())
            do {
                try Importer.write(bytes, to: path)
            } catch {
                throw DeliveryError(.temporary, "\(archive):\(message.line): cannot write '\(path)': \(error)")
            }
            if !headers.hasDate, let date = Importer.envelopeDate(message.envelope) {
                var times = [timespec(tv_sec: date, tv_nsec: 0), timespec(tv_sec: date, tv_nsec: 0)]
                _ = path.withPlatformString { utimensat(AT_FDCWD, $0, &times, 0) }
            }
            temporary = path
        }
        return StagedMessage(temporary: temporary, final: final, digest: digest, messageID: headers.messageID,
                             tags: status.tags, archive: archive, line: message.line, offset: message.offset)
    }
}
