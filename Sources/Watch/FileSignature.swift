import SystemPackage
/// What tells one version of a file from the next without reading it:
/// a file written again or replaced has another inode, size or mtime.
struct FileSignature: Equatable {
    let inode: UInt64, size: Int64, seconds: Int, nanoseconds: Int

    /// Nil when nothing is at `path`.
    init?(_ path: String) {
        guard let info = try? Stat(path) else { return nil }
        inode = UInt64(info.inode.rawValue)
        size = info.size
        seconds = info.st_mtim.tv_sec
        nanoseconds = info.st_mtim.tv_nsec
    }
}
