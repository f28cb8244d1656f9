#if canImport(Glibc)
import Glibc
#endif

/// Files libnotmuch found to be no mail (no From, Subject or To), so that
/// each is tried once and logged once, not at every event or scan; a file
/// written again (another inode, size or mtime) is tried again.
final class NonMailFiles {
    private struct Signature: Equatable {
        let inode: UInt64, size: Int64, mtime: Int, nanoseconds: Int

        init?(_ path: String) {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            inode = UInt64(info.st_ino)
            size = Int64(info.st_size)
            mtime = info.st_mtim.tv_sec
            nanoseconds = info.st_mtim.tv_nsec
        }
    }

    private var known: [String: Signature] = [:]

    /// Whether `path` is the very file found to be no mail before.
    func remembers(_ path: String) -> Bool {
        guard let signature = known[path] else { return false }
        if Signature(path) == signature { return true }
        known[path] = nil
        return false
    }

    func remember(_ path: String) {
        known[path] = Signature(path)
    }

    func forget(_ path: String) {
        known[path] = nil
    }

    /// Forgets everything below `directory` (removed).
    func forget(under directory: String) {
        let prefix = directory + "/"
        known = known.filter { !$0.key.hasPrefix(prefix) }
    }
}
