import Foundation
import MailParsing
import Testing

/// Issue 22: what GMime would parse as header fields and MIME parts is
/// counted before it parses anything; real shapes of mail pass.
@Suite("Counting a message's header fields and parts")
struct MessageLimitsTests {
    private func scan(_ text: String) throws -> MessageLimits.Scan? {
        let path = NSTemporaryDirectory() + "nd-limits-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return MessageLimits.scan(ofFile: path)
    }

    private let head = "From: a@example.org\r\nTo: b@example.org\r\nSubject: s\r\nMessage-ID: <m@x>\r\n"

    @Test func theMessagesHeaderLinesAreCountedUpToTheLimit() throws {
        let at = head + String(repeating: "X-H: v\r\n", count: MessageLimits.maxLinesPerHeader - 4) + "\r\nbody\r\n"
        #expect(try scan(at)?.excess == nil)
        let over = head + String(repeating: "X-H: v\r\n", count: MessageLimits.maxLinesPerHeader - 3) + "\r\nbody\r\n"
        #expect(try scan(over)?.excess == .linesPerHeader)
        // Lines that are not fields count too: GMime skips them and goes on.
        let junk = head + "not a field\n" + String(repeating: "X-H: v\n", count: MessageLimits.maxLinesPerHeader) + "\nb\n"
        #expect(try scan(junk)?.excess == .linesPerHeader)
        // A body of such lines is no header.
        let body = head + "\r\n" + String(repeating: "X-H: v\r\n", count: 2 * MessageLimits.maxLinesPerHeader)
        #expect(try scan(body)?.excess == nil)
    }

    @Test func aHeaderOfTwoMebibytesIsTheLimit() throws {
        let field = "X-Long: " + String(repeating: "a", count: 1 << 20) + "\n"
        #expect(try scan(head + field + "\nbody\n")?.excess == nil)
        #expect(try scan(head + field + field + "\nbody\n")?.excess == .bytesPerHeader)
    }

    @Test func emptyPartsAreCounted() throws {
        let multipart = head + "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
        let within = multipart + String(repeating: "--b\n\n\n", count: MessageLimits.maxBoundaryLines - 1) + "--b--\n"
        #expect(try scan(within)?.excess == nil)
        let over = multipart + String(repeating: "--b\n\n\n", count: MessageLimits.maxBoundaryLines) + "--b--\n"
        #expect(try scan(over)?.excess == .boundaryLines)
        // Parts' header fields count towards the message's total.
        let fields = multipart + "--b\n" + String(repeating: "X-H: v\n", count: MessageLimits.maxHeaderLines) + "\nx\n--b--\n"
        #expect(try scan(fields)?.excess == .headerLines)
    }

    /// An embedded message's header (message/rfc822, or a digest's parts)
    /// is a header GMime parses: the flood cannot hide there.
    @Test func embeddedMessagesHeadersAreCounted() throws {
        let flood = "From: x@y\nSubject: inner\n" + String(repeating: "X-H: v\n", count: MessageLimits.maxHeaderLines) + "\nbody\n"
        let rfc822 = head + "MIME-Version: 1.0\nContent-Type: Message/RFC822\n\n" + flood
        #expect(try scan(rfc822)?.excess == .headerLines)
        let folded = head + "MIME-Version: 1.0\nContent-Type:\n  message/rfc822\n\n" + flood
        #expect(try scan(folded)?.excess == .headerLines)
        let digest = head + "MIME-Version: 1.0\nContent-Type: multipart/digest; boundary=b\n\n--b\n\n" + flood + "--b--\n"
        #expect(try scan(digest)?.excess == .headerLines)
    }

    /// Real shapes: a patch of 60,000 lines after `--- a/file`, a digest
    /// of 500 messages of 40 header lines, signatures.
    @Test func realMailPasses() throws {
        var patch = head + "\nCommit message.\n\n---\n big.py | 60000 +\n\ndiff --git a/big.py b/big.py\n--- /dev/null\n+++ b/big.py\n"
        for i in 0..<60_000 { patch += "+    case_\(i): value_\(i),\n" }
        patch += "-- \n2.39.0\n\n"
        #expect(try scan(patch)?.excess == nil)
        var digest = head + "MIME-Version: 1.0\nContent-Type: multipart/digest; boundary=b\n\n"
        for i in 0..<500 {
            digest += "--b\n\n" + String(repeating: "Received: from h by x; Mon, 1 Jan 2024\n", count: 40)
            digest += "From: u\(i)@x\nSubject: m\(i)\n\nText \(i)\n\n"
        }
        #expect(try scan(digest + "--b--\n")?.excess == nil)
    }
}
