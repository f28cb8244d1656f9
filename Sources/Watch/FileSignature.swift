#if canImport(Glibc)
import Glibc
#endif

/// What tells one version of a file from the next without reading it:
/// a file written again or replaced has another inode, size or mtime.
struct FileSignature: Equatable {
    let inode: UInt64, size: Int64, seconds: Int, nanoseconds: Int

    /// Nil when nothing is at `path`.
    init?(_ path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        seconds = info.st_mtim.tv_sec
        nanoseconds = info.st_mtim.tv_nsec
    }
}
