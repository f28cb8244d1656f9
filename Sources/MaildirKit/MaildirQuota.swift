import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A mailbox's limit: bytes and/or messages; nil (or 0, as courier and
/// Dovecot read it) is no limit on that count.
package struct QuotaLimit: Equatable, Sendable {
    package var bytes: Int64?
    package var messages: Int64?

    package init(bytes: Int64? = nil, messages: Int64? = nil) {
        self.bytes = bytes.flatMap { $0 > 0 ? $0 : nil }
        self.messages = messages.flatMap { $0 > 0 ? $0 : nil }
    }

    /// No figure beyond this is taken (2^60: an exabyte, or a billion
    /// billions of messages), so that sums and the grace never overflow.
    package static let largest: Int64 = 1 << 60

    /// The first line of a `maildirsize`: `10000000S,1000C`, either part
    /// optional. Nil when it is not that shape.
    package init?(maildirsizeLine line: Substring) {
        var limit = QuotaLimit()
        for part in line.split(separator: ",", omittingEmptySubsequences: false) {
            guard let unit = part.last, let number = Int64(part.dropLast()), number >= 0,
                  number <= Self.largest else { return nil }
            switch unit {
            case "S": limit.bytes = number > 0 ? number : nil
            case "C": limit.messages = number > 0 ? number : nil
            default: return nil
            }
        }
        self = limit
    }

    /// What a person writes (`--quota`, `deliver.quota`): `2G,100000C`,
    /// `500M`, `100000C`; bytes take k, M or G (powers of 1024), C counts
    /// messages. Nil on anything else, and on 0 or a figure beyond `largest`.
    package init?(parsing text: String) {
        var limit = QuotaLimit()
        var seen: Set<Character> = []
        for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
            let part = raw.trimmingSpaces
            guard let last = part.last else { return nil }
            var digits = part
            var multiplier: Int64 = 1
            var kind: Character = "S"
            switch last {
            case "C", "c": kind = "C"; digits = part.dropLast()
            case "S", "s", "B", "b": digits = part.dropLast()
            case "k", "K": multiplier = 1 << 10; digits = part.dropLast()
            case "M", "m": multiplier = 1 << 20; digits = part.dropLast()
            case "G", "g": multiplier = 1 << 30; digits = part.dropLast()
            case "T", "t": multiplier = 1 << 40; digits = part.dropLast()
            default: break
            }
            guard seen.insert(kind).inserted, !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit),
                  let number = Int64(digits), number > 0, number <= Self.largest / multiplier else { return nil }
            if kind == "C" { limit.messages = number } else { limit.bytes = number * multiplier }
        }
        self = limit
    }

    package var isUnlimited: Bool { bytes == nil && messages == nil }

    /// As the first line of a `maildirsize` (without the newline).
    package var maildirsizeLine: String {
        var parts: [String] = []
        if let bytes { parts.append("\(bytes)S") }
        if let messages { parts.append("\(messages)C") }
        return parts.isEmpty ? "0S" : parts.joined(separator: ",")
    }
}

/// Bytes and messages in a mailbox.
package struct QuotaUsage: Equatable, Sendable {
    package var bytes: Int64
    package var messages: Int64

    package init(bytes: Int64 = 0, messages: Int64 = 0) {
        self.bytes = bytes
        self.messages = messages
    }

    /// Whether this usage is beyond `limit`.
    package func exceeds(_ limit: QuotaLimit) -> Bool {
        if let bytes = limit.bytes, self.bytes > bytes { return true }
        if let messages = limit.messages, self.messages > messages { return true }
        return false
    }

    /// Whether a message of `size` bytes may come in: when it fits, or,
    /// with a grace of `gracePercent`, when usage before it is under the
    /// limit and it does not go beyond the limit plus that share of it
    /// (Dovecot's quota_grace): one last large message is not refused for ever.
    package func admits(_ size: Int64, under limit: QuotaLimit, gracePercent: Int64) -> Bool {
        let after = QuotaUsage(bytes: bytes + size, messages: messages + 1)
        if !after.exceeds(limit) { return true }
        if let messages = limit.messages, after.messages > messages { return false }
        guard let limitBytes = limit.bytes, bytes < limitBytes else { return false }
        return after.bytes <= limitBytes + limitBytes / 100 * gracePercent + limitBytes % 100 * gracePercent / 100
    }

    /// The highest share of the limit used, in percent (0 when unlimited).
    package func percent(of limit: QuotaLimit) -> Int64 {
        var highest: Int64 = 0
        if let total = limit.bytes { highest = max(highest, bytes * 100 / total) }
        if let total = limit.messages { highest = max(highest, messages * 100 / total) }
        return highest
    }
}

