import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Files a killed delivery left in a maildir's tmp/ (and in the other
/// places a delivery writes a file before naming it), found and removed
/// without ever touching one a live delivery is still writing.
///
/// A name this program makes (`MaildirName.unique()`) says when it was made,
/// by which process and on which host. On this host, a writer that is gone
/// (kill(pid, 0) says ESRCH) can have its files removed at once; so can one
/// whose pid now belongs to a process started after the file was named (the
/// pid was reused): /proc/PID/stat gives that process's start. Everything
/// else (another host's files, a writer that may be alive) waits for the
/// maildir convention's 36 hours untouched. Names this program does not make
/// are never touched: another MDA's files are its own business.
package enum Leftovers {
    /// The maildir convention: a file left in tmp/ for 36 hours is debris.
    package static let staleAge: Double = 36 * 3600

    /// Whether the file named `name` (made at `seconds` by `pid`, per its
    /// name, or per its times when the name has none) may go.
    static func isAbandoned(pid: Int32, madeAt seconds: Int) -> Bool {
        if pid == getpid() { return false }
        if kill(pid, 0) != 0 { return errno == ESRCH }
        // Alive (or not ours to signal): the writer only if it started
        // before the file was named. Start times are known to the tick,
        // boot time to the second: a margin of two seconds.
        guard let started = processStart(pid) else { return false }
        return started > seconds + 2
    }

    /// When process `pid` started (seconds since the epoch), from
    /// /proc/PID/stat's 22nd field and /proc/stat's btime.
    static func processStart(_ pid: Int32) -> Int? {
        guard let stat = readSmallFile("/proc/\(pid)/stat"),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After the command name (which may hold spaces and parentheses):
        // field 3 on; the start time is field 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Int(fields[19]), let boot = bootTime() else { return nil }
        let perSecond = max(sysconf(Int32(_SC_CLK_TCK)), 1)
        return boot + ticks / perSecond
    }

    private static func bootTime() -> Int? {
        guard let text = readSmallFile("/proc/stat") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Int(line.dropFirst(6).trimmingSpaces)
        }
        return nil
    }

    private static func readSmallFile(_ path: String) -> String? {
        guard let fd = try? FileSystem.openRegularFile(path) else { return nil }
        defer { try? fd.close() }
        var bytes = [UInt8](repeating: 0, count: 1 << 16)
        var count = 0
        while count < bytes.count {
            let got = bytes.withUnsafeMutableBytes { read(fd.rawValue, $0.baseAddress! + count, $0.count - count) }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { break }
            count += got
        }
        return String(decoding: bytes[..<count], as: UTF8.self)
    }

    /// The pid and time in a name `MaildirName.unique()` made on this host.
    static func writer(of name: String) -> (pid: Int32, seconds: Int)? {
        guard MaildirName.isOurs(name), MaildirName.isFromThisHost(name) else { return nil }
        let parts = name.split(separator: ".", maxSplits: 2)
        guard let seconds = Int(parts[0]), let p = parts[1].firstIndex(of: "P"),
              let r = parts[1][p...].firstIndex(of: "R"),
              let pid = Int32(parts[1][parts[1].index(after: p)..<r]) else { return nil }
        return (pid, seconds)
    }

    /// Removes what dead deliveries left in the directory `tmp` (a
    /// maildir's tmp/): names `MaildirName.unique()` made whose writer is
    /// gone, and any such name untouched for 36 hours. At most `limit`
    /// names are looked at (a delivery's bounded share of the work). The
    /// number removed.
    @discardableResult
    package static func sweep(tmp: FileDescriptor, now: Double = Double(time(nil)), limit: Int = .max) -> Int {
        guard let names = try? FileSystem.list(tmp) else { return 0 }
        var removed = 0
        for name in names.prefix(limit) where MaildirName.isOurs(name) {
            var info = Glibc.stat()
            guard fstatat(tmp.rawValue, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let stale = now - Double(info.st_mtim.tv_sec) > staleAge
            let abandoned = writer(of: name).map { isAbandoned(pid: $0.pid, madeAt: $0.seconds) } ?? false
            if (stale || abandoned) && unlinkat(tmp.rawValue, name, 0) == 0 { removed += 1 }
        }
        return removed
    }

    /// Removes files named `PREFIX<pid>…` in `directory` whose writer is
    /// gone (a named spool, a queue record's temporary file): the pid is
    /// the digits right after `prefix`; the file's own time stands for when
    /// it was made. The number removed.
    @discardableResult
    package static func sweep(_ directory: FilePath, prefix: String, now: Double = Double(time(nil))) -> Int {
        guard let names = try? FileSystem.list(directory) else { return 0 }
        var removed = 0
        for name in names where name.hasPrefix(prefix) {
            let digits = name.dropFirst(prefix.count).prefix { $0.isASCII && $0.isNumber }
            guard let pid = Int32(digits) else { continue }
            let path = directory.appending(name)
            var info = Glibc.stat()
            guard path.withPlatformString({ lstat($0, &info) }) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            let stale = now - Double(info.st_mtim.tv_sec) > staleAge
            if stale || isAbandoned(pid: pid, madeAt: info.st_mtim.tv_sec),
               (try? FileSystem.unlink(path)) != nil { removed += 1 }
        }
        return removed
    }

    /// Every maildir's tmp/ at or below `root` (not through symlinks, not
    /// in `.notmuch`, at most 64 levels deep), swept. The number removed.
    @discardableResult
    package static func sweepTree(_ root: FilePath, now: Double = Double(time(nil))) -> Int {
        let raw = root.withPlatformString { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard raw >= 0 else { return 0 }
        let fd = FileDescriptor(rawValue: raw)
        defer { try? fd.close() }
        return sweepBelow(fd, now: now, depth: 0)
    }

    private static func sweepBelow(_ folder: FileDescriptor, now: Double, depth: Int) -> Int {
        guard depth < 64, let names = try? FileSystem.list(folder) else { return 0 }
        var removed = 0
        for name in names where !["new", "cur", MailFolder.databaseFolderName].contains(name) {
            let raw = openat(folder.rawValue, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard raw >= 0 else { continue }
            let sub = FileDescriptor(rawValue: raw)
            defer { try? sub.close() }
            removed += name == "tmp" ? sweep(tmp: sub, now: now) : sweepBelow(sub, now: now, depth: depth + 1)
        }
        return removed
    }
}
