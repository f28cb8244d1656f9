import SystemPackage
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One maildir folder (with tmp/, new/ and cur/) and the one safe way to put
/// a message into it: write under a unique name in tmp/, fsync, rename into
/// new/, fsync new/. A crash at any instant leaves either nothing in new/
/// or the whole message there.
///
/// A Maildir from `MailFolder.resolve` holds its three subdirectories open,
/// checked to be inside the mail root when opened; the message is written
/// and linked through those descriptors, so a symlink swapped in later
/// cannot send it elsewhere either.
package struct Maildir: Sendable {
    package let path: FilePath
    private let opened: Subdirectories?

    /// tmp/, new/ and cur/, open for as long as a copy of the Maildir lives.
    final class Subdirectories: Sendable {
        let tmp: FileDescriptor
        let new: FileDescriptor
        let cur: FileDescriptor

        init(tmp: FileDescriptor, new: FileDescriptor, cur: FileDescriptor) {
            self.tmp = tmp
            self.new = new
            self.cur = cur
        }

        deinit { for fd in [tmp, new, cur] { try? fd.close() } }
    }

    /// A maildir at `path`, its subdirectories opened (without following
    /// symlinks out of `path`) when first written to.
    package init(_ path: FilePath) {
        self.path = path
        opened = nil
    }

    init(_ path: FilePath, opened: Subdirectories) {
        self.path = path
        self.opened = opened
    }

    package var tmp: FilePath { path.appending("tmp") }
    package var new: FilePath { path.appending("new") }
    package var cur: FilePath { path.appending("cur") }

    static let subdirectoryNames = ["tmp", "new", "cur"]

    /// Opens tmp/, new/ and cur/ in the open folder `folder` (at `path`),
    /// creating those missing when `create` is set (their entries synced).
    package static func open(_ folder: FileDescriptor, at path: FilePath, within contained: inout ContainedDirectories,
                     create: Bool) throws(ContainedDirectories.Refusal) -> Maildir {
        var fds: [FileDescriptor] = []
        do {
            for name in subdirectoryNames {
                fds.append(try contained.open(name, in: folder, at: path, create: create))
            }
        } catch {
            for fd in fds { try? fd.close() }
            throw error
        }
        return Maildir(path, opened: Subdirectories(tmp: fds[0], new: fds[1], cur: fds[2]))
    }

    /// This maildir's subdirectories, opened now if need be; symlinks out
    /// of the folder are refused (as ELOOP).
    private func subdirectories() throws(WriteError) -> Subdirectories {
        if let opened { return opened }
        do {
            var contained = try ContainedDirectories(root: path)
            defer { contained.close() }
            return try Self.open(contained.rootDescriptor, at: path, within: &contained, create: false).opened!
        } catch {
            switch error {
            case .failed(let errno, let path): throw .write(errno, path)
            case .missing(let path): throw .write(.noSuchFileOrDirectory, path)
            case .notADirectory(let path): throw .write(.notDirectory, path)
            case .outside(let path, _, _), .symlink(let path): throw .write(.tooManySymbolicLinkLevels, path)
            }
        }
    }

    /// Why writing a message failed.
    package enum WriteError: Error, Sendable {
        /// Nothing but (at most) an envelope line came in.
        case emptyInput
        case read(Errno)
        case write(Errno, FilePath)
    }

    /// A delivered file, and whether it was there already: the same bytes
    /// delivered before (an MTA's retry after a delivery it saw die).
    package struct Delivered: Sendable {
        package let path: FilePath
        package let adopted: Bool
    }

    /// A message copied into tmp/ and not yet synced or linked into new/:
    /// what a delivery looks at (is it mail, does it fit the quota) before
    /// it pays for the syncs. `publish` makes it a delivered file;
    /// `abandon` removes it.
    package final class TemporaryMessage: @unchecked Sendable {
        /// Its name in tmp/, to read it by.
        package let path: FilePath
        fileprivate let name: String
        fileprivate let digest: String
        fileprivate let directories: Subdirectories
        /// Open until synced; nil for a hard link to a file synced already.
        fileprivate var file: FileDescriptor?

        fileprivate init(path: FilePath, name: String, digest: String, directories: Subdirectories,
                         file: FileDescriptor?) {
            self.path = path
            self.name = name
            self.digest = digest
            self.directories = directories
            self.file = file
        }

        deinit { try? file?.close() }
    }

    /// Copies `input` (minus a leading From_ line) into tmp/, unsynced.
    /// On any failure nothing is left behind.
    ///
    /// `sameAs`: a file delivered from the same input into another maildir
    /// (another recipient of one LMTP transaction). When it can be
    /// hard-linked, as Dovecot does, the bytes are not written again; when
    /// it cannot (another file system, or it moved meanwhile), they are.
    package func write(from input: FileDescriptor, permissions: FilePermissions,
                       sameAs: FilePath? = nil) throws(WriteError) -> TemporaryMessage {
        let directories = try subdirectories()
        let tmpName = MaildirName.unique()
        let tmpPath = tmp.appending(tmpName)
        if let sameAs, let digest = MaildirName.digest(of: sameAs),
           sameAs.withPlatformString({ linkat(AT_FDCWD, $0, directories.tmp.rawValue, tmpName, 0) }) == 0 {
            return TemporaryMessage(path: tmpPath, name: tmpName, digest: digest, directories: directories, file: nil)
        }
        let raw = openat(directories.tmp.rawValue, tmpName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                         permissions.rawValue)
        guard raw >= 0 else { throw .write(Errno(rawValue: errno), tmpPath) }
        let file = FileDescriptor(rawValue: raw)
        do {
            let (written, sha1) = try copyMessage(from: input, to: file, path: tmpPath)
            guard written > 0 else { throw WriteError.emptyInput }
            return TemporaryMessage(path: tmpPath, name: tmpName, digest: sha1, directories: directories, file: file)
        } catch let error as WriteError {
            try? file.close()
            unlinkat(directories.tmp.rawValue, tmpName, 0)
            throw error
        } catch {
            fatalError("unreachable: \(error)")
        }
    }

    /// Removes a temporary message that is not to be delivered.
    package func abandon(_ message: TemporaryMessage) {
        try? message.file?.close()
        message.file = nil
        unlinkat(message.directories.tmp.rawValue, message.name, 0)
    }

    /// Syncs a temporary message and links it into new/; returns the
    /// file's path once the file is on disk, its directory entry too unless
    /// `syncingDirectory` is false, when the caller syncs `path`'s
    /// directory itself (a delivery that queues syncs it once together with
    /// its queue record). On any failure nothing is left behind.
    ///
    /// The file in new/ is named after the SHA-1 of its content, and put
    /// there with link(2), which never replaces: when the same bytes are
    /// already there (in new/, or in cur/ with flags), that file is the
    /// delivery, so a delivery killed before it could report success and
    /// then retried does not store the message twice.
    /// `scratch` keeps the copy in tmp/ under its unique name, unsynced
    /// (`explain`, which discards it).
    package func publish(_ message: TemporaryMessage, scratch: Bool = false,
                         syncingDirectory: Bool = true) throws(WriteError) -> Delivered {
        if scratch { return Delivered(path: message.path, adopted: false) }
        if let file = message.file {
            do {
                try FileSystem.fsync(file)
                message.file = nil
                try file.close()
            } catch {
                abandon(message)
                throw .write(error as? Errno ?? .ioError, message.path)
            }
        }
        return try place(message.name, digest: message.digest, directories: message.directories,
                         syncingDirectory: syncingDirectory)
    }

    /// `write` and `publish` in one, for a caller with nothing to check in between.
    package func deliver(from input: FileDescriptor, permissions: FilePermissions,
                         syncingDirectory: Bool = true) throws(WriteError) -> Delivered {
        try publish(try write(from: input, permissions: permissions), syncingDirectory: syncingDirectory)
    }

    /// Links a synced file of tmp/ into new/ under the name its content
    /// gives it (or adopts the file already there), and removes it from tmp/.
    private func place(_ tmpName: String, digest: String, directories: Subdirectories,
                       syncingDirectory: Bool) throws(WriteError) -> Delivered {
        let newName = MaildirName.forContent(digest)
        let newPath = new.appending(newName)
        defer { unlinkat(directories.tmp.rawValue, tmpName, 0) }
        var found: FilePath? = FileSystem.exists(newName, in: directories.new) ? newPath : nil
        var foundIn = directories.new
        if found == nil, let flagged = Self.flaggedName(newName, in: directories.cur) {
            found = cur.appending(flagged)
            foundIn = directories.cur
        }
        if found == nil {
            if linkat(directories.tmp.rawValue, tmpName, directories.new.rawValue, newName, 0) != 0 {
                let error = Errno(rawValue: errno)
                guard error == .fileExists else { throw .write(error, newPath) }
                found = newPath
            }
        }
        // An adopted file's name may never have reached the disk (its
        // delivery died before the fsync): sync its directory too.
        if syncingDirectory {
            do {
                try FileSystem.fsync(foundIn)
            } catch {
                if found == nil { unlinkat(directories.new.rawValue, newName, 0) }
                throw .write(error, (found ?? newPath).directory)
            }
        }
        return Delivered(path: found ?? newPath, adopted: found != nil)
    }

    /// Moves `source` (a file of another folder) into this maildir's new/
    /// under its own name, through the new/ opened when the maildir was
    /// resolved, so a symlink put in place since cannot take it elsewhere.
    /// Returns the new path; the caller syncs both directories.
    package func moveIntoNew(_ source: FilePath) throws(Errno) -> FilePath {
        try intoNew(source) { source, new, name in renameat(AT_FDCWD, source, new, name) }
    }

    /// Links `source` into this maildir's new/ under its own name (one more
    /// file of a message), in the same way. The caller syncs the directory.
    package func linkIntoNew(_ source: FilePath) throws(Errno) -> FilePath {
        guard new.appending(source.lastComponent?.string ?? "") != source else { throw Errno.fileExists }
        return try intoNew(source) { source, new, name in linkat(AT_FDCWD, source, new, name, 0) }
    }

    private func intoNew(_ source: FilePath,
                         _ call: (UnsafePointer<CChar>, Int32, String) -> Int32) throws(Errno) -> FilePath {
        guard let name = source.lastComponent?.string else { throw Errno.invalidArgument }
        let directories: Subdirectories
        do { directories = try subdirectories() } catch {
            if case .write(let errno, _) = error { throw errno }
            throw Errno.ioError
        }
        defer { withExtendedLifetime(directories) {} }
        if source.withPlatformString({ call($0, directories.new.rawValue, name) }) != 0 { throw Errno(rawValue: errno) }
        return new.appending(name)
    }

    /// The name `NAME:2,FLAGS` in cur/ that a copy delivered as new/NAME has
    /// after a reader changed its flags, among the likely flag sets.
    private static func flaggedName(_ name: String, in cur: FileDescriptor) -> String? {
        for flags in flagsSoonAfterDelivery {
            let candidate = name + ":2," + flags
            if FileSystem.exists(candidate, in: cur) { return candidate }
        }
        return nil
    }

    /// The maildir convention: a file left in tmp/ for 36 hours is debris of
    /// an interrupted delivery and may go. Only names this program makes are
    /// touched; another MDA's files are its own business.
    package static let staleAge: Double = Leftovers.staleAge

    /// What killed deliveries left in tmp/ (see `Leftovers`): at most
    /// `limit` names looked at, a delivery's bounded share of the work.
    package func removeStaleTemporaryFiles(now: Double = Double(time(nil)), limit: Int = 64) {
        guard let directories = try? subdirectories() else { return }
        defer { withExtendedLifetime(directories) {} }
        Leftovers.sweep(tmp: directories.tmp, now: now, limit: limit)
    }

    /// Where a file delivered as `new/NAME` is after a reader changed its
    /// flags: `cur/NAME:2,FLAGS`, trying the given flag sets (written in
    /// maildir's alphabetical order), by default all 64 of DFPRST.
    package static func renamedForFlags(_ path: FilePath, trying flagSets: [String] = allFlagSets) -> FilePath? {
        guard let name = path.lastComponent?.string else { return nil }
        // Plain strings: a FilePath per candidate costs more than its stat.
        let stem = path.directory.directory.appending("cur").string + "/" + name + ":2,"
        for flags in flagSets where FileSystem.exists(stem + flags) {
            return FilePath(stem + flags)
        }
        return nil
    }

    /// Where a file delivered as `new/NAME` of some maildir below `root` is
    /// now, when it is no longer there: a rule's folder move keeps the name
    /// (new/NAME, or cur/NAME:2,FLAGS once read). A walk of the tree, not
    /// through symlinks, not into `.notmuch` or tmp/, at most 64 levels:
    /// for crash recovery only, never on a delivery's way.
    package static func findFiled(named name: String, under root: FilePath) -> FilePath? {
        func search(_ directory: FilePath, depth: Int) -> FilePath? {
            let new = directory.appending("new").appending(name)
            if FileSystem.kind(of: new) == .notADirectory { return new }
            if let read = renamedForFlags(new) { return read }
            guard depth < 64, let names = try? FileSystem.list(directory) else { return nil }
            for entry in names where !MailFolder.reservedNames.contains(entry) {
                let sub = directory.appending(entry)
                var info = stat()
                guard lstat(sub.string, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { continue }
                if let found = search(sub, depth: depth + 1) { return found }
            }
            return nil
        }
        return search(root, depth: 0)
    }

    package static let allFlagSets: [String] = (0..<64).map { mask in
        String(Array("DFPRST").enumerated().filter { mask & (1 << $0.offset) != 0 }.map(\.element))
    }

    /// What a retried delivery checks before storing its bytes again: the
    /// flags a first copy can plausibly have gained between a kill and the
    /// MTA's retry (read, replied, flagged). Every delivery pays for these
    /// stats, a millisecond for all 64 in a large cur/; a copy renamed to a
    /// rarer set is stored a second time, under the same Message-ID.
    static let flagsSoonAfterDelivery = ["S", "", "RS", "FS", "F", "FRS"]

    /// Removes a delivered file that must not stay (the delivery failed) and
    /// makes the removal durable.
    package static func discard(_ file: FilePath) {
        try? FileSystem.unlink(file)
        try? FileSystem.fsyncDirectory(file.directory)
    }

    /// Copies, drops the envelope line, and hashes what it writes.
    private func copyMessage(from input: FileDescriptor, to file: FileDescriptor,
                             path: FilePath) throws(WriteError) -> (Int, String) {
        var stripper = EnvelopeStripper()
        var written = 0
        let checksum = ContentChecksum()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count: Int
            do { count = try input.read(into: buffer) } catch { throw .read(error as? Errno ?? .ioError) }
            let bytes = count == 0 ? stripper.finish() : stripper.feed(buffer[..<count])
            if !bytes.isEmpty {
                do { try bytes.withUnsafeBytes { try file.writeEverything($0) } } catch {
                    throw .write(error as? Errno ?? .ioError, path)
                }
                checksum.update(bytes)
                written += bytes.count
            }
            if count == 0 { return (written, checksum.hex) }
        }
    }
}