/// The Maildir++ `maildirsize` file of a mailbox (courier's maildirquota,
/// which Dovecot's `quota = maildir` follows): its first line the limit,
/// then one `bytes count` line per change, appended by every writer with one
/// O_APPEND write so that concurrent deliveries never mix their lines.
/// Usage is the sum of those lines; the file is rewritten from a count of
/// the mailbox when it is missing, has grown to 5120 bytes, cannot be read,
/// holds only its limit line (a quota just set by hand),
/// or says the mailbox is over quota while having more than one line or
/// being older than 15 minutes (the convention's guard against a stale sum).
///
/// What counts, for a notmuch tree whose folders need not start with a dot:
/// the files in new/ and cur/ of the mailbox itself and of every maildir
/// below it, at any depth, except `.notmuch` (the database, not mail) and
/// folders named `Trash` or `.Trash` (skipped as Maildir++ skips Trash).
/// Symlinked directories are not followed: a folder linked twice counts once.
package struct MaildirQuota: Sendable {
    package let root: FilePath

    package init(root: FilePath) { self.root = root }

    package var file: FilePath { root.appending("maildirsize") }

    /// The convention's thresholds.
    package static let largestFile = 5120
    package static let staleAge = 15 * 60

    /// What a readable `maildirsize` says.
    package struct Contents: Equatable, Sendable {
        package var limit: QuotaLimit
        /// Nil when a usage line is malformed or cut short: the limit
        /// still holds, the usage needs a recount.
        package var usage: QuotaUsage?
        package var lines: Int
        package var size: Int
        package var modified: Int
    }

    /// What is at `maildirsize`.
    package enum FileState: Equatable, Sendable {
        case missing
        /// A regular file, and what it says.
        case readable(Contents)
        /// There, but not to be trusted: a symlink (never followed), a file
        /// that cannot be opened, a first line that is not a limit (garbage,
        /// a negative figure). Taken as missing, so a configured limit is
        /// enforced by a recount, which replaces it; the reason is for the log.
        case damaged(String)
        /// A FIFO, a device, a directory: nothing a delivery may open or
        /// replace. The reason is for the log; deliveries are deferred
        /// until someone removes it.
        case unusable(String)
    }

    /// The file's contents; nil when it is missing, unreadable or its limit
    /// line is malformed (each of which a recalculation repairs).
    package func read() -> Contents? {
        if case .readable(let contents) = inspect() { return contents }
        return nil
    }

    /// What is at `maildirsize`, opened without blocking and never through a symlink.
    package func inspect() -> FileState {
        let fd: FileDescriptor
        do { fd = try FileSystem.openRegularFile(file.string, followSymlinks: false) } catch {
            switch error {
            case .missing: return .missing
            case .notRegular: return .unusable("'\(file)' \(error): remove it")
            case .symlink, .failed: return .damaged("'\(file)' \(error)")
            }
        }
        let raw = fd.rawValue
        defer { try? fd.close() }
        var info = stat()
        guard fstat(raw, &info) == 0 else { return .damaged("'\(file)' cannot be read: \(Errno(rawValue: errno))") }
        // Beyond the recalculation size there is no point reading it all.
        let capacity = 2 * Self.largestFile
        var bytes = [UInt8](repeating: 0, count: capacity)
        var count = 0
        while count < capacity {
            let got = bytes.withUnsafeMutableBytes { Glibc.read(raw, $0.baseAddress! + count, capacity - count) }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else { return .damaged("'\(file)' cannot be read: \(Errno(rawValue: errno))") }
            if got == 0 { break }
            count += got
        }
        let text = String(decoding: bytes[..<count], as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        // After the last newline: nothing, or an append still being written,
        // cut short by a crash, or cut by the read above; not trusted.
        let unfinished = !lines.removeLast().isEmpty
        guard let first = lines.first, let limit = QuotaLimit(maildirsizeLine: first) else {
            return .damaged("'\(file)' does not start with a limit line such as 10000000S,1000C")
        }
        var usage: QuotaUsage? = unfinished ? nil : QuotaUsage()
        for line in lines.dropFirst() where usage != nil {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count == 2, let bytes = Int64(fields[0]), let messages = Int64(fields[1]),
                  abs(bytes) <= QuotaLimit.largest, abs(messages) <= QuotaLimit.largest else {
                usage = nil
                break
            }
            usage?.bytes += bytes
            usage?.messages += messages
        }
        return .readable(Contents(limit: limit, usage: usage, lines: lines.count, size: Int(info.st_size),
                                  modified: Int(info.st_mtim.tv_sec)))
    }

    /// Whether the convention asks for a recount of what `contents` says.
    package static func needsRecalculation(_ contents: Contents?, limit: QuotaLimit, now: Int) -> Bool {
        guard let contents, let usage = contents.usage else { return true }
        if contents.size >= largestFile || contents.limit != limit { return true }
        // Only the limit line: a quota just set by hand or by `maildirmake
        // -q`, whose usage nobody has counted yet.
        if contents.lines < 2 { return true }
        if usage.bytes < 0 || usage.messages < 0 { return true }
        if usage.exceeds(limit) && (contents.lines > 2 || now - contents.modified > staleAge) { return true }
        return false
    }

    /// The limit and usage to check a delivery against: `limit` when given,
    /// else the file's own; the file recalculated first when the convention
    /// asks. Nil when there is no limit at all (nothing is written then).
    package func current(limit configured: QuotaLimit?, now: Int = Int(time(nil))) -> (QuotaLimit, QuotaUsage)? {
        let contents = read()
        guard let limit = configured ?? contents?.limit, !limit.isUnlimited else { return nil }
        if let contents, let usage = contents.usage, !Self.needsRecalculation(contents, limit: limit, now: now) {
            return (limit, usage)
        }
        return (limit, recalculate(limit: limit))
    }

    /// Counts the mailbox and writes a fresh `maildirsize` (temporary file,
    /// then rename, so readers see the old file or the new one). A write
    /// that fails is not fatal: the count is still right for this delivery.
    @discardableResult
    package func recalculate(limit: QuotaLimit) -> QuotaUsage {
        let usage = Self.count(root)
        let text = "\(limit.maildirsizeLine)\n\(usage.bytes) \(usage.messages)\n"
        // In the mailbox's tmp/ when it has one, where a leftover is cleaned
        // with the other stale temporary files.
        let tmp = root.appending("tmp")
        let directory = FileSystem.kind(of: tmp) == .directory ? tmp : root
        let temporary = directory.appending(MaildirName.unique())
        let raw = temporary.withPlatformString { open($0, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        guard raw >= 0 else { return usage }
        let fd = FileDescriptor(rawValue: raw)
        let written = FileSystem.append(text, to: fd)
        try? fd.close()
        if !written || (try? FileSystem.rename(temporary, file)) == nil { try? FileSystem.unlink(temporary) }
        return usage
    }

    /// Adds one change (a delivery: its size and 1) as one line, with one
    /// write in O_APPEND mode. Only to a file that exists: one without its
    /// limit line would be corrupt; a missing file is recounted next time.
    @discardableResult
    package func add(bytes: Int64, messages: Int64) -> Bool {
        guard let fd = try? FileSystem.openRegularFile(file.string, for: .appending,
                                                       followSymlinks: false) else { return false }
        defer { try? fd.close() }
        return FileSystem.append("\(bytes) \(messages)\n", to: fd)
    }

    /// Folders that never count: exactly those no delivery may write to
    /// (the folder gate's reserved names), so that no folder a rule or a
    /// Sieve script can name holds mail the quota does not see. Trash
    /// counts, unlike Maildir++'s convention: mail can be filed there.
    static var skipped: Set<String> { MailFolder.reservedNames }

    /// Sums the messages of the maildir at `directory` and of every maildir below it.
    package static func count(_ directory: FilePath) -> QuotaUsage {
        var usage = QuotaUsage()
        let raw = directory.withPlatformString { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard raw >= 0 else { return usage }
        let fd = FileDescriptor(rawValue: raw)
        defer { try? fd.close() }
        count(fd, into: &usage, depth: 0)
        return usage
    }

    /// Deep enough for any real folder tree, shallow enough that a
    /// pathological one cannot exhaust descriptors; and deep enough for
    /// every folder a delivery may write to (MailFolder.maximumDepth levels).
    static var deepest: Int { MailFolder.maximumDepth + 1 }

    private static func count(_ folder: FileDescriptor, into usage: inout QuotaUsage, depth: Int) {
        guard depth < deepest, let names = try? FileSystem.list(folder) else { return }
        for name in ["new", "cur"] where names.contains(name) {
            guard let sub = openDirectory(name, in: folder) else { continue }
            defer { try? sub.close() }
            guard let files = try? FileSystem.list(sub) else { continue }
            // Names starting with a dot are not messages in a maildir.
            for file in files where !file.hasPrefix(".") {
                guard let size = size(of: file, in: sub) else { continue }
                usage.bytes += size
                usage.messages += 1
            }
        }
        for name in names where !skipped.contains(name) {
            guard let sub = openDirectory(name, in: folder) else { continue }
            count(sub, into: &usage, depth: depth + 1)
            try? sub.close()
        }
    }

    /// A subdirectory, not through a symlink; nil for anything else.
    private static func openDirectory(_ name: String, in parent: FileDescriptor) -> FileDescriptor? {
        let raw = openat(parent.rawValue, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        return raw >= 0 ? FileDescriptor(rawValue: raw) : nil
    }

    /// A message's size: from `,S=<bytes>` in its name when there, as
    /// Maildir++ writers put it, else from stat (nil: not a regular file,
    /// or gone since the listing).
    static func size(of name: String, in directory: FileDescriptor) -> Int64? {
        if let size = sizeInName(name) { return size }
        var info = stat()
        guard fstatat(directory.rawValue, name, &info, AT_SYMLINK_NOFOLLOW) == 0,
              (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int64(info.st_size)
    }

    /// The `S=` figure of `NAME,S=1234,W=1270:2,S`, if any.
    package static func sizeInName(_ name: String) -> Int64? {
        let base = name.split(separator: ":", maxSplits: 1).first ?? ""
        for field in base.split(separator: ",").dropFirst() where field.hasPrefix("S=") {
            if let size = Int64(field.dropFirst(2)), size >= 0 { return size }
        }
        return nil
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var text = self
        while text.first == " " { text = text.dropFirst() }
        while text.last == " " { text = text.dropLast() }
        return text
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

extension MaildirQuota {
    /// The lock deliveries take on the maildir's root directory while they
    /// read `maildirsize` and append to it, so that two of them never
    /// both admit a message on the same last free bytes: flock(2) on the
    /// directory, released when its descriptor is closed (or the process dies).
    package final class Lock {
        private var fd: FileDescriptor?

        fileprivate init(_ fd: FileDescriptor) { self.fd = fd }

        deinit { release() }

        /// Takes the lock without waiting (flock has no timeout): true when
        /// this process holds it now, false while another one does.
        package func tryTake() throws(Errno) -> Bool {
            guard let fd else { return false }
            while flock(fd.rawValue, LOCK_EX | LOCK_NB) != 0 {
                switch Errno(rawValue: errno) {
                case .interrupted: continue
                case .wouldBlock: return false
                case let error: throw error
                }
            }
            return true
        }

        /// Lets go of the lock (closing its descriptor); a lock never taken
        /// is only closed.
        package func release() {
            try? fd?.close()
            fd = nil
        }
    }

    /// The root's lock, open but not taken; nil when the root cannot be opened.
    package func openLock() -> Lock? {
        guard let fd = try? FileDescriptor.open(root, .readOnly, options: [.directory, .closeOnExec]) else { return nil }
        return Lock(fd)
    }
}
