import Foundation
import MaildirKit
import SystemPackage
import Testing

/// The Maildir++ `maildirsize` file, against real maildirs.
@Suite struct MaildirQuotaTests {
    private let manager = FileManager.default

    /// A mail root that is itself a maildir, with the given folders below it.
    private func mailbox(folders: [String] = []) throws -> URL {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("nd-quota-\(UUID().uuidString)")
        for folder in [""] + folders {
            for sub in ["tmp", "new", "cur"] {
                try manager.createDirectory(at: root.appendingPathComponent(folder).appendingPathComponent(sub),
                                            withIntermediateDirectories: true)
            }
        }
        return root
    }

    private func put(_ bytes: Int, in folder: String, named name: String = UUID().uuidString, root: URL) throws {
        try Data(repeating: 65, count: bytes).write(to: root.appendingPathComponent(folder).appendingPathComponent(name))
    }

    private func write(_ text: String, to root: URL) throws {
        try text.write(to: root.appendingPathComponent("maildirsize"), atomically: false, encoding: .utf8)
    }

    private func contents(_ root: URL) throws -> String {
        try String(contentsOf: root.appendingPathComponent("maildirsize"), encoding: .utf8)
    }

    @Test func limitsLinesAreParsed() {
        #expect(QuotaLimit(maildirsizeLine: "10000000S,1000C") == QuotaLimit(bytes: 10_000_000, messages: 1000))
        #expect(QuotaLimit(maildirsizeLine: "1000C") == QuotaLimit(messages: 1000))
        #expect(QuotaLimit(maildirsizeLine: "0S")?.isUnlimited == true)
        #expect(QuotaLimit(maildirsizeLine: "10X") == nil)
        #expect(QuotaLimit(maildirsizeLine: "-5S") == nil)
        #expect(QuotaLimit(maildirsizeLine: "") == nil)
    }