/// Unique maildir file names: seconds, microseconds, pid, a random part and
/// a per-process counter, and the host name with `/` and `:` escaped as the
/// maildir convention asks.
package enum MaildirName {
    private static let counter = Atomic<Int>(0)

    package static func unique() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let sequence = counter.add(1, ordering: .relaxed).newValue
        let random = UInt32.random(in: 0 ... .max)
        let micros = now.tv_nsec / 1000
        return "\(now.tv_sec).M\(micros)P\(getpid())R\(String(random, radix: 16))Q\(sequence).\(host)"
    }

    /// A name for a file with this content (its SHA-1): the same bytes get
    /// the same name, so a second copy cannot be made by accident.
    package static func forContent(_ sha1: String) -> String { "\(sha1).\(host)" }

    /// The content's SHA-1 in a name `forContent` gave (flags and all);
    /// nil for any other name.
    package static func digest(of path: FilePath) -> String? {
        guard let name = path.lastComponent?.string, let dot = name.firstIndex(of: ".") else { return nil }
        let digest = name[..<dot]
        guard digest.utf8.count == 40, digest.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) })
        else { return nil }
        return String(digest)
    }

    /// Whether a name `unique()` gave was made on this host.
    package static func isFromThisHost(_ name: String) -> Bool {
        let parts = name.split(separator: ".", maxSplits: 2)
        return parts.count == 3 && parts[2] == host
    }

    /// Whether a name has the shape `unique()` gives.
    package static func isOurs(_ name: String) -> Bool {
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0].allSatisfy(\.isNumber), parts[1].hasPrefix("M") else { return false }
        return parts[1].contains("P") && parts[1].contains("R") && parts[1].contains("Q")
    }

    private static let host: String = FileSystem.hostName()
        .replacingAll("/", with: "\\057")
        .replacingAll(":", with: "\\072")
}

extension String {
    package func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self {
            if character == target { result += replacement } else { result.append(character) }
        }
        return result
    }
}
