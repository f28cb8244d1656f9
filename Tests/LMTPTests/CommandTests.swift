import LMTP
import Testing

/// Commands one by one: what each is answered, refused ones included.
@Suite struct CommandTests {
    /// The replies to `commands` after LHLO, in a fresh session.
    func replies(_ commands: String, _ configuration: LMTPConfiguration = LMTPConfiguration(hostname: "mx.test"))
        -> [String]
    {
        var client = Client(configuration)
        client.send(lhlo + commands)
        return client.afterLHLO
    }

    @Test func heloAndEhloAreNotLMTP() {
        #expect(replies("HELO client\r\nEHLO client\r\nhelo\r\n") == ["500 5.5.1", "500 5.5.1", "500 5.5.1"])
        var client = Client()
        client.send("EHLO client\r\n")
        #expect(client.lines.last == "500 5.5.1 this is LMTP: greet with LHLO")
    }

    @Test func lhloNeedsADomainAndResetsTheTransaction() {
        #expect(replies("LHLO\r\nLHLO   \r\n") == ["501 5.5.4", "501 5.5.4"])
        #expect(replies("MAIL FROM:<a@b>\r\nLHLO again\r\nRCPT TO:<c@d>\r\nMAIL FROM:<a@b>\r\n")
            == ["250 2.1.0", "250", "503 5.5.1", "250 2.1.0"])
    }

    @Test func onlyLHLONOOPRSETAndQUITComeBeforeLHLO() {
        var client = Client()
        client.send("NOOP\r\nRSET\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@b>\r\nDATA\r\nVRFY x\r\nHELP\r\nFOO\r\nQUIT\r\n")
        #expect(client.replies == ["220", "250 2.0.0", "250 2.0.0", "503 5.5.1", "503 5.5.1", "503 5.5.1",
                                   "503 5.5.1", "503 5.5.1", "500 5.5.1", "221 2.0.0"])
        #expect(client.closed)
    }

    @Test func simpleCommands() {
        #expect(replies("NOOP\r\nNOOP anything\r\nVRFY someone\r\nVRFY\r\nHELP\r\nHELP MAIL\r\nRSET\r\nSTARTTLS\r\nBDAT 10 LAST\r\n")
            == ["250 2.0.0", "250 2.0.0", "252 2.5.0", "501 5.5.4", "214 2.0.0", "214 2.0.0", "250 2.0.0",
                "500 5.5.1", "500 5.5.1"])
    }

    @Test func mailFromSyntax() {
        #expect(replies("MAIL FROM:<a@b>\r\n") == ["250 2.1.0"])
        #expect(replies("MAIL FROM: <a@b>\r\n") == ["250 2.1.0"])
        #expect(replies("MAIL FROM:<>\r\n") == ["250 2.1.0"])
        #expect(replies("mail from:<a@b> body=8bitmime size=100\r\n") == ["250 2.1.0"])
        #expect(replies("MAIL FROM:a@b\r\n") == ["501 5.1.7"])
        #expect(replies("MAIL FROM:<a@b\r\n") == ["501 5.1.7"])
        #expect(replies("MAIL FROM:<a@b>x\r\n") == ["501 5.1.7"])
        #expect(replies("MAIL\r\nMAIL TO:<a@b>\r\nMAIL FROM\r\n") == ["501 5.5.4", "501 5.5.4", "501 5.5.4"])
        #expect(replies("MAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\n") == ["250 2.1.0", "503 5.5.1"])
    }

    @Test func mailFromParameters() {
        let small = LMTPConfiguration(hostname: "mx.test", maxMessageSize: 1000)
        #expect(replies("MAIL FROM:<a@b> SIZE=1000\r\n", small) == ["250 2.1.0"])
        #expect(replies("MAIL FROM:<a@b> SIZE=1001\r\n", small) == ["552 5.3.4"])
        #expect(replies("MAIL FROM:<a@b> SIZE=99999999999999999999999999999\r\n", small) == ["552 5.3.4"])
        #expect(replies("MAIL FROM:<a@b> SIZE=99999999999999999999999999999x\r\n", small) == ["501 5.5.4"])
        #expect(replies("MAIL FROM:<a@b> SIZE=-1\r\nMAIL FROM:<a@b> SIZE=\r\nMAIL FROM:<a@b> SIZE\r\n", small)
            == ["501 5.5.4", "501 5.5.4", "501 5.5.4"])
        #expect(replies("MAIL FROM:<a@b> BODY=7BIT\r\n") == ["250 2.1.0"])
        #expect(replies("MAIL FROM:<a@b> BODY=BINARYMIME\r\n") == ["501 5.5.4"])
        #expect(replies("MAIL FROM:<a@b> SMTPUTF8\r\n") == ["250 2.1.0"])
        #expect(replies("MAIL FROM:<a@b> SMTPUTF8=yes\r\n") == ["501 5.5.4"])
        #expect(replies("MAIL FROM:<a@b> AUTH=<>\r\n") == ["555 5.5.4"])
        #expect(replies("MAIL FROM:<a@b> SIZE=1 SIZE=2\r\n") == ["501 5.5.4"])
        #expect(replies("MAIL FROM:<a@b> =x\r\n") == ["501 5.5.4"])
        // A declared size over the limit is a limit, not a mistake: the transaction can start again.
        #expect(replies("MAIL FROM:<a@b> SIZE=1001\r\nMAIL FROM:<a@b>\r\n", small) == ["552 5.3.4", "250 2.1.0"])
    }

    @Test func theEnvelopeHasWhatMailFromSaid() {
        var client = Client()
        var envelopes: [LMTPEnvelope] = []
        client.delivery = { envelopes.append($0); return [LMTPReply(250, "2.0.0", "ok")] }
        client.send(lhlo + "MAIL FROM:<> BODY=8BITMIME SIZE=42\r\nRCPT TO:<a@b> NOTIFY=NEVER orcpt=rfc822;a+40b@c\r\n"
            + "DATA\r\nx\r\n.\r\n")
        #expect(envelopes == [LMTPEnvelope(sender: "", recipients: [
            LMTPRecipient(address: "a@b", parameters: ["NOTIFY": "NEVER", "ORCPT": "rfc822;a+40b@c"], index: 0),
        ], declaredSize: 42, eightBit: true)])
    }

    @Test func rcptToNeedsMailAndAFullAddress() {
        #expect(replies("RCPT TO:<a@b>\r\n") == ["503 5.5.1"])
        let bad = ["<>", "a@b", "<a@b", "<a@>", "<@b>", "<a>", "<a@b@c>", "<a b@c>", "<\"a@b>", "<a@b c>",
                   "<@x:a@b>x", "<@:a@b>", "<x,@y:a@b>", "<\"unterminated@b>"]
        for address in bad {
            #expect(replies("MAIL FROM:<>\r\nRCPT TO:\(address)\r\n") == ["250 2.1.0", "501 5.1.3"], "\(address)")
        }
        #expect(replies("MAIL FROM:<>\r\nRCPT\r\nRCPT FROM:<a@b>\r\n") == ["250 2.1.0", "501 5.5.4", "501 5.5.4"])
    }

    @Test func recipientAddresses() {
        let addresses = [
            "<a@b>": "a@b",
            "< a@b>": nil,
            "<@relay.test,@other.test:user@dom.test>": "user@dom.test",
            "<@relay.test:user@dom.test>": "user@dom.test",
            // Quoted local parts given back as the MTA means them (postfix
            // quotes `.dot@` on the wire, and passes `.dot@` to pipe(8)).
            "<\".dot\"@x.test>": ".dot@x.test",
            "<\"a b\"@x.test>": "a b@x.test",
            "<\"a\\\"b@c\"@x.test>": "a\"b@c@x.test",
            "<\"a>b\"@x.test>": "a>b@x.test",
            "<postmaster>": "postmaster",
            "<PostMaster>": "PostMaster",
            "<user@[192.0.2.1]>": "user@[192.0.2.1]",
            "<user@[IPv6:2001:db8::1]>": "user@[IPv6:2001:db8::1]",
            "<first.last+tag@example.org>": "first.last+tag@example.org",
            // Without SMTPUTF8 on MAIL FROM, ASCII only (SMTPUTF8Tests has the rest).
            "<user@d\u{e9}.test>": nil,
        ]
        for (given, expected) in addresses {
            var client = Client()
            var seen: [String] = []
            client.verdict = { seen.append($0.address); return .accept }
            client.send(lhlo + "MAIL FROM:<>\r\nRCPT TO:\(given)\r\n")
            #expect(seen == (expected.map { [$0] } ?? []), "\(given)")
        }
    }

    @Test func addressLengthIsLimited() {
        let longest = String(repeating: "a", count: 250) + "@b.tes"
        let tooLong = String(repeating: "a", count: 251) + "@b.tes"
        #expect(replies("MAIL FROM:<>\r\nRCPT TO:<\(longest)>\r\nRCPT TO:<\(tooLong)>\r\n")
            == ["250 2.1.0", "250 2.1.5", "501 5.1.3"])
    }

    @Test func recipientParameters() {
        #expect(replies("MAIL FROM:<>\r\nRCPT TO:<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b\r\n")
            == ["250 2.1.0", "250 2.1.5"])
        #expect(replies("MAIL FROM:<>\r\nRCPT TO:<a@b> SIZE=1\r\nRCPT TO:<a@b> NOTIFY\r\nRCPT TO:<a@b> X=a=b\r\n")
            == ["250 2.1.0", "555 5.5.4", "501 5.5.4", "501 5.5.4"])
    }

    @Test func tooManyRecipientsIsTemporaryAndNotAnError() {
        let configuration = LMTPConfiguration(hostname: "mx.test", maxRecipients: 2, maxErrors: 2)
        var client = Client(configuration)
        client.send(lhlo + "MAIL FROM:<>\r\nRCPT TO:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nRCPT TO:<g@h>\r\n"
            + "RCPT TO:<i@j>\r\nDATA\r\nx\r\n.\r\n")
        #expect(client.afterLHLO == ["250 2.1.0", "250 2.1.5", "250 2.1.5", "452 4.5.3", "452 4.5.3", "452 4.5.3",
                                     "354", "250 2.0.0", "250 2.0.0"])
        #expect(!client.closed)
        // Refused recipients do not count toward the limit.
        var refusing = Client(configuration)
        refusing.verdict = { $0.address == "no@b" ? .refuse(LMTPReply(550, "5.1.1", "no")) : .accept }
        refusing.send(lhlo + "MAIL FROM:<>\r\nRCPT TO:<no@b>\r\nRCPT TO:<no@b>\r\nRCPT TO:<a@b>\r\nRCPT TO:<c@d>\r\n")
        #expect(refusing.afterLHLO == ["250 2.1.0", "550 5.1.1", "550 5.1.1", "250 2.1.5", "250 2.1.5"])
    }

    @Test func dataNeedsMailAndAnAcceptedRecipient() {
        #expect(replies("DATA\r\n") == ["503 5.5.1"])
        #expect(replies("MAIL FROM:<>\r\nDATA\r\nNOOP\r\n") == ["250 2.1.0", "503 5.5.1", "250 2.0.0"])
        var client = Client()
        client.verdict = { _ in .refuse(LMTPReply(550, "5.1.1", "no")) }
        client.send(lhlo + "MAIL FROM:<>\r\nRCPT TO:<a@b>\r\nDATA\r\nSubject: x\r\n")
        #expect(client.afterLHLO == ["250 2.1.0", "550 5.1.1", "503 5.5.1", "500 5.5.1"])
        #expect(!client.outputs.contains { if case .beginMessage = $0 { true } else { false } })
        #expect(replies("MAIL FROM:<>\r\nRCPT TO:<a@b>\r\nDATA now\r\n") == ["250 2.1.0", "250 2.1.5", "501 5.5.4"])
    }

    @Test func controlCharactersInCommandsAreRefused() {
        #expect(replies("NOOP\u{0}\r\nNO\u{0}OP\r\nNOOP \u{7F}\r\nNOOP\rNOOP\r\nNOOP\u{1B}[1m\r\nNOOP x\ty\r\n")
            == ["500 5.5.2", "500 5.5.2", "500 5.5.2", "500 5.5.2", "500 5.5.2", "250 2.0.0"])
        #expect(replies("MAIL FROM:<a\u{0}@b>\r\n") == ["500 5.5.2"])
        #expect(replies("\r\n   \r\n") == ["500 5.5.2", "500 5.5.2"])
    }

    @Test func anOverlongLineIsRefusedOnceAndSkipped() {
        let configuration = LMTPConfiguration(hostname: "mx.test", maxCommandLength: 64)
        // 62 characters and CRLF fit exactly; one more does not.
        let fits = "NOOP " + String(repeating: "x", count: 57)
        #expect(replies(fits + "\r\n" + fits + "x\r\nNOOP\r\n", configuration) == ["250 2.0.0", "500 5.5.2", "250 2.0.0"])
        // Megabytes without a line end, in chunks: one reply, nothing kept.
        var client = Client(configuration)
        client.send(lhlo)
        for _ in 0..<1000 {
            client.send(Array(repeating: UInt8(ascii: "A"), count: 1000))
            #expect(client.engine.bufferedByteCount <= 64)
        }
        client.send("\r\nNOOP\r\n")
        #expect(client.afterLHLO == ["500 5.5.2", "250 2.0.0"])
        #expect(client.lines.contains("500 5.5.2 line too long"))
    }

    @Test func tooManyErrorsEndTheSession() {
        var client = Client(LMTPConfiguration(hostname: "mx.test", maxErrors: 3))
        client.send(lhlo + "FOO\r\nNOOP\r\nDATA\r\nRCPT TO:<a@b>\r\nNOOP\r\nNOOP\r\n")
        #expect(client.afterLHLO == ["500 5.5.1", "250 2.0.0", "503 5.5.1", "503 5.5.1", "421 4.7.0"])
        #expect(client.lines.last == "421 4.7.0 mx.test too many errors")
        #expect(client.closed)
        #expect(client.engine.receive(Array("NOOP\r\n".utf8)) == [])
        // The default: ten.
        var patient = Client()
        patient.send(String(repeating: "X\r\n", count: 12))
        #expect(patient.replies.filter { $0 == "500 5.5.1" }.count == 10)
        #expect(patient.replies.last == "421 4.7.0")
    }
}
