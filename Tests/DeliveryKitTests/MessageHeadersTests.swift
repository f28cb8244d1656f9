import Foundation
import MailParsing
import Testing

@Suite("Reading a message's headers")
struct MessageHeadersTests {
    /// A header block over the read limit is cut at a line's end: the
    /// header the limit falls in is left out, never seen half (a value of
    /// a's cut before its '!' would match /^(a+)+$/).
    @Test func aHeaderCutByTheReadLimitIsLeftOutWhole() throws {
        let path = NSTemporaryDirectory() + "nd-headers-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let line = "X-Junk: " + String(repeating: "a", count: 5_000) + "!\n"
        let count = MessageHeaders.readLimit / line.utf8.count + 10
        try (String(repeating: line, count: count) + "Subject: late\n\nbody\n").write(toFile: path, atomically: true, encoding: .utf8)
        let values = MessageHeaders.read(fromFile: path).values("X-Junk")
        #expect(!values.isEmpty && values.count < count)
        #expect(values.allSatisfy { $0.hasSuffix("!") }, "a header was read half")
    }

    @Test func headersWithoutABodyOrFinalNewlineAreReadWhole() throws {
        let path = NSTemporaryDirectory() + "nd-headers-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "From: a@example.org\nSubject: only headers".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(MessageHeaders.read(fromFile: path).values("Subject") == ["only headers"])
    }
}