    @Test func writtenLimitsAreParsed() {
        #expect(QuotaLimit(parsing: "2G,100000C") == QuotaLimit(bytes: 2 << 30, messages: 100_000))
        #expect(QuotaLimit(parsing: "500M") == QuotaLimit(bytes: 500 << 20))
        #expect(QuotaLimit(parsing: "10k") == QuotaLimit(bytes: 10240))
        #expect(QuotaLimit(parsing: "1234") == QuotaLimit(bytes: 1234))
        #expect(QuotaLimit(parsing: "100C") == QuotaLimit(messages: 100))
        for bad in ["", "0", "-1G", "1.5G", "G", "1G,2G", "99999999999999999999", "2000000000G", "1X", "inf", "nan"] {
            #expect(QuotaLimit(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test func sizesInNamesAreRead() {
        #expect(MaildirQuota.sizeInName("1.M2P3.host,S=1234,W=1270:2,S") == 1234)
        #expect(MaildirQuota.sizeInName("1.M2P3.host,S=99") == 99)
        #expect(MaildirQuota.sizeInName("abc.host:2,S") == nil)
    }

    /// Every maildir below the root counts, dotted or not, Trash too (a
    /// delivery may file mail there), except the database; `,S=` is
    /// believed over the file's real size.
    @Test func theCountCoversTheTreeButNotTheDatabase() throws {
        let root = try mailbox(folders: ["lists/swift", ".Sent", "Trash", ".Trash", ".notmuch/xapian"])
        defer { try? manager.removeItem(at: root) }
        try put(100, in: "new", root: root)
        try put(200, in: "cur", named: "1.M1P1.h,S=5000:2,S", root: root)
        try put(300, in: "lists/swift/cur", root: root)
        try put(400, in: ".Sent/new", root: root)
        try put(1000, in: "Trash/cur", root: root)
        try put(1000, in: ".Trash/cur", root: root)
        try put(1000, in: ".notmuch/xapian/new", root: root)
        try put(1000, in: "tmp", root: root)
        try put(1000, in: "new", named: ".hidden", root: root)
        #expect(MaildirQuota.count(FilePath(root.path)) == QuotaUsage(bytes: 100 + 5000 + 300 + 400 + 2000, messages: 6))
    }

    @Test func aMissingFileIsRecalculatedAndWritten() throws {
        let root = try mailbox()
        defer { try? manager.removeItem(at: root) }
        try put(100, in: "new", root: root)
        let quota = MaildirQuota(root: FilePath(root.path))
        let current = quota.current(limit: QuotaLimit(bytes: 1000))
        #expect(current?.1 == QuotaUsage(bytes: 100, messages: 1))
        #expect(try contents(root) == "1000S\n100 1\n")
        // And nothing is left in tmp/.
        #expect(try manager.contentsOfDirectory(atPath: root.appendingPathComponent("tmp").path).isEmpty)
    }

    /// The limit comes from the file when none is configured; the lines are
    /// summed, not recounted (the mailbox itself is empty here).
    @Test func aCourierFileIsBelieved() throws {
        let root = try mailbox()
        defer { try? manager.removeItem(at: root) }
        try write("10000000S,1000C\n5000 3\n1200 1\n-300 -1\n", to: root)
        let current = MaildirQuota(root: FilePath(root.path)).current(limit: nil)
        #expect(current?.0 == QuotaLimit(bytes: 10_000_000, messages: 1000))
        #expect(current?.1 == QuotaUsage(bytes: 5900, messages: 3))
    }

    @Test func noLimitAnywhereIsNoQuota() throws {
        let root = try mailbox()
        defer { try? manager.removeItem(at: root) }
        #expect(MaildirQuota(root: FilePath(root.path)).current(limit: nil) == nil)
        #expect(!manager.fileExists(atPath: root.appendingPathComponent("maildirsize").path))
        try write("0S\n5 1\n", to: root)
        #expect(MaildirQuota(root: FilePath(root.path)).current(limit: nil) == nil)
    }

    @Test func corruptFilesAreRecalculated() throws {
        for corrupt in ["garbage\n", "1000S\nnot numbers\n", "1000S\n5 1", "1000S\n1 2 3\n", "", "1000S\n-500 -1\n"] {
            let root = try mailbox()
            defer { try? manager.removeItem(at: root) }
            try put(42, in: "cur", root: root)
            try write(corrupt, to: root)
            let current = MaildirQuota(root: FilePath(root.path)).current(limit: QuotaLimit(bytes: 1000))
            #expect(current?.1 == QuotaUsage(bytes: 42, messages: 1), "\(corrupt.debugDescription)")
            #expect(try contents(root) == "1000S\n42 1\n")
        }
    }

    /// A broken usage line does not lose the limit: with none configured,
    /// the file's own still applies, and the usage is recounted.
    @Test func aBrokenUsageLineKeepsTheLimit() throws {
        for broken in ["500S\n1 1\ngarbage\n", "500S\n1 1\n12", "500S\n1 1 1\n"] {
            let root = try mailbox()
            defer { try? manager.removeItem(at: root) }
            try put(42, in: "cur", root: root)
            try write(broken, to: root)
            let current = MaildirQuota(root: FilePath(root.path)).current(limit: nil)
            #expect(current?.0 == QuotaLimit(bytes: 500), "\(broken.debugDescription)")
            #expect(current?.1 == QuotaUsage(bytes: 42, messages: 1), "\(broken.debugDescription)")
            #expect(try contents(root) == "500S\n42 1\n")
        }
    }

    @Test func aLargeFileIsRecalculated() throws {
        let root = try mailbox()
        defer { try? manager.removeItem(at: root) }
        try put(7, in: "new", root: root)
        try write("1000000S\n" + String(repeating: "1 1\n", count: 1300), to: root)
        let current = MaildirQuota(root: FilePath(root.path)).current(limit: nil)
        #expect(current?.1 == QuotaUsage(bytes: 7, messages: 1))
        #expect(try contents(root) == "1000000S\n7 1\n")
    }

    /// Over quota by its lines: recounted when it has several, or is old.
    @Test func overQuotaIsCheckedByARecount() throws {
        let root = try mailbox()
        defer { try? manager.removeItem(at: root) }
        try put(10, in: "new", root: root)
        let quota = MaildirQuota(root: FilePath(root.path))
        try write("100S\n90 1\n20 1\n", to: root)
        #expect(quota.current(limit: nil)?.1 == QuotaUsage(bytes: 10, messages: 1))
        // One line, fresh: believed.
        try write("100S\n200 1\n", to: root)
        #expect(quota.current(limit: nil)?.1 == QuotaUsage(bytes: 200, messages: 1))
        // One line, but older than 15 minutes: recounted.
        #expect(quota.current(limit: nil, now: Int(Date().timeIntervalSince1970) + 16 * 60)?.1
                == QuotaUsage(bytes: 10, messages: 1))
    }

