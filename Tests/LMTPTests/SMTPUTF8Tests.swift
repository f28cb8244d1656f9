import LMTP
import Testing

/// Internationalised addresses (RFC 6531): offered in LHLO, taken in MAIL
/// and RCPT when MAIL FROM says SMTPUTF8, as valid UTF-8 without controls.
@Suite struct SMTPUTF8Tests {
    /// The replies after LHLO, and the recipients the server was asked about.
    func session(_ commands: [UInt8]) -> (replies: [String], recipients: [String], client: Client) {
        var client = Client()
        var seen: [String] = []
        client.verdict = { seen.append($0.address); return .accept }
        client.send(Array(lhlo.utf8) + commands)
        return (client.afterLHLO, seen, client)
    }

    func session(_ commands: String) -> (replies: [String], recipients: [String], client: Client) {
        session(Array(commands.utf8))
    }

    @Test func lhloOffersSMTPUTF8() {
        var client = Client()
        client.send(lhlo)
        #expect(client.lines.contains("250-SMTPUTF8"))
    }

    @Test func utf8AddressesWithSMTPUTF8() {
        var envelopes: [LMTPEnvelope] = []
        var client = Client()
        client.delivery = { envelopes.append($0); return $0.recipients.map { _ in LMTPReply(250, "2.0.0", "ok") } }
        client.send(lhlo + "MAIL FROM:<jörg@bücher.example> SMTPUTF8 BODY=8BITMIME\r\n"
            + "RCPT TO:<用户@例子.广告>\r\nRCPT TO:<\"δοκιμή λ\"@παράδειγμα.δοκιμή>\r\nRCPT TO:<plain@ascii.test>\r\n"
            + "DATA\r\nSubject: ünïcödé\r\n\r\nbody\r\n.\r\n")
        #expect(client.afterLHLO == ["250 2.1.0", "250 2.1.5", "250 2.1.5", "250 2.1.5", "354", "250 2.0.0",
                                     "250 2.0.0", "250 2.0.0"])
        #expect(envelopes.map(\.sender) == ["jörg@bücher.example"])
        #expect(envelopes.first?.smtputf8 == true)
        #expect(envelopes.first?.recipients.map(\.address)
            == ["用户@例子.广告", "δοκιμή λ@παράδειγμα.δοκιμή", "plain@ascii.test"])
        #expect(client.messages == [Array("Subject: ünïcödé\n\nbody\n".utf8)])
    }

    @Test func utf8AddressesNeedSMTPUTF8() {
        #expect(session("MAIL FROM:<jörg@example.org>\r\n").replies == ["553 5.6.7"])
        let rcpt = session("MAIL FROM:<s@example.org>\r\nRCPT TO:<jörg@example.org>\r\nRCPT TO:<a@example.org>\r\n")
        #expect(rcpt.replies == ["250 2.1.0", "553 5.6.7", "250 2.1.5"])
        #expect(rcpt.recipients == ["a@example.org"])
        #expect(rcpt.client.lines.suffix(2).first == "553 5.6.7 non-ASCII address without SMTPUTF8 on MAIL FROM")
        // An ASCII sender with SMTPUTF8 opens the transaction to UTF-8 recipients.
        #expect(session("MAIL FROM:<> SMTPUTF8\r\nRCPT TO:<jörg@example.org>\r\n").recipients == ["jörg@example.org"])
    }

    @Test func invalidUTF8IsRefusedWithItsReason() {
        let mail = Array("MAIL FROM:<".utf8), rcpt = Array("RCPT TO:<".utf8)
        let end = Array("@example.org> SMTPUTF8\r\n".utf8), rcptEnd = Array("@example.org>\r\n".utf8)
        let ok = Array("MAIL FROM:<s@example.org> SMTPUTF8\r\n".utf8)
        // A lone continuation byte, a truncated sequence, an overlong "/", a
        // surrogate, a code point over U+10FFFF.
        for bad: [UInt8] in [[0x80], [0xC3], [0xC3, 0x41], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80]] {
            let sender = session(mail + bad + end)
            #expect(sender.replies == ["501 5.1.7"], "\(bad)")
            #expect(sender.client.lines.last == "501 5.1.7 sender address is not valid UTF-8")
            let recipient = session(ok + rcpt + bad + rcptEnd)
            #expect(recipient.replies == ["250 2.1.0", "501 5.1.3"], "\(bad)")
            #expect(recipient.recipients.isEmpty)
            #expect(recipient.client.lines.last == "501 5.1.3 recipient address is not valid UTF-8")
        }
    }

    @Test func controlCharactersInUTF8AreRefused() {
        let ok = Array("MAIL FROM:<s@example.org> SMTPUTF8\r\n".utf8)
        // NEL (U+0085), another C1 control, the line and paragraph separators;
        // in a quoted local part too.
        for control in ["\u{85}", "\u{9B}", "\u{2028}", "\u{2029}"] {
            for local in ["a\(control)b", "\"a\(control)b\""] {
                let result = session(ok + Array("RCPT TO:<\(local)@example.org>\r\n".utf8))
                #expect(result.replies == ["250 2.1.0", "501 5.1.3"], "\(local.debugDescription)")
                #expect(result.client.lines.last == "501 5.1.3 control character in recipient address")
                #expect(session("MAIL FROM:<\(local)@example.org> SMTPUTF8\r\n").replies == ["501 5.1.7"])
            }
        }
        // C0 controls and DEL never get as far as the address: the command is refused.
        #expect(session("MAIL FROM:<a\u{1B}b@example.org> SMTPUTF8\r\n").replies == ["500 5.5.2"])
    }

    @Test func aUTF8AddressIsHeldToTheLengthInOctets() {
        // 128 two-byte characters: 256 octets of local part, with the domain over.
        let long = String(repeating: "é", count: 127) + "@b"
        #expect(session("MAIL FROM:<> SMTPUTF8\r\nRCPT TO:<\(long)>\r\n").recipients == [long])
        let tooLong = String(repeating: "é", count: 128) + "@b"
        #expect(session("MAIL FROM:<> SMTPUTF8\r\nRCPT TO:<\(tooLong)>\r\n").replies == ["250 2.1.0", "501 5.1.3"])
    }
}
