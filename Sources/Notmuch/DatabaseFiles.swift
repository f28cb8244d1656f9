#if canImport(Glibc)
import Glibc
#endif

/// Where a database lies on disk and whether a writer holds it. The one
/// place that knows Xapian's layout, so that nothing above this target
/// names `xapian/` or `flintlock`.
extension Database {
    /// The database's folder inside a mail root, as `notmuch new` names it
    /// and skips it: the only spelling of it outside MaildirKit, which keeps
    /// the same name (`MailFolder.databaseFolderName`) to refuse it as a
    /// folder without depending on this target.
    public static let folderName = ".notmuch"

    /// libnotmuch opens the database with Xapian's retry lock, so a writer
    /// waits for as long as another holds the lock, with no timeout. This
    /// sees the lock taken without waiting: Xapian holds an OFD lock on its
    /// `flintlock` file, and F_OFD_GETLK reports it without taking it. False
    /// when there is no database (nothing to wait for).
    public static func isWriteLockHeld(databasePath: String) -> Bool {
        let lockFile = xapianDirectory(databasePath: databasePath) + "/flintlock"
        // Without blocking: a FIFO put in its place would wait for a writer for ever.
        let fd = Glibc.open(lockFile, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        var probe = flock()
        probe.l_type = Int16(F_WRLCK)
        probe.l_whence = Int16(SEEK_SET)
        probe.l_start = 0
        probe.l_len = 0
        // Linux's F_OFD_GETLK (<bits/fcntl-linux.h>); Glibc declares it only
        // under _GNU_SOURCE, which Swift's Glibc module is not built with.
        let ofdGetLock: Int32 = 36
        guard fcntl(fd, ofdGetLock, &probe) == 0 else { return false }
        return probe.l_type != Int16(F_UNLCK)
    }

    /// The database's own folder, the one holding its `xapian/` directory:
    /// `databasePath` itself when Xapian's files are right below it, else
    /// its `.notmuch/`. Files a program keeps for the database (a queue of
    /// deliveries) belong here, beside Xapian's.
    public static func folder(databasePath: String) -> String {
        let direct = join(databasePath, "xapian")
        return isDirectory(direct) ? databasePath : join(databasePath, folderName)
    }

    /// The database's folder where a database made at `databasePath` by
    /// this program puts it (`notmuch new`'s layout): its `.notmuch`
    /// folder, whether or not it exists yet.
    public static func standardFolder(databasePath: String) -> String {
        join(databasePath, folderName)
    }

    /// Whether a database has been made at `databasePath`: its Xapian
    /// directory is there.
    public static func exists(databasePath: String) -> Bool {
        isDirectory(xapianDirectory(databasePath: databasePath))
    }

    /// Xapian's directory, chosen as libnotmuch chooses it: `xapian/` when
    /// that is a directory, else `.notmuch/xapian/`.
    static func xapianDirectory(databasePath: String) -> String {
        join(folder(databasePath: databasePath), "xapian")
    }

    private static func isDirectory(_ path: String) -> Bool {
        var info = Glibc.stat()
        // Following symlinks, as libnotmuch does for a linked database folder.
        return fstatat(AT_FDCWD, path, &info, 0) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    private static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
