import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The few POSIX calls swift-system does not wrap, thrown as its `Errno`.
enum FileSystem {
    static func fsync(_ fd: FileDescriptor) throws(Errno) {
        while true {
            if Glibc.fsync(fd.rawValue) == 0 { return }
            if errno != EINTR { throw Errno(rawValue: errno) }
        }
    }

    /// Makes a directory's entries (a rename, an unlink) survive a crash.
    static func fsyncDirectory(_ path: FilePath) throws(Errno) {
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(path, .readOnly, options: [.directory, .closeOnExec]) }
        catch let error as Errno { throw error } catch { throw Errno.ioError }
        defer { try? fd.close() }
        try fsync(fd)
    }

    static func rename(_ from: FilePath, _ to: FilePath) throws(Errno) {
        let result = from.withPlatformString { f in to.withPlatformString { t in Glibc.rename(f, t) } }
        if result != 0 { throw Errno(rawValue: errno) }
    }

    /// A second name for a file; fails with EEXIST rather than replace one.
    static func link(_ existing: FilePath, _ new: FilePath) throws(Errno) {
        let result = existing.withPlatformString { e in new.withPlatformString { n in Glibc.link(e, n) } }
        if result != 0 { throw Errno(rawValue: errno) }
    }

    static func unlink(_ path: FilePath) throws(Errno) {
        if path.withPlatformString({ Glibc.unlink($0) }) != 0 { throw Errno(rawValue: errno) }
    }

    /// Creates a directory; one that already exists is fine. A new one's
    /// entry is synced in its parent, so it survives a crash with what goes in it.
    static func makeDirectory(_ path: FilePath, mode: mode_t) throws(Errno) {
        if path.withPlatformString({ Glibc.mkdir($0, mode) }) == 0 {
            try fsyncDirectory(path.directory)
        } else if errno != EEXIST {
            throw Errno(rawValue: errno)
        }
    }

    enum Kind { case missing, directory, other }

    static func kind(of path: FilePath) -> Kind {
        guard let info = path.withPlatformString(status) else { return .missing }
        return (info.st_mode & S_IFMT) == S_IFDIR ? .directory : .other
    }

    /// Whether anything is at `path` (following symlinks). A plain string,
    /// for callers that try many names: building a FilePath for each costs
    /// more than its stat.
    static func exists(_ path: String) -> Bool {
        path.withCString(status) != nil
    }

    /// stat(2), following symlinks; nil when nothing is there.
    private static func status(_ path: UnsafePointer<CChar>) -> Glibc.stat? {
        var info = Glibc.stat()
        return fstatat(AT_FDCWD, path, &info, 0) == 0 ? info : nil
    }

    /// The path with every symlink resolved, or nil when it does not exist.
    static func realPath(_ path: FilePath) -> FilePath? {
        guard let resolved = path.withPlatformString({ Glibc.realpath($0, nil) }) else { return nil }
        defer { free(resolved) }
        return FilePath(platformString: resolved)
    }

    /// The names in a directory, without "." and "..".
    static func list(_ path: FilePath) throws(Errno) -> [String] {
        guard let dir = path.withPlatformString({ opendir($0) }) else { throw Errno(rawValue: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Whether two paths name the same file (device and inode).
    static func sameFile(_ first: FilePath, _ second: FilePath) -> Bool {
        guard let a = first.withPlatformString(status), let b = second.withPlatformString(status) else { return false }
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }

    static func isExecutable(_ path: FilePath) -> Bool {
        path.withPlatformString { access($0, X_OK) } == 0 && kind(of: path) == .other
    }

    static func hostName() -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let ok = buffer.withUnsafeMutableBufferPointer { raw in
            raw.withMemoryRebound(to: CChar.self) { gethostname($0.baseAddress!, $0.count - 1) == 0 }
        }
        guard ok else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
    }
}

extension FilePath {
    /// The path less its last component, as `removingLastComponent()` gives
    /// it for the normalized paths used here. Written out because swift-system
    /// goes through unspecialized generic code there, whose first call costs
    /// a process about 0.3 ms of runtime type lookups; a delivery is one process.
    var directory: FilePath {
        let text = string
        guard let slash = text.utf8.lastIndex(of: UInt8(ascii: "/")) else { return FilePath("") }
        if slash == text.startIndex { return FilePath("/") }
        return FilePath(String(text[..<slash]))
    }
}

extension FileDescriptor {
    /// Writes all of `bytes`, as swift-system's generic `writeAll` does,
    /// without the runtime type lookups its first (unspecialized) call costs.
    func writeEverything(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var rest = bytes
        while !rest.isEmpty {
            let count: Int
            do { count = try write(rest) } catch let error as Errno { throw error } catch { throw Errno.ioError }
            rest = UnsafeRawBufferPointer(rebasing: rest[count...])
        }
    }
}
