import SystemPackage
import Synchronization
import MaildirKit

/// Where a message arriving over LMTP waits, while it arrives, for its
/// recipients' deliveries: a file with no name (unlinked as soon as it is
/// made), so that a server killed mid-DATA leaves nothing behind, and the
/// message is never held whole in memory. Not synced: until a delivery has
/// copied it into a maildir and synced that, nothing was promised.
///
/// A spool file is emptied and kept for the next message (a few per
/// directory): making and freeing an inode for every message cost the
/// server about 0.3 ms of CPU a message in a burst (perf: ext4's inode
/// allocation, which on a file system without a journal steps over every
/// inode freed in the last moments, and the spool's own open and close).
final class Spool {
    let descriptor: FileDescriptor
    /// The first write error; the transaction then defers every recipient.
    private(set) var failure: Errno?
    private(set) var size = 0
    private let directory: String
    private let closed = Atomic<Bool>(false)

    /// Emptied spool files, by directory, for the next messages.
    private static let kept = Mutex<[String: [FileDescriptor]]>([:])
    /// At most this many per directory: enough for the messages a busy
    /// server has in flight at once, each an empty file with no name.
    static let keptAtMost = 16

    /// A spool in `directory` (a mail root's tmp/: the same file system as
    /// the maildirs, and a place maildir readers ignore).
    init(in directory: String) throws(Errno) {
        self.directory = directory
        if let reused = Self.kept.withLock({ $0[directory]?.popLast() }) {
            descriptor = reused
            return
        }
        // An O_TMPFILE file never has a name, so a server killed at any
        // instant leaves nothing (make stress --lmtp found a named spool
        // left in a mail root by a SIGKILL between its open and unlink).
        descriptor = try AnonymousFile.create(in: directory, prefix: "lmtp-spool")
    }

    func append(_ bytes: [UInt8]) {
        guard failure == nil, !bytes.isEmpty else { return }
        do {
            _ = try bytes.withUnsafeBytes { try descriptor.writeAll($0) }
            size += bytes.count
        } catch {
            failure = error as? Errno ?? .ioError
        }
    }

    /// Back to the first byte, for the next recipient's delivery.
    func rewind() throws(Errno) {
        do { _ = try descriptor.seek(offset: 0, from: .start) } catch { throw error as? Errno ?? .ioError }
    }

    /// Done with the message: the file is emptied and kept for another,
    /// or closed (after a write error, or when enough are kept).
    func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let emptied = failure == nil && (try? descriptor.resize(to: 0)) != nil
            && (try? descriptor.seek(offset: 0, from: .start)) == 0
        let keeping = emptied && Self.kept.withLock { kept in
            guard kept[directory, default: []].count < Self.keptAtMost else { return false }
            kept[directory, default: []].append(descriptor)
            return true
        }
        if !keeping { try? descriptor.close() }
    }
}