    /// A limit line alone (set by hand, or by `maildirmake -q`) is counted.
    @Test func aLimitLineAloneIsCounted() throws {
        let root = try mailbox()
        defer { try? manager.removeItem(at: root) }
        try put(64, in: "cur", root: root)
        try write("1073741824S\n", to: root)
        #expect(MaildirQuota(root: FilePath(root.path)).current(limit: nil)?.1 == QuotaUsage(bytes: 64, messages: 1))
        #expect(try contents(root) == "1073741824S\n64 1\n")
    }

    @Test func aChangedLimitRewritesTheFile() throws {
        let root = try mailbox()
        defer { try? manager.removeItem(at: root) }
        try write("100S\n0 0\n", to: root)
        _ = MaildirQuota(root: FilePath(root.path)).current(limit: QuotaLimit(bytes: 5000, messages: 10))
        #expect(try contents(root) == "5000S,10C\n0 0\n")
    }

    @Test func appendsAddLinesOnlyToAnExistingFile() throws {
        let root = try mailbox()
        defer { try? manager.removeItem(at: root) }
        let quota = MaildirQuota(root: FilePath(root.path))
        #expect(!quota.add(bytes: 10, messages: 1))
        #expect(!manager.fileExists(atPath: root.appendingPathComponent("maildirsize").path))
        try write("1000S\n0 0\n", to: root)
        #expect(quota.add(bytes: 10, messages: 1))
        #expect(quota.add(bytes: 20, messages: 1))
        #expect(try contents(root) == "1000S\n0 0\n10 1\n20 1\n")
        #expect(quota.read()?.usage == QuotaUsage(bytes: 30, messages: 2))
    }

    /// Many writers appending at once: every line arrives whole.
    @Test func concurrentAppendsAreAllCounted() async throws {
        let root = try mailbox()
        defer { try? manager.removeItem(at: root) }
        try write("1000000S\n0 0\n", to: root)
        let path = root.path
        await withTaskGroup(of: Void.self) { group in
            for index in 1...64 {
                group.addTask { MaildirQuota(root: FilePath(path)).add(bytes: Int64(index), messages: 1) }
            }
        }
        #expect(MaildirQuota(root: FilePath(root.path)).read()?.usage == QuotaUsage(bytes: 64 * 65 / 2, messages: 64))
    }

    @Test func admissionAndGrace() {
        let limit = QuotaLimit(bytes: 1000, messages: 10)
        let usage = QuotaUsage(bytes: 900, messages: 5)
        #expect(usage.admits(100, under: limit, gracePercent: 0))
        #expect(!usage.admits(101, under: limit, gracePercent: 0))
        #expect(usage.admits(200, under: limit, gracePercent: 10))
        #expect(!usage.admits(201, under: limit, gracePercent: 10))
        // At the limit already: no grace left.
        #expect(!QuotaUsage(bytes: 1000, messages: 5).admits(1, under: limit, gracePercent: 10))
        // The message count has no grace.
        #expect(!QuotaUsage(bytes: 0, messages: 10).admits(1, under: limit, gracePercent: 10))
        #expect(usage.percent(of: limit) == 90)
    }
}
