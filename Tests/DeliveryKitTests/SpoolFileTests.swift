import Foundation
import MaildirKit
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The one spool (the LMTP server's messages, import's compressed streams):
/// no name in its directory, read back whole, emptied and reused.
@Suite struct SpoolFileTests {
    private func scratch() throws -> String {
        let url = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("nd-spool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    /// Whether `descriptor` is still open in this process.
    private func isOpen(_ descriptor: FileDescriptor) -> Bool { fcntl(descriptor.rawValue, F_GETFD) != -1 }

    @Test func aSpoolHasNoNameAndReadsBackWhole() throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let spool = try SpoolFile(in: directory, prefix: "test-spool")
        spool.append(Array("first\n".utf8))
        spool.append(Array("second\n".utf8))
        #expect(spool.size == 13)
        #expect(spool.failure == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
        #expect(FileManager.default.contents(atPath: spool.path) == Data("first\nsecond\n".utf8))
        // Read through its own descriptor from the start, as a delivery does.
        try spool.rewind()
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = try buffer.withUnsafeMutableBytes { try spool.descriptor.read(into: $0) }
        #expect(String(decoding: buffer[..<count], as: UTF8.self) == "first\nsecond\n")
        spool.close()
    }

    @Test func aClosedSpoolIsEmptiedAndReusedInItsDirectory() throws {
        let directory = try scratch()
        let other = try scratch()
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: other)
        }
        let first = try SpoolFile(in: directory, prefix: "test-spool")
        first.append(Array("a message\n".utf8))
        let descriptor = first.descriptor
        first.close()
        first.close()  // Once only: a second close neither closes nor keeps it twice.
        #expect(isOpen(descriptor), "kept, not closed")

        let elsewhere = try SpoolFile(in: other, prefix: "test-spool")
        #expect(elsewhere.descriptor != descriptor, "kept per directory")
        let second = try SpoolFile(in: directory, prefix: "test-spool")
        #expect(second.descriptor == descriptor)
        #expect(second.size == 0)
        #expect(FileManager.default.contents(atPath: second.path) == Data())
        second.append(Array("next\n".utf8))
        #expect(FileManager.default.contents(atPath: second.path) == Data("next\n".utf8))
        let third = try SpoolFile(in: directory, prefix: "test-spool")
        #expect(third.descriptor != descriptor, "handed out once")
        for spool in [second, third, elsewhere] { spool.close() }
    }

    @Test func atMostAFewAreKeptPerDirectory() throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let spools = try (0...SpoolFile.keptAtMost).map { _ in
            try SpoolFile(in: directory, prefix: "test-spool")
        }
        for spool in spools { spool.close() }
        #expect(spools.prefix(SpoolFile.keptAtMost).allSatisfy { isOpen($0.descriptor) })
        #expect(!isOpen(spools[SpoolFile.keptAtMost].descriptor), "one more than kept is closed")
        // The kept ones come back.
        let again = try (0..<SpoolFile.keptAtMost).map { _ in
            try SpoolFile(in: directory, prefix: "test-spool")
        }
        #expect(Set(again.map(\.descriptor)) == Set(spools.prefix(SpoolFile.keptAtMost).map(\.descriptor)))
        for spool in again { spool.close() }
    }

    @Test func aDirectoryThatCannotHoldOneIsAnError() {
        #expect(throws: Errno.self) {
            try SpoolFile(in: "/nonexistent-\(UUID().uuidString)", prefix: "test-spool")
        }
    }
}
