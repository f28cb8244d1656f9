import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A file with no name, in a directory: what a spool writes a message or
/// an archive to, so that a process killed at any moment leaves nothing.
package enum AnonymousFile {
    /// Opens a new, empty, read-write file in `directory` that has no
    /// name: O_TMPFILE, which never gives it one; on a file system without
    /// it, a unique name starting `.\(prefix).`, removed at once.
    package static func create(in directory: String, prefix: String) throws(Errno) -> FileDescriptor {
        let unnamed = open(directory, O_RDWR | temporaryFile | O_CLOEXEC, 0o600)
        if unnamed >= 0 { return FileDescriptor(rawValue: unnamed) }
        var random = SystemRandomNumberGenerator()
        let name = "\(directory)/.\(prefix).\(getpid()).\(random.next() as UInt64)"
        let raw = open(name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard raw >= 0 else { throw Errno(rawValue: errno) }
        unlink(name)
        return FileDescriptor(rawValue: raw)
    }

    /// Linux's O_TMPFILE (__O_TMPFILE | O_DIRECTORY), which Glibc's
    /// module does not export.
    private static let temporaryFile: Int32 = 0o20_000_000 | O_DIRECTORY
}
