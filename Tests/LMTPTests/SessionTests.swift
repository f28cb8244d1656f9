import LMTP
import Testing

/// Whole sessions, as a client like Postfix's lmtp sends them.
@Suite struct SessionTests {
    @Test func greetingAndLHLOAdvertiseWhatIsImplemented() {
        var client = Client(LMTPConfiguration(hostname: "mx.test", maxMessageSize: 1000))
        client.send(lhlo)
        #expect(client.sent == """
            220 mx.test LMTP ready\r
            250-mx.test\r
            250-PIPELINING\r
            250-ENHANCEDSTATUSCODES\r
            250-8BITMIME\r
            250-SMTPUTF8\r
            250 SIZE 1000\r

            """)
    }

    @Test func mixedOutcomesAreRepliedPerAcceptedRecipientInOrder() {
        var client = Client()
        client.verdict = { recipient in
            recipient.address == "nobody@test" ? .refuse(LMTPReply(550, "5.1.1", "no such user")) : .accept
        }
        client.delivery = { envelope in
            #expect(envelope.recipients.map(\.address) == ["a@test", "b@test", "a@test"])
            #expect(envelope.recipients.map(\.index) == [0, 1, 2])
            return [LMTPReply(250, "2.0.0", "first a"), LMTPReply(452, "4.2.2", "b over quota"),
                    LMTPReply(250, "2.0.0", "second a")]
        }
        client.send(lhlo)
        client.send("MAIL FROM:<sender@test>\r\n")
        client.send("RCPT TO:<a@test>\r\n")
        client.send("RCPT TO:<nobody@test>\r\n")
        client.send("RCPT TO:<b@test>\r\n")
        client.send("RCPT TO:<a@test>\r\n")
        client.send("DATA\r\n")
        client.send("Subject: hi\r\n\r\nbody\r\n.\r\n")
        client.send("QUIT\r\n")
        #expect(client.afterLHLO == ["250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "250 2.1.5", "354",
                                     "250 2.0.0", "452 4.2.2", "250 2.0.0", "221 2.0.0"])
        #expect(client.lines.suffix(4) == ["250 2.0.0 first a", "452 4.2.2 b over quota", "250 2.0.0 second a",
                                          "221 2.0.0 mx.test closing connection"])
        #expect(client.messages == [Array("Subject: hi\n\nbody\n".utf8)])
        #expect(client.closed)
    }

    @Test func checkRecipientCarriesTheIndexAmongAcceptedOnes() {
        var client = Client()
        var seen: [LMTPRecipient] = []
        client.verdict = { recipient in
            seen.append(recipient)
            return recipient.address.hasPrefix("no") ? .refuse(LMTPReply(550, "5.1.1", "no")) : .accept
        }
        client.send(lhlo + "MAIL FROM:<>\r\nRCPT TO:<no1@x>\r\nRCPT TO:<a@x>\r\nRCPT TO:<no2@x>\r\nRCPT TO:<b@x>\r\n")
        #expect(seen.map(\.index) == [0, 0, 1, 1])
    }

    @Test func rsetEndsTheTransactionAndTheNextStartsAfresh() {
        var client = Client()
        var envelopes: [LMTPEnvelope] = []
        client.delivery = { envelope in
            envelopes.append(envelope)
            return envelope.recipients.map { _ in LMTPReply(250, "2.0.0", "ok") }
        }
        client.send(lhlo + "MAIL FROM:<one@test> BODY=8BITMIME SIZE=10\r\nRCPT TO:<a@test>\r\nRSET\r\n")
        client.send("RCPT TO:<b@test>\r\n")
        client.send("MAIL FROM:<two@test>\r\nRCPT TO:<c@test>\r\nDATA\r\nx\r\n.\r\n")
        client.send("MAIL FROM:<three@test>\r\nRCPT TO:<d@test>\r\nDATA\r\ny\r\n.\r\n")
        #expect(client.afterLHLO == ["250 2.1.0", "250 2.1.5", "250 2.0.0", "503 5.5.1",
                                     "250 2.1.0", "250 2.1.5", "354", "250 2.0.0",
                                     "250 2.1.0", "250 2.1.5", "354", "250 2.0.0"])
        #expect(envelopes == [
            LMTPEnvelope(sender: "two@test", recipients: [LMTPRecipient(address: "c@test", index: 0)]),
            LMTPEnvelope(sender: "three@test", recipients: [LMTPRecipient(address: "d@test", index: 0)]),
        ])
    }

    @Test func pipelinedCommandsInOneReceiveAreAnsweredInOrder() {
        var client = Client()
        client.verdict = { $0.address == "x@test" ? .refuse(LMTPReply(450, "4.2.1", "later")) : .accept }
        client.send(lhlo)
        let sentBefore = client.outputs.count
        client.send("MAIL FROM:<s@test>\r\nRCPT TO:<a@test>\r\nRCPT TO:<x@test>\r\nRCPT TO:<b@test>\r\nDATA\r\n"
            + "line\r\n.\r\nMAIL FROM:<t@test>\r\nRCPT TO:<c@test>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n")
        #expect(client.afterLHLO == ["250 2.1.0", "250 2.1.5", "450 4.2.1", "250 2.1.5", "354", "250 2.0.0",
                                     "250 2.0.0", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"])
        #expect(client.messages == [Array("line\n".utf8), Array("second\n".utf8)])
        // The order of what the server is asked to do: replies before each pause.
        let kinds = client.outputs.dropFirst(sentBefore).map { output -> String in
            switch output {
            case .send: "send"
            case .checkRecipient(let recipient): "check \(recipient.address)"
            case .beginMessage: "begin"
            case .messageBytes: "bytes"
            case .endMessage: "end"
            case .abortMessage: "abort"
            case .close: "close"
            }
        }
        #expect(kinds == ["send", "check a@test", "send", "check x@test", "send", "check b@test", "send", "begin",
                          "bytes", "end", "send", "check c@test", "send", "begin", "bytes", "end", "send", "close"])
    }

    @Test func pausedEngineKeepsPipelinedInputUntilResumed() {
        var engine = LMTPEngine(configuration: LMTPConfiguration(hostname: "h"))
        _ = engine.start()
        _ = engine.receive(Array((lhlo + "MAIL FROM:<s@t>\r\n").utf8))
        let outputs = engine.receive(Array("RCPT TO:<a@t>\r\nRCPT TO:<b@t>\r\n".utf8))
        #expect(outputs == [.checkRecipient(LMTPRecipient(address: "a@t", index: 0))])
        #expect(engine.isPaused)
        #expect(engine.receive(Array("DATA\r\n".utf8)) == [])
        #expect(engine.resume(recipient: .accept) == [
            .send(Array("250 2.1.5 recipient OK\r\n".utf8)),
            .checkRecipient(LMTPRecipient(address: "b@t", index: 1)),
        ])
        let afterSecond = engine.resume(recipient: .refuse(LMTPReply(550, "5.1.1", "unknown")))
        let envelope = LMTPEnvelope(sender: "s@t", recipients: [LMTPRecipient(address: "a@t", index: 0)])
        #expect(afterSecond == [
            .send(Array("550 5.1.1 unknown\r\n354 send the message, end with <CRLF>.<CRLF>\r\n".utf8)),
            .beginMessage(envelope),
        ])
        #expect(!engine.isPaused)
        // A resume nobody asked for does nothing.
        #expect(engine.resume(recipient: .accept) == [])
        #expect(engine.resume(delivered: []) == [])
    }

    @Test func commandsAreCaseInsensitive() {
        var client = Client()
        client.send("lhlo client\r\nmail from: <s@test>\r\nRcPt To:<a@test>\r\ndata\r\nhello\r\n.\r\nquit\r\n")
        #expect(client.afterLHLO == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"])
        #expect(client.messages == [Array("hello\n".utf8)])
    }

    @Test func oneReplyPerRecipientWhateverTheServerGives() {
        var client = Client()
        client.delivery = { _ in [LMTPReply(250, nil, "no enhanced code"), LMTPReply(299, "5.0.0", "wrong class")] }
        client.send(lhlo + "MAIL FROM:<s@t>\r\nRCPT TO:<a@t>\r\nRCPT TO:<b@t>\r\nRCPT TO:<c@t>\r\nDATA\r\nx\r\n.\r\n")
        #expect(client.lines.suffix(3) == ["250 2.0.0 no enhanced code", "299 2.0.0 wrong class",
                                          "451 4.3.0 internal error: no delivery status"])
        var extra = Client()
        extra.delivery = { _ in Array(repeating: LMTPReply(250, "2.0.0", "ok"), count: 5) }
        extra.send(lhlo + "MAIL FROM:<s@t>\r\nRCPT TO:<a@t>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n")
        #expect(extra.afterLHLO == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "250 2.0.0"])
    }

    @Test func aRefusalMustRefuse() {
        var client = Client()
        client.verdict = { _ in .refuse(LMTPReply(250, "2.1.5", "a refusal that says yes")) }
        client.send(lhlo + "MAIL FROM:<s@t>\r\nRCPT TO:<a@t>\r\nDATA\r\n")
        #expect(client.afterLHLO == ["250 2.1.0", "451 4.3.0", "503 5.5.1"])
        var plain = Client()
        plain.verdict = { _ in .refuse(LMTPReply(550, nil, "no")) }
        plain.send(lhlo + "MAIL FROM:<s@t>\r\nRCPT TO:<a@t>\r\n")
        #expect(plain.lines.last == "550 5.0.0 no")
    }

    @Test func nothingIsReadAfterClose() {
        var client = Client()
        client.send(lhlo + "QUIT\r\nNOOP\r\n")
        #expect(client.closed)
        #expect(client.afterLHLO == ["221 2.0.0"])
        #expect(client.engine.receive(Array("NOOP\r\n".utf8)) == [])
        #expect(client.engine.endOfInput() == [])
        #expect(client.engine.timedOut() == [])
        #expect(client.engine.shuttingDown() == [])
        #expect(!client.engine.wantsInput)
    }

    @Test func inputBeforeStartGetsTheGreetingFirst() {
        var engine = LMTPEngine(configuration: LMTPConfiguration(hostname: "h"))
        #expect(engine.wantsInput && !engine.isPaused)
        #expect(engine.receive(Array("NOOP\r\n".utf8)) == [.send(Array("220 h LMTP ready\r\n250 2.0.0 OK\r\n".utf8))])
        #expect(engine.start() == [])
    }

    @Test func aTimeoutWhileTheServerDeliversLeavesTheMessageToIt() {
        var engine = LMTPEngine(configuration: LMTPConfiguration(hostname: "h"))
        _ = engine.receive(Array((lhlo + "MAIL FROM:<>\r\nRCPT TO:<a@b>\r\n").utf8))
        _ = engine.resume(recipient: .accept)
        let outputs = engine.receive(Array("DATA\r\nx\r\n.\r\n".utf8))
        #expect(outputs.last == .endMessage(LMTPEnvelope(sender: "", recipients: [LMTPRecipient(address: "a@b", index: 0)])))
        #expect(engine.timedOut() == [.send(Array("421 4.4.2 h timeout\r\n".utf8)), .close])
        #expect(engine.resume(delivered: [LMTPReply(250, "2.0.0", "ok")]) == [])
    }
}
