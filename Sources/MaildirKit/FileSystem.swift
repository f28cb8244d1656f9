internal import CPosix
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The few POSIX calls swift-system does not wrap, thrown as its `Errno`.
package enum FileSystem {
    package static func fsync(_ fd: FileDescriptor) throws(Errno) {
        while true {
            if Glibc.fsync(fd.rawValue) == 0 { return }
            if errno != EINTR { throw Errno(rawValue: errno) }
        }
    }

    /// Makes a directory's entries (a rename, an unlink) survive a crash.
    package static func fsyncDirectory(_ path: FilePath) throws(Errno) {
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(path, .readOnly, options: [.directory, .closeOnExec]) }
        catch let error as Errno { throw error } catch { throw Errno.ioError }
        defer { try? fd.close() }
        try fsync(fd)
    }

    package static func rename(_ from: FilePath, _ to: FilePath) throws(Errno) {
        let result = from.withPlatformString { f in to.withPlatformString { t in Glibc.rename(f, t) } }
        if result != 0 { throw Errno(rawValue: errno) }
    }

    /// A second name for a file; fails with EEXIST rather than replace one.
    package static func link(_ existing: FilePath, _ new: FilePath) throws(Errno) {
        let result = existing.withPlatformString { e in new.withPlatformString { n in Glibc.link(e, n) } }
        if result != 0 { throw Errno(rawValue: errno) }
    }

    package static func unlink(_ path: FilePath) throws(Errno) {
        if path.withPlatformString({ Glibc.unlink($0) }) != 0 { throw Errno(rawValue: errno) }
    }

    /// Creates a directory; one that already exists is fine, unless it is
    /// a symlink (refused as ELOOP): what goes in it would land wherever
    /// the link leads. A new one's entry is synced in its parent, so it
    /// survives a crash with what goes in it.
    package static func makeDirectory(_ path: FilePath, mode: mode_t) throws(Errno) {
        if path.withPlatformString({ Glibc.mkdir($0, mode) }) == 0 {
            try fsyncDirectory(path.directory)
            return
        }
        guard errno == EEXIST else { throw Errno(rawValue: errno) }
        var info = Glibc.stat()
        if path.withPlatformString({ fstatat(AT_FDCWD, $0, &info, AT_SYMLINK_NOFOLLOW) }) == 0,
           (info.st_mode & S_IFMT) == S_IFLNK {
            throw Errno.tooManySymbolicLinkLevels
        }
    }

    /// What stat(2), following symlinks, finds: `notADirectory` is any
    /// other file type (a regular file, but also a FIFO or a device).
    package enum Kind {
        case missing, directory, notADirectory
    }

    package static func kind(of path: FilePath) -> Kind {
        guard let info = try? Stat(path) else { return .missing }
        return info.type == .directory ? .directory : .notADirectory
    }

    /// Whether anything is at `path` (following symlinks). A plain string,
    /// for callers that try many names: building a FilePath for each costs
    /// more than its stat.
    package static func exists(_ path: String) -> Bool {
        path.withCString { (try? Stat($0)) != nil }
    }

    /// What `openRegularFile` opens a file for.
    package enum Use {
        case reading
        /// Writing from the start, created if missing, emptied if not.
        case writingAfresh
        /// Writing at the end only (O_APPEND), never created.
        case appending
        /// Reading and writing, created if missing, kept if not.
        case updating

        var flags: Int32 {
            switch self {
            case .reading: return O_RDONLY
            case .writingAfresh: return O_WRONLY | O_CREAT | O_TRUNC
            case .appending: return O_WRONLY | O_APPEND
            case .updating: return O_RDWR | O_CREAT
            }
        }
    }

    /// Why `openRegularFile` gave no descriptor.
    package enum RegularFileProblem: Error, Equatable, CustomStringConvertible {
        case missing
        /// A symlink, refused where the caller does not follow them.
        case symlink
        /// Something else than a regular file: a FIFO, a device, a
        /// directory, a socket; what it is, in words.
        case notRegular(String)
        case failed(Errno)

        package var description: String {
            switch self {
            case .missing: "does not exist"
            case .symlink: "is a symlink, which is not followed"
            case .notRegular(let what): "is \(what), not a regular file"
            case .failed(let error): "cannot be opened: \(error)"
            }
        }
    }

    /// Opens the file at `path` (relative to `directory` when given) only
    /// if it is a regular file, and never waits to do so: a FIFO opened for
    /// reading without O_NONBLOCK waits for a writer for ever (for writing,
    /// for a reader), and a device may never answer. The open is
    /// non-blocking; fstat then refuses anything but a regular file, and
    /// O_NONBLOCK is cleared again (on a regular file it changes nothing,
    /// but a caller may rely on ordinary reads). O_CLOEXEC is added.
    /// `followSymlinks` false adds O_NOFOLLOW: a symlink is `.symlink`.
    package static func openRegularFile(_ path: String, in directory: FileDescriptor? = nil, for use: Use = .reading,
                                        mode: mode_t = 0o600,
                                        followSymlinks: Bool = true) throws(RegularFileProblem) -> FileDescriptor {
        let allFlags = use.flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (followSymlinks ? 0 : O_NOFOLLOW)
        let base = directory?.rawValue ?? AT_FDCWD
        var raw: Int32
        repeat { raw = openat(base, path, allFlags, mode) } while raw < 0 && errno == EINTR
        guard raw >= 0 else {
            let error = Errno(rawValue: errno)
            switch error {
            case .noSuchFileOrDirectory: throw .missing
            case .tooManySymbolicLinkLevels where !followSymlinks: throw .symlink
            // A FIFO opened for writing with no reader, a device with no driver.
            case .noSuchAddressOrDevice, .operationNotSupportedByDevice:
                var info = Glibc.stat()
                if fstatat(base, path, &info, followSymlinks ? 0 : AT_SYMLINK_NOFOLLOW) == 0 {
                    throw .notRegular(describe(info.st_mode))
                }
                throw .failed(error)
            case .isDirectory: throw .notRegular(describe(S_IFDIR))
            default: throw .failed(error)
            }
        }
        var info = Glibc.stat()
        guard fstat(raw, &info) == 0 else {
            let error = Errno(rawValue: errno)
            Glibc.close(raw)
            throw .failed(error)
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            Glibc.close(raw)
            throw .notRegular(describe(info.st_mode))
        }
        let status = fcntl(raw, F_GETFL)
        if status >= 0 { _ = fcntl(raw, F_SETFL, status & ~O_NONBLOCK) }
        return FileDescriptor(rawValue: raw)
    }

    /// A file type in words, for messages.
    package static func describe(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: "a FIFO"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFDIR: "a directory"
        case S_IFSOCK: "a socket"
        case S_IFLNK: "a symlink"
        default: "a regular file"
        }
    }

    /// Appends `text` to the file at `path` (created 0600) with one
    /// write(2) in O_APPEND mode, so that lines of concurrent writers never
    /// interleave. False when it cannot be written: for logs and timings,
    /// which must never fail a delivery.
    @discardableResult
    package static func append(_ text: String, toFileAt path: String) -> Bool {
        guard let fd = openForAppending(path) else { return false }
        defer { try? fd.close() }
        return append(text, to: fd)
    }

    package static func openForAppending(_ path: String) -> FileDescriptor? {
        try? FileDescriptor.open(FilePath(path), .writeOnly, options: [.append, .create, .closeOnExec],
                                 permissions: .ownerReadWrite)
    }

    @discardableResult
    package static func append(_ text: String, to fd: FileDescriptor) -> Bool {
        var text = text
        return text.withUTF8 { (try? fd.writeEverything(UnsafeRawBufferPointer($0))) != nil }
    }

    /// Opens (creating it 0600) a lock file in `directory`, never through a symlink.
    package static func openLockFile(_ name: String, in directory: FileDescriptor) -> FileDescriptor? {
        let raw = openat(directory.rawValue, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        return raw >= 0 ? FileDescriptor(rawValue: raw) : nil
    }

    /// flock(2) without waiting: true when this descriptor now holds the
    /// exclusive lock (released by closing it, or by dying).
    package static func tryLockExclusively(_ fd: FileDescriptor) -> Bool {
        flock(fd.rawValue, LOCK_EX | LOCK_NB) == 0
    }

    /// Whether `name` in `directory` is a symlink (not followed).
    package static func isSymlink(_ name: String, in directory: FileDescriptor) -> Bool {
        let info = name.withCString { try? Stat($0, relativeTo: directory, flags: .symlinkNoFollow) }
        return info?.type == .symbolicLink
    }

    /// syncfs(2): everything written to the filesystem holding `fd`, in one
    /// call, instead of an fsync per file.
    package static func syncFileSystem(containing fd: FileDescriptor) throws(Errno) {
        if cposix_syncfs(fd.rawValue) != 0 { throw Errno(rawValue: errno) }
    }

    /// Sets a file's access and modification times (an imported message
    /// keeps its archive's date that way).
    package static func setTimes(_ path: FilePath, seconds: Int) throws(Errno) {
        var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
        if path.withPlatformString({ utimensat(AT_FDCWD, $0, &times, 0) }) != 0 { throw Errno(rawValue: errno) }
    }

    /// The path with every symlink resolved, or nil when it does not exist.
    package static func realPath(_ path: FilePath) -> FilePath? {
        guard let resolved = path.withPlatformString({ Glibc.realpath($0, nil) }) else { return nil }
        defer { free(resolved) }
        return FilePath(platformString: resolved)
    }

    /// The names in a directory, without "." and "..".
    package static func list(_ path: FilePath) throws(Errno) -> [String] {
        guard let dir = path.withPlatformString({ opendir($0) }) else { throw Errno(rawValue: errno) }
        return names(readingAndClosing: dir)
    }

    /// The names in an open directory, without "." and "..".
    package static func list(_ directory: FileDescriptor) throws(Errno) -> [String] {
        // fdopendir takes the descriptor over: give it a copy.
        let copy = fcntl(directory.rawValue, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw Errno(rawValue: errno) }
        guard let dir = fdopendir(copy) else {
            let error = Errno(rawValue: errno)
            Glibc.close(copy)
            throw error
        }
        return names(readingAndClosing: dir)
    }

    private static func names(readingAndClosing dir: OpaquePointer) -> [String] {
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

    /// Whether anything is at `name` in `directory` (following symlinks).
    package static func exists(_ name: String, in directory: FileDescriptor) -> Bool {
        name.withCString { (try? Stat($0, relativeTo: directory, flags: [])) != nil }
    }

    /// Whether two paths name the same file (device and inode).
    package static func sameFile(_ first: FilePath, _ second: FilePath) -> Bool {
        guard let a = try? Stat(first), let b = try? Stat(second) else { return false }
        return a.deviceID == b.deviceID && a.inode == b.inode
    }

    /// An executable regular file (a hook): not a FIFO or a device, which
    /// cannot be run and whose checks could only mislead.
    package static func isExecutable(_ path: FilePath) -> Bool {
        guard path.withPlatformString({ access($0, X_OK) }) == 0, let info = try? Stat(path) else { return false }
        return info.type == .regular
    }

    /// The longest name a directory entry may have (NAME_MAX) and the
    /// longest path the kernel takes (PATH_MAX, with its NUL).
    package static let longestName = Int(NAME_MAX)
    package static let longestPath = Int(PATH_MAX)

    /// Whether poll(2) can wait on `fd`: a socket, a pipe or a terminal; a
    /// regular file or /dev/null cannot be polled.
    package static func isPollable(_ fd: FileDescriptor) -> Bool {
        guard let info = try? fd.stat() else { return false }
        return info.type == .socket || info.type == .fifo || isatty(fd.rawValue) == 1
    }

    /// chmod(2).
    package static func setMode(_ path: String, _ mode: mode_t) throws(Errno) {
        if chmod(path, mode) != 0 { throw Errno(rawValue: errno) }
    }

    /// Whether this process may read `path` (access(2) with R_OK: its real
    /// user's rights).
    package static func isReadable(_ path: String) -> Bool {
        access(path, R_OK) == 0
    }

    /// The directories whose paths match the shell pattern `pattern`
    /// (glob(3): `*`, `?`, `[...]`), sorted; none when nothing matches.
    package static func directories(matching pattern: String) -> [String] {
        var found = glob_t()
        defer { globfree(&found) }
        guard glob(pattern, GLOB_ONLYDIR, nil, &found) == 0 else { return [] }
        return (0..<Int(found.gl_pathc)).compactMap { index in
            found.gl_pathv[index].map { String(cString: $0) }
        }
    }

    package static func hostName() -> String {
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
    package var directory: FilePath {
        let text = string
        guard let slash = text.utf8.lastIndex(of: UInt8(ascii: "/")) else { return FilePath("") }
        if slash == text.startIndex { return FilePath("/") }
        return FilePath(String(text[..<slash]))
    }
}

extension FileDescriptor {
    /// Writes all of `bytes`, as swift-system's generic `writeAll` does,
    /// without the runtime type lookups its first (unspecialized) call costs.
    package func writeEverything(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var rest = bytes
        while !rest.isEmpty {
            let count: Int
            do { count = try write(rest) } catch let error as Errno { throw error } catch { throw Errno.ioError }
            rest = UnsafeRawBufferPointer(rebasing: rest[count...])
        }
    }
}

/// Directories opened one component at a time below a root, so that no
/// symlink can lead what is written there out of the root. Checking a path
/// and then using it leaves a window; a descriptor keeps the directory it
/// was checked on.
///
/// The root itself may be a symlink (`~/Mail -> /data/mail`). Below it a
/// symlink is followed only when it resolves inside the root (a folder
/// linked to another folder); one leading out is refused.
package struct ContainedDirectories {
    package let root: FilePath
    package let rootDescriptor: FileDescriptor
    private var realRoot: FilePath?
    /// The mode of the directories it creates (less the umask): private
    /// unless asked otherwise (`--world-readable`, as notmuch insert does).
    package var creationMode: mode_t = 0o700

    package enum Refusal: Error {
        /// Nothing there, and not asked to create it.
        case missing(FilePath)
        /// A symlink leading out of the root, and where it leads.
        case outside(FilePath, resolved: FilePath, realRoot: FilePath)
        case notADirectory(FilePath)
        /// A file that must be the thing itself, not a link to it.
        case symlink(FilePath)
        case failed(Errno, FilePath)
    }

    /// Opens the root, following symlinks.
    package init(root: FilePath) throws(Refusal) {
        self.root = root
        let fd = root.withPlatformString { Glibc.open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else {
            let error = Errno(rawValue: errno)
            switch error {
            case .noSuchFileOrDirectory: throw .missing(root)
            case .notDirectory: throw .notADirectory(root)
            default: throw .failed(error, root)
            }
        }
        rootDescriptor = FileDescriptor(rawValue: fd)
    }

    package func close() { try? rootDescriptor.close() }

    /// Opens `name` in `parent` (at `parentPath`), creating it (mode
    /// `creationMode`, its entry synced in `parent`) when missing and `create` is set. The
    /// caller closes the result.
    package mutating func open(_ name: String, in parent: FileDescriptor, at parentPath: FilePath,
                       create: Bool) throws(Refusal) -> FileDescriptor {
        let path = parentPath.appending(name)
        var madeIt = false
        while true {
            let fd = openat(parent.rawValue, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd >= 0 { return FileDescriptor(rawValue: fd) }
            let error = Errno(rawValue: errno)
            switch error {
            case .noSuchFileOrDirectory where create && !madeIt:
                if mkdirat(parent.rawValue, name, creationMode) == 0 {
                    do { try FileSystem.fsync(parent) } catch { throw .failed(error, parentPath) }
                } else if errno != EEXIST {
                    throw .failed(Errno(rawValue: errno), path)
                }
                // Made here or by a concurrent delivery: open it either way.
                madeIt = true
            case .noSuchFileOrDirectory:
                throw .missing(path)
            case .tooManySymbolicLinkLevels, .notDirectory:
                // O_NOFOLLOW met a symlink (Linux says ELOOP, others ENOTDIR),
                // or the entry is not a directory at all.
                return try followInside(name, in: parent, at: path)
            default:
                throw .failed(error, path)
            }
        }
    }

    /// Opens the components one below the other from the root; the last
    /// one's descriptor, for the caller to close.
    package mutating func open(_ components: [String], create: Bool) throws(Refusal) -> FileDescriptor {
        var current = rootDescriptor
        var path = root
        for name in components {
            let next: FileDescriptor
            do { next = try open(name, in: current, at: path, create: create) } catch {
                if current != rootDescriptor { try? current.close() }
                throw error
            }
            if current != rootDescriptor { try? current.close() }
            current = next
            path.append(name)
        }
        return current == rootDescriptor ? try duplicate(rootDescriptor, path) : current
    }

    private func duplicate(_ fd: FileDescriptor, _ path: FilePath) throws(Refusal) -> FileDescriptor {
        let copy = fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw .failed(Errno(rawValue: errno), path) }
        return FileDescriptor(rawValue: copy)
    }

    /// A symlink (or not a directory): open it following links, then make
    /// sure the directory it reached is inside the root, by comparing the
    /// opened directory with what its resolved path names.
    private mutating func followInside(_ name: String, in parent: FileDescriptor,
                                       at path: FilePath) throws(Refusal) -> FileDescriptor {
        let raw = openat(parent.rawValue, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard raw >= 0 else {
            let error = Errno(rawValue: errno)
            if error == .notDirectory { throw .notADirectory(path) }
            throw .failed(error, path)
        }
        let fd = FileDescriptor(rawValue: raw)
        if realRoot == nil { realRoot = FileSystem.realPath(root) }
        guard let realRoot, let resolved = FileSystem.realPath(path) else {
            try? fd.close()
            throw .failed(.noSuchFileOrDirectory, path)
        }
        var opened = Glibc.stat(), named = Glibc.stat()
        let inside = resolved == realRoot || resolved.starts(with: realRoot)
        let same = fstat(fd.rawValue, &opened) == 0
            && resolved.withPlatformString { fstatat(AT_FDCWD, $0, &named, 0) } == 0
            && opened.st_dev == named.st_dev && opened.st_ino == named.st_ino
        guard inside && same else {
            try? fd.close()
            throw .outside(path, resolved: resolved, realRoot: realRoot)
        }
        return fd
    }
}

extension ContainedDirectories.Refusal: CustomStringConvertible {
    package var description: String {
        switch self {
        case .missing(let path): "'\(path)' does not exist"
        case .outside(let path, let resolved, let realRoot):
            "'\(path)' is a symlink to '\(resolved)', outside '\(realRoot)'; nothing is written through it: "
                + "make it a directory inside '\(realRoot)'"
        case .notADirectory(let path): "'\(path)' is not a directory"
        case .symlink(let path): "'\(path)' is a symlink; nothing is written through it: remove it"
        case .failed(let error, let path): "'\(path)': \(error)"
        }
    }
}
