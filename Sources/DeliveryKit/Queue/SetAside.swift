import SystemPackage
import MaildirKit
import Threads

/// A queue record that failed for a reason of its own (its file is not
/// mail, has gone, or libnotmuch refused it): kept apart, with the reason,
/// so that it neither blocks the queue nor is retried in a loop nor lost.
/// The message file stays where it is; an administrator lists these with
/// `flush --list` and acts with `flush --retry` or `flush --drop`.
public struct SetAsideRecord: Sendable {
    /// The queue entry's name (unchanged by setting it aside).
    public let name: String
    /// The message file, relative to the mail root; nil if the record cannot be read.
    public let path: String?
    public let reason: String
    /// When it was set aside (seconds since the epoch), from the reason file.
    let since: Int

    /// `since` in ISO 8601, UTC.
    public var sinceDescription: String { Timestamp.iso8601(since) }
}

extension PendingQueue {
    /// Inside the queue directory, so on the same filesystem: an entry
    /// moves in and out by rename, and a linked entry keeps its link.
    var setAsideDirectory: FilePath { directory.appending("set-aside") }

    /// A reason file per entry, named after the entry's SHA-1: an entry's
    /// own name may already be as long as a name can be.
    private func reasonFile(for name: String) -> FilePath {
        setAsideDirectory.appending(Self.reasonPrefix + ContentChecksum.hex(of: Array(name.utf8)))
    }

    private static let reasonPrefix = "why-"

    /// Moves the entry out of the queue, with its reason, durably. The
    /// reason is written first: an entry set aside always has one.
    func setAside(_ name: String, reason: String) throws {
        try FileSystem.makeDirectory(setAsideDirectory, mode: 0o700)
        let why = reasonFile(for: name)
        let fd = try FileSystem.openRegularFile(why.string, for: .writingAfresh, followSymlinks: false)
        do {
            var text = "\(WallClock.seconds)\n\(reason)\n"
            try text.withUTF8 { try fd.writeEverything(UnsafeRawBufferPointer($0)) }
            try FileSystem.fsync(fd)
            try fd.close()
        } catch {
            try? fd.close()
            throw error
        }
        try FileSystem.rename(directory.appending(name), setAsideDirectory.appending(name))
        try FileSystem.fsyncDirectory(setAsideDirectory)
        try FileSystem.fsyncDirectory(directory)
    }

    /// The records set aside, oldest first.
    public func setAsideRecords() -> [SetAsideRecord] {
        guard let names = try? FileSystem.list(setAsideDirectory) else { return [] }
        var records: [SetAsideRecord] = []
        for name in names where !name.hasPrefix(Self.reasonPrefix) {
            let text = (try? RulesLoader.readFile(reasonFile(for: name).string)) ?? ""
            let lines = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
            let since = lines.first.flatMap { Int($0) } ?? 0
            let reason = lines.count > 1 ? String(lines[1]).trimmingTrailingNewlines() : "(no reason recorded)"
            let record = try? read(name, in: setAsideDirectory)
            records.append(SetAsideRecord(name: name, path: record?.path, reason: reason, since: since))
        }
        return records.sorted { ($0.since, $0.name) < ($1.since, $1.name) }
    }

    /// Puts set-aside entries back into the queue, to be applied by the
    /// next delivery or `flush`.
    public func retrySetAside(_ names: [String]) throws {
        for name in names {
            try FileSystem.rename(setAsideDirectory.appending(name), directory.appending(name))
            try? FileSystem.unlink(reasonFile(for: name))
        }
        if names.isEmpty { return }
        try FileSystem.fsyncDirectory(directory)
        try FileSystem.fsyncDirectory(setAsideDirectory)
    }

    /// Forgets set-aside entries. Their message files stay in the maildir
    /// (`notmuch new` indexes them with new.tags, if they are mail).
    public func dropSetAside(_ names: [String]) throws {
        for name in names {
            try FileSystem.unlink(setAsideDirectory.appending(name))
            try? FileSystem.unlink(reasonFile(for: name))
        }
        if !names.isEmpty { try FileSystem.fsyncDirectory(setAsideDirectory) }
    }
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var text = Substring(self)
        while text.last == "\n" { text.removeLast() }
        return String(text)
    }
}
