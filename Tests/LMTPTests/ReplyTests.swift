import LMTP
import Testing

/// Replies on the wire: well formed whatever their fields hold.
@Suite struct ReplyTests {
    func wire(_ reply: LMTPReply) -> String { String(decoding: reply.bytes, as: UTF8.self) }

    @Test func linesAndCodes() {
        #expect(wire(LMTPReply(250, "2.0.0", "a", "b")) == "250-2.0.0 a\r\n250 2.0.0 b\r\n")
        #expect(wire(LMTPReply(220, nil, "host ready")) == "220 host ready\r\n")
        #expect(wire(LMTPReply(250, nil, lines: [])) == "250\r\n")
        #expect(wire(LMTPReply(250, "2.0.0", lines: [])) == "250 2.0.0\r\n")
        #expect(wire(LMTPReply(250, nil, "", "last")) == "250-\r\n250 last\r\n")
    }

    @Test func textCannotForgeReplies() {
        #expect(wire(LMTPReply(550, "5.1.1", "no\r\n250 2.0.0 yes")) == "550 5.1.1 no??250 2.0.0 yes\r\n")
        #expect(wire(LMTPReply(550, "5.1.1", "nul\u{0} del\u{7F} tab\t \u{e9}")) == "550 5.1.1 nul? del? tab? ??\r\n")
    }

    @Test func longLinesAreCut() {
        let line = wire(LMTPReply(550, "5.1.1", String(repeating: "x", count: 2000)))
        #expect(line.utf8.count == 512)
        #expect(line.hasSuffix("xx\r\n"))
    }

    @Test func badCodesDoNotReachTheWire() {
        #expect(wire(LMTPReply(-1, "5.1.1", "x")) == "451 5.1.1 x\r\n")
        #expect(wire(LMTPReply(1234, nil, "x")) == "451 x\r\n")
        #expect(wire(LMTPReply(550, "5.1.1\r\n", "x")) == "550 x\r\n")
        #expect(wire(LMTPReply(550, "7.1.1", "x")) == "550 x\r\n")
        #expect(wire(LMTPReply(550, "5.1234.1", "x")) == "550 x\r\n")
        #expect(wire(LMTPReply(550, "5.1", "x")) == "550 x\r\n")
    }
}
