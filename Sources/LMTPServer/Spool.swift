import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Where a message arriving over LMTP waits, while it arrives, for its
/// recipients' deliveries: a file with no name (unlinked as soon as it is
/// made), so that a server killed mid-DATA leaves nothing behind, and the
/// message is never held whole in memory. Not synced: until a delivery has
/// copied it into a maildir and synced that, nothing was promised.
final class Spool {
    let descriptor: FileDescriptor
    /// The first write error; the transaction then defers every recipient.
    private(set) var failure: Errno?
    private(set) var size = 0

    /// A spool in `directory` (a mail root's tmp/: the same file system as
    /// the maildirs, and a place maildir readers ignore).
    init(in directory: String) throws(Errno) {
        // An O_TMPFILE file never has a name, so a server killed at any
        // instant leaves nothing (make stress --lmtp found a named spool
        // left in a mail root by a SIGKILL between its open and unlink).
        let unnamed = open(directory, O_RDWR | Self.temporaryFile | O_CLOEXEC, 0o600)
        if unnamed >= 0 {
            descriptor = FileDescriptor(rawValue: unnamed)
            return
        }
        // A file system without O_TMPFILE: a name, removed at once.
        var random = SystemRandomNumberGenerator()
        let name = "\(directory)/.lmtp-spool.\(getpid()).\(random.next() as UInt64)"
        let raw = open(name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard raw >= 0 else { throw Errno(rawValue: errno) }
        unlink(name)
        descriptor = FileDescriptor(rawValue: raw)
    }

    /// Linux's O_TMPFILE (__O_TMPFILE | O_DIRECTORY), which Glibc's
    /// module does not export.
    private static let temporaryFile: Int32 = 0o20_000_000 | O_DIRECTORY

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

    func close() {
        try? descriptor.close()
    }
}
