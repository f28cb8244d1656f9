import SystemPackage
#if canImport(Glibc)
import Glibc
import MaildirKit
#endif

/// libnotmuch opens the database with Xapian's retry lock, so a writer
/// waits for as long as another holds the lock. These let a delivery see
/// the lock taken without waiting; `BackgroundCall` bounds the wait itself.
public enum WriteLock {
    /// Xapian's lock file for a database at `databasePath`, as libnotmuch
    /// chooses it: `xapian/` when present, else `.notmuch/xapian/`.
    public static func lockFile(databasePath: String) -> FilePath {
        let direct = FilePath(databasePath).appending("xapian")
        if FileSystem.kind(of: direct) == .directory { return direct.appending("flintlock") }
        return FilePath(databasePath).appending(".notmuch").appending("xapian").appending("flintlock")
    }

    /// Whether some process holds the write lock. Xapian takes an OFD
    /// lock on the lock file; F_OFD_GETLK sees it without taking it.
    public static func isHeld(_ lockFile: FilePath) -> Bool {
        let fd = lockFile.withPlatformString { open($0, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var probe = flock()
        probe.l_type = Int16(F_WRLCK)
        probe.l_whence = Int16(SEEK_SET)
        probe.l_start = 0
        probe.l_len = 0
        let ofdGetLock: Int32 = 36  // F_OFD_GETLK; a macro Swift does not import
        guard fcntl(fd, ofdGetLock, &probe) == 0 else { return false }
        return probe.l_type != Int16(F_UNLCK)
    }
}
