import Mbox
import Synchronization
import SystemPackage
import MaildirKit
import Threads

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
    /// The format, the dry run and the size limit come from here.
    private let options: ImportOptions
    /// Handed over in chunks smaller than a commit's batch, so that the
    /// indexing starts soon and never waits long for the reading.
    private var chunkSize: Int { min(100, options.batchSize) }
    private var dryRun: Bool { options.dryRun }
    private let onProgress: (ImportProgress) -> Void
    private var progress = ImportProgress()
    private let stopping = Atomic<Bool>(false)

    init(archives: [String], maildir: Maildir, options: ImportOptions, onProgress: @escaping (ImportProgress) -> Void) {
        self.options = options
        self.archives = archives
        self.maildir = maildir
        self.onProgress = onProgress
    }

    /// Where a compressed stream (standard input, a pipe) is copied to be checked: the
    /// maildir's tmp/, on the same disk as what it will become; a dry run
    /// creates nothing there.
    private var spoolDirectory: String {
        dryRun ? (ProcessEnvironment.value(of: "TMPDIR") ?? "/tmp") : maildir.tmp.string
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
            let started = Monotonic.seconds
            let source: ByteSource
            let reader: MboxReader
            // Its descriptor names the spooled input until it is opened.
            var spool: StreamSpool?
            defer { withExtendedLifetime(spool) {} }
            do {
                let opened = try StreamSpool(path: archive, directory: spoolDirectory)
                spool = opened
                if let plain = opened.plainSource {
                    source = plain
                } else {
                    // A corrupt archive would store garbage before the decoder
                    // noticed; a truncated one keeps what decodes before the
                    // cut (the reader reports the cut as a failure there).
                    switch ArchiveCheck.verify(opened.path, name: archive) {
                    case .corrupt(let reason):
                        chunk.failures.append(ImportFailure(archive: archive, line: 0, offset: 0,
                                                            reason: "\(reason); nothing from this archive is stored"))
                        continue
                    case .unreadable(let reason):
                        chunk.failures.append(ImportFailure(archive: archive, line: 0, offset: 0, reason: "cannot read: \(reason)"))
                        continue
                    case .plain, .intact, .truncated:
                        break
                    }
                    source = try Archive.open(opened.path, name: archive)
                }
                reader = MboxReader(source: source, format: options.format, name: archive)
            } catch {
                // One unreadable archive does not cost the others.
                chunk.failures.append(ImportFailure(archive: archive, line: 0, offset: 0, reason: "cannot read: \(error)"))
                continue
            }
            while true {
                // A dry run counts the bytes and writes nothing.
                let file = dryRun ? nil : StagingFile(path: maildir.tmp.appending(MaildirName.unique()),
                                                      limit: options.maxMessageSize)
                let entry: MboxEntry
                do {
                    guard let next = try reader.next(writingTo: { file?.append($0) }) else {
                        file?.discard()
                        break
                    }
                    entry = next
                } catch {
                    file?.discard()
                    let reason = (error as? MboxError)?.description ?? "\(error)"
                    chunk.failures.append(ImportFailure(archive: archive, line: 0, offset: progress.bytes, reason: reason))
                    break
                }
                if stopping.load(ordering: .acquiring) {
                    file?.discard()
                    hand(chunk, last: true)
                    return
                }
                progress.messages += 1
                progress.bytes += entry.size
                chunk.bytes += entry.size
                guard let file else {
                    chunk.counted += 1
                    reportProgress(started: started, source: source)
                    continue
                }
                if file.isOversize {
                    file.discard()
                    chunk.failures.append(ImportFailure(
                        archive: archive, line: entry.line, offset: entry.offset,
                        reason: "larger than --max-message-size (\(entry.size) bytes, the limit is \(options.maxMessageSize)); not stored"))
                } else {
                    do {
                        if let staged = try stage(entry, file: file, archive: archive, finals: &finals) {
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
                reportProgress(started: started, source: source)
            }
        }
        onProgress(progress)
        hand(chunk, last: true)
    }

    /// Every 100 messages, with the time left for the archive.
    private func reportProgress(started: Double, source: ByteSource) {
        guard progress.messages % 100 == 0 else { return }
        if let fraction = source.fractionRead, fraction > 0.01 {
            progress.secondsLeft = (Monotonic.seconds - started) * (1 - fraction) / fraction
        }
        onProgress(progress)
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
                defer { try? fd.close() }
                try FileSystem.syncFileSystem(containing: fd)
            } catch {
                chunk.error = DeliveryError(.temporary, "cannot sync the messages in '\(maildir.tmp)': \(error)")
                chunk.isLast = true
            }
        }
        chunks.put(chunk)
        return !chunk.isLast
    }

    /// Names the message's file after its content, now that all of it is
    /// written to tmp/; the file goes if its content is in place already.
    /// Nil when the same bytes came earlier in the chunk.
    private func stage(_ entry: MboxEntry, file: StagingFile, archive: String,
                       finals: inout Set<FilePath>) throws(DeliveryError) -> StagedMessage? {
        let digest = file.finish()
        let path = file.path
        let headers = HeaderScan(entry.headers)
        let status = ArchiveStatus(status: headers.value("status"), xStatus: headers.value("x-status"))
        // Named after the content, so that a second run finds what the first stored.
        let name = digest + ".import"
        let final = status.isNew ? maildir.new.appending(name) : maildir.cur.appending(name + ":2," + status.maildirFlags)
        guard finals.insert(final).inserted else {
            file.discard()
            return nil
        }
        var temporary: FilePath?
        if FileSystem.kind(of: final) == .missing {
            do throws(Errno) { try file.store() } catch {
                file.discard()
                throw DeliveryError(.temporary, "\(archive):\(entry.line): cannot write '\(path)': \(error)")
            }
            if !headers.hasDate, let date = Importer.envelopeDate(entry.envelope) {
                try? FileSystem.setTimes(path, seconds: date)
            }
            temporary = path
        } else {
            // Only a message larger than the buffer was written already.
            file.discard()
        }
        return StagedMessage(temporary: temporary, final: final, digest: digest, messageID: headers.messageID,
                             tags: status.tags, archive: archive, line: entry.line, offset: entry.offset)
    }
}
