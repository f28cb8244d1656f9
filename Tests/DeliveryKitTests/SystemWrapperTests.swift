import Foundation
import SystemPackage
import Testing
import MaildirKit

/// MaildirKit's wrappers of the calls swift-system lacks, on real files.
@Suite struct SystemWrapperTests {
    private func scratchDirectory() throws -> String {
        let url = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("nd-wrappers-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    /// The quota's lock orders deliveries: while one holds it, another
    /// (another open of the root) cannot take it; once let go, it can.
    @Test func theQuotaLockIsHeldUntilReleased() throws {
        let root = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let quota = MaildirQuota(root: FilePath(root))
        let first = try #require(quota.openLock())
        let second = try #require(quota.openLock())
        #expect(try first.tryTake())
        #expect(try !second.tryTake())
        first.release()
        #expect(try second.tryTake())
        second.release()
    }

    @Test func aLockOnAMissingRootCannotBeOpened() {
        #expect(MaildirQuota(root: FilePath("/nonexistent/nd-\(UUID().uuidString)")).openLock() == nil)
    }

    @Test func anAnonymousFileLeavesNoNameBehind() throws {
        let directory = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try AnonymousFile.create(in: directory, prefix: "test-spool")
        defer { try? file.close() }
        _ = try file.writeAll(Array("hello".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
        var bytes = [UInt8](repeating: 0, count: 5)
        _ = try bytes.withUnsafeMutableBytes { try file.read(fromAbsoluteOffset: 0, into: $0) }
        #expect(bytes == Array("hello".utf8))
    }

    @Test func anAnonymousFileInAMissingDirectoryIsAnError() {
        #expect(throws: Errno.self) { try AnonymousFile.create(in: "/nonexistent/nd-\(UUID().uuidString)", prefix: "x") }
    }

    @Test func byteSearchFindsTheFirstByte() {
        let bytes = Array("ab\ncd\n".utf8)
        bytes.withUnsafeBytes { raw in
            #expect(ByteSearch.firstOffset(of: 10, in: raw) == 2)
            #expect(ByteSearch.firstOffset(of: UInt8(ascii: "z"), in: raw) == nil)
            #expect(ByteSearch.firstOffset(of: 10, in: UnsafeRawBufferPointer(rebasing: raw[0..<0])) == nil)
        }
    }

    @Test func aFromLinesDateIsReadAsUTC() {
        #expect(FromLineDate.seconds(in: "From someone@example.org Thu Jan  1 00:00:10 1970") == 10)
        #expect(FromLineDate.seconds(in: "From MAILER-DAEMON Mon Nov 24 09:00:00 2025") == 1_763_974_800)
        #expect(FromLineDate.seconds(in: "From someone@example.org yesterday") == nil)
    }

    @Test func aPosixPatternMatchesAsRegcompReadsIt() throws {
        let pattern = try PosixRegex("^spam/[0-9]+$")
        #expect(pattern.matches("spam/123"))
        #expect(!pattern.matches("spam/12a"))
        #expect(throws: PosixRegex.Invalid.self) { try PosixRegex("(unclosed") }
    }

    @Test func directoriesMatchingAPatternAreSortedDirectoriesOnly() throws {
        let root = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for name in ["b", "a"] { try FileManager.default.createDirectory(atPath: root + "/" + name, withIntermediateDirectories: false) }
        FileManager.default.createFile(atPath: root + "/c", contents: Data())
        #expect(FileSystem.directories(matching: root + "/*") == [root + "/a", root + "/b"])
    }

    /// Read only: setenv while other tests' threads read the environment is not safe.
    @Test func environmentVariablesAreRead() {
        let unset = "ND_WRAPPER_TEST_UNSET_\(UInt32.random(in: 0...UInt32.max))"
        #expect(ProcessEnvironment.value(of: "PATH") != nil)
        #expect(ProcessEnvironment.value(of: unset) == nil)
        #expect(ProcessEnvironment.values(["PATH", unset]).keys.sorted() == ["PATH"])
    }
}
