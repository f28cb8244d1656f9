import Synchronization
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A file with no name where bytes wait until they are read back: a message
/// arriving over LMTP until its recipients' deliveries have copied it, a
/// compressed stream until `import` has checked it whole. Nobody else can
/// open it, a process killed at any instant leaves nothing behind, and what
/// it holds is never in memory whole.
///
/// Never synced: until a delivery has copied the bytes into a maildir and
/// synced that, nothing was promised.
///
/// A closed spool file is emptied and kept for the next one in the same
/// directory (a few per directory): making and freeing an inode for every
/// message cost the LMTP server about 0.3 ms of CPU a message in a burst
/// (perf: ext4's inode allocation, which on a file system without a journal
/// steps over every inode freed in the last moments, and the spool's own
/// open and close).
package final class SpoolFile {
    package let descriptor: FileDescriptor
    /// The first write error; what was written is then incomplete.
    package private(set) var failure: Errno?
    /// Bytes written so far.
    package private(set) var size = 0
    private let directory: String
    private let closed = Atomic<Bool>(false)

    /// Emptied spool files, by directory, for the next ones.
    private static let kept = Mutex<[String: [FileDescriptor]]>([:])
    /// At most this many per directory: enough for the messages a busy
    /// server has in flight at once, each an empty file with no name.
    package static let keptAtMost = 16

    /// A spool file in `directory` (the same file system as where the bytes
    /// go next, and a place that readers ignore, such as a maildir's tmp/).
    /// A new one is an `AnonymousFile` (O_TMPFILE, so that a process killed
    /// at any instant leaves nothing); `prefix` names it, for an instant
    /// only, on a file system without O_TMPFILE: `.PREFIX.<pid>.<random>`,
    /// which `Leftovers.sweep(_:prefix:)` removes if a process dies then.
    package init(in directory: String, prefix: String) throws(Errno) {
        self.directory = directory
        if let reused = Self.kept.withLock({ $0[directory]?.popLast() }) {
            descriptor = reused
            return
        }
        descriptor = try AnonymousFile.create(in: directory, prefix: prefix)
    }

    deinit { close() }

    /// The file's name for opening it again (each open reads from its own
    /// offset), for as long as this object lives.
    package var path: String { "/proc/self/fd/\(descriptor.rawValue)" }

    /// Appends `bytes`; after a write error nothing more is written and
    /// `failure` says why.
    package func append(_ bytes: UnsafeRawBufferPointer) {
        guard failure == nil, !bytes.isEmpty else { return }
        do {
            try descriptor.writeEverything(bytes)
            size += bytes.count
        } catch {
            failure = error
        }
    }

    package func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Back to the first byte, to read it all again.
    package func rewind() throws(Errno) {
        do { _ = try descriptor.seek(offset: 0, from: .start) } catch { throw error as? Errno ?? .ioError }
    }

    /// Done with the bytes: the file is emptied and kept for another, or
    /// closed (after a write error, or when enough are kept). Once only;
    /// safe from any thread.
    package func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let emptied = failure == nil && ftruncate(descriptor.rawValue, 0) == 0
            && lseek(descriptor.rawValue, 0, SEEK_SET) == 0
        let keeping = emptied && Self.kept.withLock { kept in
            guard kept[directory, default: []].count < Self.keptAtMost else { return false }
            kept[directory, default: []].append(descriptor)
            return true
        }
        if !keeping { try? descriptor.close() }
    }
}
