import Foundation
import Testing

/// Values from a message reach the log (Subject, From, Message-ID): a
/// sender must not be able to add a record of their own or drive the
/// reader's terminal with them.
@Suite("Log injection")
struct LogInjectionTests {
    /// RFC 2047 base64 encoded word, so the header itself stays one line
    /// and the control characters only appear once it is decoded.
    private func encodedWord(_ text: String) -> String {
        "=?UTF-8?B?" + Data(text.utf8).base64EncodedString() + "?="
    }

    @Test func decodedControlCharactersStayOnOneLine() throws {
        let fixture = try MailFixture()
        let forged = "\n2026-01-01T00:00:00Z notmuch-deliver[1] info: delivered id=<forged@x>"
        let escapes = "\u{1B}[2J\u{1B}]0;owned\u{07}\r\u{7F}\u{85}\u{2028}"
        let message = sampleMessage(id: "log-forgery@example.org",
                                    subject: encodedWord(forged) + " " + encodedWord(escapes),
                                    from: encodedWord("Mallory\u{1B}[31m\n") + " <mallory@example.org>")
        let log = fixture.directory.appendingPathComponent("deliver.log")
        let result = try fixture.deliver(message, ["--log", log.path, "-v"])
        #expect(result.status == 0, "\(result.stderr)")

        let text = try String(contentsOf: log, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        // One record and the final newline: two pieces, the second empty.
        #expect(lines.count == 2 && lines[1].isEmpty, "log: \(text.debugDescription)")
        #expect(lines[0].contains("id=<log-forgery@example.org>"))
        #expect(lines[0].contains("\\x0A2026-01-01T00:00:00Z"), "newline not shown escaped: \(text.debugDescription)")
        #expect(!text.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "raw control character: \(text.debugDescription)")
        #expect(!text.unicodeScalars.contains { (0x7F...0x9F).contains($0.value) || $0.value == 0x2028 })

        // The -v copy on stderr goes through swift-log's own handler: the same holds there.
        #expect(!result.stderr.contains("\u{1B}"), "raw ESC on stderr: \(result.stderr.debugDescription)")
        #expect(!result.stderr.split(separator: "\n").contains { $0.hasPrefix("2026-01-01T00:00:00Z") })
    }

    /// The envelope, too: an MTA keeps the stderr line as the reason it logs
    /// and bounces with, so a recipient must not add lines there either.
    @Test func envelopeValuesStayOnOneLineInLogAndStderr() throws {
        let fixture = try MailFixture()
        let log = fixture.directory.appendingPathComponent("deliver.log")
        let root = fixture.directory.appendingPathComponent("virtual").path + "/%d/%u"
        let result = try fixture.deliver(sampleMessage(id: "envelope@x"),
                                         ["--mail-root", root, "--recipient", "bad\n5.0.0 forged\u{1B}[2J", "--log", log.path])
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("notmuch-deliver: the recipient 'bad\\x0A5.0.0 forged\\x1B[2J'"), "\(result.stderr.debugDescription)")
        #expect(result.stderr.filter { $0 == "\n" }.count == 1 && result.stderr.hasSuffix("\n"))
        let text = try String(contentsOf: log, encoding: .utf8)
        #expect(text.filter { $0 == "\n" }.count == 1, "\(text.debugDescription)")
        #expect(!text.contains("\u{1B}"))
    }

    /// explain prints the header values its checks saw: escaped as in the log.
    @Test func explainShowsHeaderValuesEscaped() throws {
        let fixture = try MailFixture()
        try fixture.useRules("+seen -- header:Subject~/forged/\n")
        let subject = encodedWord("x\nyes: forged line\u{1B}[2J")
        let result = try fixture.command(["explain"], input: sampleMessage(id: "explain-escape@x", subject: subject))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stdout.contains("\u{1B}"), "\(result.stdout.debugDescription)")
        #expect(!result.stdout.split(separator: "\n").contains { $0.hasPrefix("yes: forged") }, "\(result.stdout)")
        #expect(result.stdout.contains("(Subject: x\\x0Ayes: forged line\\x1B[2J)"), "\(result.stdout)")
    }
}
