import LMTP
import Testing
import TestSupport

/// The DATA phase: content as delivered, the end whatever the chunking,
/// the size limit, and the ways a message can fail to arrive.
@Suite struct MessageTests {
    static let opening = lhlo + "MAIL FROM:<s@test>\r\nRCPT TO:<a@test>\r\nRCPT TO:<b@test>\r\nDATA\r\n"

    /// The message content, the replies after LHLO and the messages aborted,
    /// for a session fed in the given chunk sizes.
    func session(_ text: String, chunks: [Int] = [],
                 _ configuration: LMTPConfiguration = LMTPConfiguration(hostname: "mx.test")) -> Client {
        var client = Client(configuration)
        client.send(Array(text.utf8), chunks: chunks)
        return client
    }

    @Test func dotStuffingIsUndoneAndLinesEndInLF() {
        let client = session(Self.opening
            + "Subject: dots\r\n\r\n..leading dot\r\n...two\r\n.\tx\r\n. \r\nmid.dle.\r\nbare\rCR\r\n"
            + "\r\nCR CR LF\r\r\n.\rx\r\nbare LF\nlast\r\n.\r\nNOOP\r\n")
        #expect(client.messages == [Array(
            "Subject: dots\n\n.leading dot\n..two\n\tx\n \nmid.dle.\nbare\rCR\n\nCR CR LF\r\n\rx\nbare LF\nlast\n".utf8)])
        #expect(client.afterLHLO == ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "250 2.0.0", "250 2.0.0",
                                     "250 2.0.0"])
    }

    @Test func theEndOfTheMessageIsCRLFDotCRLFOnly() {
        let client = session(Self.opening + "body\r\n.\r\nNOOP\r\n")
        #expect(client.messages == [Array("body\n".utf8)])
        #expect(client.afterLHLO.suffix(3) == ["250 2.0.0", "250 2.0.0", "250 2.0.0"])
        // An empty message: the final dot at once.
        #expect(session(Self.opening + ".\r\n").messages == [[]])
        // Not ends: a dot line with more on it, a dot after a bare CR or a
        // bare LF, a dot line ending in a bare LF (FramingTests has the rest).
        let notEnded = session(Self.opening + "a\r.\r\n.x\r\n.\r\r\nb\n.\r\n.\nc\r\n")
        #expect(notEnded.messages.isEmpty)
        #expect(notEnded.content == Array("a\r.\nx\n\r\nb\n.\n\nc\n".utf8))
    }

    /// Two messages with every awkward line start and end, pipelined
    /// commands after each.
    static let sample = Self.opening
        + "From: someone\r\n\r\n..\r\n.x\r\nline\rwith CR\r\n\r\n.\r.\r\n\n.\n\r\n.\r\n"
        + "MAIL FROM:<t@test>\r\nRCPT TO:<c@test>\r\nDATA\r\n\r\n.\r\nQUIT\r\n"

    /// What the sample gives unsplit, which every split must give too.
    var reference: Client { session(Self.sample) }

    @Test func theReferenceIsRight() {
        let client = reference
        #expect(client.messages == [Array("From: someone\n\n.\nx\nline\rwith CR\n\n\r.\n\n.\n\n".utf8), Array("\n".utf8)])
        #expect(client.closed)
        #expect(client.afterLHLO == ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "250 2.0.0", "250 2.0.0",
                                     "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"])
    }

    @Test func everySplitIntoTwoGivesTheSame() {
        let expected = self.reference
        let bytes = Array(Self.sample.utf8)
        for split in 1..<bytes.count {
            var client = Client()
            client.send(Array(bytes[..<split]))
            client.send(Array(bytes[split...]))
            #expect(client.messages == expected.messages && client.sent == expected.sent, "split at \(split)")
        }
    }

    @Test func everySplitIntoThreeGivesTheSame() {
        let expected = self.reference
        let bytes = Array(Self.sample.utf8)
        for first in stride(from: 1, to: bytes.count, by: 1) {
            for second in stride(from: first + 1, to: min(first + 8, bytes.count), by: 1) {
                var client = Client()
                client.send(Array(bytes[..<first]))
                client.send(Array(bytes[first..<second]))
                client.send(Array(bytes[second...]))
                #expect(client.messages == expected.messages && client.sent == expected.sent,
                        "split at \(first), \(second)")
            }
        }
    }

    @Test func oneByteAtATimeGivesTheSame() {
        let client = session(Self.sample, chunks: [1])
        #expect(client.messages == reference.messages)
        #expect(client.sent == reference.sent)
    }

    @Test func randomChunkingGivesTheSame() {
        let expected = self.reference
        var random = SplitMix(state: 2033)
        for _ in 0..<500 {
            let chunks = (0..<8).map { _ in random.below(12) + 1 }
            let client = session(Self.sample, chunks: chunks)
            #expect(client.messages == expected.messages && client.sent == expected.sent, "\(chunks)")
        }
    }

    @Test func aMessageComesInFewPiecesNotOnePerLine() {
        let body = String(repeating: "a line of the message\r\n", count: 1000)
        let client = session(Self.opening + body + ".\r\n")
        let pieces = client.outputs.filter { if case .messageBytes = $0 { true } else { false } }
        #expect(pieces.count == 1)
        #expect(client.messages == [Array(String(repeating: "a line of the message\n", count: 1000).utf8)])
    }

    @Test func aMessageOverTheLimitIsAbortedAndRefusedPerRecipient() {
        let configuration = LMTPConfiguration(hostname: "mx.test", maxMessageSize: 100)
        // 100 bytes as delivered (CRLF counting one, a stuffed dot none) fit; 101 do not.
        let fits = String(repeating: "123456789\r\n", count: 9) + "..12345678\r\n"
        let exactly = session(Self.opening + fits + ".\r\n", configuration)
        #expect(exactly.messages.map(\.count) == [100])
        #expect(exactly.aborted.isEmpty)

        for chunks in [[], [1], [7], [64, 3]] {
            let client = session(Self.opening + fits + "x\r\n" + String(repeating: "more\r\n", count: 500)
                + ".\r\nNOOP\r\n", chunks: chunks, configuration)
            #expect(client.aborted.count == 1, "\(chunks)")
            #expect(client.messages.isEmpty)
            #expect(client.content.count <= 100)
            #expect(client.afterLHLO == ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "552 5.3.4", "552 5.3.4",
                                         "250 2.0.0"], "\(chunks)")
            #expect(client.lines.suffix(3).first == "552 5.3.4 message too big")
            #expect(!client.outputs.contains { if case .endMessage = $0 { true } else { false } })
        }
        // The transaction is over: a new one starts with MAIL.
        let after = session(Self.opening + String(repeating: "x", count: 200) + "\r\n.\r\nRCPT TO:<a@b>\r\n", configuration)
        #expect(after.afterLHLO.suffix(3) == ["552 5.3.4", "552 5.3.4", "503 5.5.1"])
    }

    @Test func theClientGoingAwayAbortsAMessage() {
        var client = session(Self.opening + "partial\r\n")
        client.take(client.engine.endOfInput())
        #expect(client.aborted.count == 1)
        #expect(client.messages.isEmpty)
        #expect(!client.closed)
        #expect(client.engine.receive(Array(".\r\n".utf8)) == [])

        // Between commands: nothing to say.
        var idle = session(lhlo + "NOOP\r\nNOO")
        #expect(idle.engine.endOfInput() == [])
        // Paused: what was sent before is still answered; a message it held is aborted then.
        var paused = Client()
        paused.send(lhlo + "MAIL FROM:<>\r\n")
        #expect(paused.engine.receive(Array("RCPT TO:<a@b>\r\nDATA\r\nhalf a message".utf8)).count == 1)
        #expect(paused.engine.endOfInput() == [])
        let rest = paused.engine.resume(recipient: .accept)
        #expect(rest.contains(.abortMessage("the client went away")))
        #expect(rest.first == .send(Array("250 2.1.5 recipient OK\r\n354 send the message, end with <CRLF>.<CRLF>\r\n".utf8)))
    }

    @Test func aTimeoutInTheMiddleOfAMessageAbortsItAndCloses() {
        var client = session(Self.opening + "partial\r\n")
        let outputs = client.engine.timedOut()
        #expect(outputs == [.abortMessage("timeout"), .send(Array("421 4.4.2 mx.test timeout\r\n".utf8)), .close])
        var idle = session(lhlo)
        #expect(idle.engine.timedOut() == [.send(Array("421 4.4.2 mx.test timeout\r\n".utf8)), .close])
    }

    @Test func shuttingDownClosesAtOnceBetweenTransactions() {
        var idle = session(lhlo + "NOOP\r\n")
        #expect(idle.engine.shuttingDown() == [.send(Array("421 4.3.2 mx.test shutting down\r\n".utf8)), .close])
        var fresh = Client(start: false)
        #expect(fresh.engine.shuttingDown() == [.send(Array("421 4.3.2 mx.test shutting down\r\n".utf8)), .close])
        #expect(fresh.engine.receive([1, 2, 3]) == [])
    }

    @Test func shuttingDownWaitsForTheTransactionsReplies() {
        var client = session(Self.opening + "part of it\r\n")
        client.take(client.engine.shuttingDown())
        #expect(!client.closed)
        client.send("the rest\r\n.\r\nMAIL FROM:<x@y>\r\n")
        #expect(client.afterLHLO == ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "250 2.0.0", "250 2.0.0", "421 4.3.2"])
        #expect(client.messages.count == 1)
        #expect(client.closed)

        // Before DATA: the transaction may still end with RSET.
        var early = Client()
        early.send(lhlo + "MAIL FROM:<>\r\n")
        early.take(early.engine.shuttingDown())
        early.send("RCPT TO:<a@b>\r\nRSET\r\nNOOP\r\n")
        #expect(early.afterLHLO == ["250 2.1.0", "250 2.1.5", "250 2.0.0", "421 4.3.2"])
        #expect(early.closed)
    }
}
