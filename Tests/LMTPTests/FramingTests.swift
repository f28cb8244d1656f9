import LMTP
import Testing
import TestSupport

/// Where lines and messages end (RFC 5321 2.3.8, 4.1.1.4): at CRLF, and a
/// message at CRLF "." CRLF, nowhere else, whatever the chunking. The
/// SMTP-smuggling class: a body that ends a message early by another line
/// end must not get its remaining bytes run as commands.
@Suite struct FramingTests {
    static let opening = lhlo + "MAIL FROM:<s@test>\r\nRCPT TO:<a@test>\r\nRCPT TO:<b@test>\r\nDATA\r\n"
    /// What a sender puts after a would-be end of data, hoping for a second, forged message.
    static let forgery = "MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<a@test>\r\nDATA\r\nSubject: forged\r\n\r\nPay.\r\n"

    /// Each near-miss of CRLF "." CRLF, and the content it stands for: bare
    /// LF and bare CR are content; a dot opening a CRLF line is stuffing.
    static let nearMisses: [(ending: String, content: String)] = [
        ("\n.\n", "\n.\n"),
        ("\r\n.\n", "\n\n"),
        ("\n.\r\n", "\n.\n"),
        ("\r.\r", "\r.\r"),
        ("\r.\r\n", "\r.\n"),
        ("\r\n.\r", "\n\r"),
        ("\n.\r", "\n.\r"),
        ("\r\r\n.\n", "\r\n\n"),
        ("\n\r\n.\n", "\n\n\n"),
        ("\r\n.\r\r\n", "\n\r\n"),
    ]

    /// The forgery as it must come out: CRLF as LF, the rest as it came.
    static let forgeryContent = "MAIL FROM:<ceo@bank.example>\nRCPT TO:<a@test>\nDATA\nSubject: forged\n\nPay.\n"

    static func smuggling(_ ending: String) -> [UInt8] {
        Array((opening + "Subject: hello\r\n\r\ntext" + ending + forgery + ".\r\nQUIT\r\n").utf8)
    }

    /// One message, holding the would-be commands as content, two replies
    /// (one per recipient) and the QUIT's: never a second transaction.
    func expectOneMessage(_ client: Client, _ nearMiss: (ending: String, content: String), _ note: String) {
        let content = Array(("Subject: hello\n\ntext" + nearMiss.content + Self.forgeryContent).utf8)
        #expect(client.messages == [content], "\(nearMiss.ending.debugDescription) \(note)")
        #expect(client.afterLHLO == ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "250 2.0.0", "250 2.0.0",
                                     "221 2.0.0"], "\(nearMiss.ending.debugDescription) \(note)")
        #expect(client.closed)
    }

    @Test func noNearMissEndsTheMessage() {
        for nearMiss in Self.nearMisses {
            var client = Client()
            client.send(Self.smuggling(nearMiss.ending))
            expectOneMessage(client, nearMiss, "unsplit")
        }
    }

    @Test func noNearMissEndsTheMessageWhereverTheInputIsSplit() {
        for nearMiss in Self.nearMisses {
            let bytes = Self.smuggling(nearMiss.ending)
            for split in 1..<bytes.count {
                var client = Client()
                client.send(Array(bytes[..<split]))
                client.send(Array(bytes[split...]))
                expectOneMessage(client, nearMiss, "split at \(split)")
            }
            var trickled = Client()
            trickled.send(bytes, chunks: [1])
            expectOneMessage(trickled, nearMiss, "one byte at a time")
        }
    }

    /// A message that never gets its CRLF "." CRLF is never delivered, and
    /// nothing in it is answered.
    @Test func aMessageEndingOnlyInBareLineEndsIsNotDelivered() {
        for ending in ["\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n"] {
            var client = Client()
            client.send(Self.opening + "body" + ending + "QUIT" + ending)
            #expect(client.messages.isEmpty, "\(ending.debugDescription)")
            #expect(client.afterLHLO == ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354"], "\(ending.debugDescription)")
            client.take(client.engine.endOfInput())
            #expect(client.aborted == ["the client went away"])
        }
    }

    @Test func aDotOpensALineOnlyAfterCRLF() {
        var client = Client()
        client.send(Self.opening + "..a\r\nb\n..c\r\n..\n.\r\n.\r\n")
        // "..a" after CRLF: unstuffed; "..c" after a bare LF: content as is;
        // "..\n.\r\n" after CRLF: unstuffed once, the bare LF and the dot after it content.
        #expect(client.messages == [Array(".a\nb\n..c\n.\n.\n".utf8)])
    }

    /// Bodies made of line-end pieces, dots and command-like text, each
    /// sent dot-stuffed as a correct client does (a dot added at the start
    /// and after every CRLF) in its own pipelined transaction, in random
    /// chunks: one message per body, each the body with CRLF as LF, and no
    /// error reply. (FuzzLMTP checks the same against arbitrary bytes.)
    @Test func randomBodiesAreOneMessageEach() {
        let pieces = ["\r", "\n", "\r\n", ".", "..", "a", " ", "MAIL FROM:<ceo@bank.example>", "DATA", "QUIT"]
        var random = SplitMix(state: 5321)
        for _ in 0..<400 {
            let bodies = (0..<(random.below(4) + 1)).map { _ in
                (0..<random.below(12)).map { _ in pieces[random.below(pieces.count)] }.joined()
            }
            var wire = lhlo
            for body in bodies {
                wire += "MAIL FROM:<s@test>\r\nRCPT TO:<a@test>\r\nDATA\r\n"
                var stuffed = body.hasPrefix(".") ? "." + body : body
                stuffed = stuffed.replacingAll("\r\n.", with: "\r\n..")
                if !body.isEmpty && !body.hasSuffix("\r\n") { stuffed += "\r\n" }
                wire += stuffed + ".\r\n"
            }
            wire += "QUIT\r\n"
            let chunks = (0..<6).map { _ in random.below(16) + 1 }
            var client = Client()
            client.send(Array(wire.utf8), chunks: chunks)
            let expected = bodies.map { body in
                Array((body.isEmpty || body.hasSuffix("\r\n") ? body : body + "\r\n").replacingAll("\r\n", with: "\n").utf8)
            }
            #expect(client.messages == expected, "\(bodies.map(\.debugDescription)) in chunks \(chunks)")
            #expect(!client.afterLHLO.contains { $0.hasPrefix("5") || $0.hasPrefix("4") }, "\(bodies.map(\.debugDescription))")
            #expect(client.closed)
        }
    }

    // Command lines.

    @Test func aBareLineFeedInACommandIsRefusedAndItsLineSkipped() {
        var client = Client()
        client.send(lhlo + "NOOP\nMAIL FROM:<ceo@bank.example>\r\nNOOP\r\n")
        #expect(client.afterLHLO == ["500 5.5.2", "250 2.0.0"])
        #expect(client.lines.suffix(2).first == "500 5.5.2 bare LF in command: lines end in CRLF")
        // Before LHLO, and for an LHLO itself: the same.
        var lfOnly = Client()
        lfOnly.send("LHLO client\nMAIL FROM:<s@test>\nRCPT TO:<a@test>\n")
        #expect(lfOnly.replies == ["220", "500 5.5.2"])
    }

    @Test func aBareCRInACommandIsAControlCharacter() {
        var client = Client()
        client.send(lhlo + "NOOP\rMAIL FROM:<ceo@bank.example>\r\nMAIL FROM:<s@test>\r\n")
        #expect(client.afterLHLO == ["500 5.5.2", "250 2.1.0"])
    }

    /// A skipped line (too long, or ended in a bare LF) ends at the next
    /// CRLF even when its CR and LF come in different chunks.
    @Test func aSkippedLineEndsAtCRLFWhereverTheInputIsSplit() {
        let configuration = LMTPConfiguration(hostname: "mx.test", maxCommandLength: 20)
        let text = lhlo + "NOOP\nx\ny\r\r\nNOOP\r\n" + String(repeating: "z", count: 30) + "\n\r\r\nRSET\r\n"
        let bytes = Array(text.utf8)
        for split in 0..<bytes.count {
            var client = Client(configuration)
            client.send(Array(bytes[..<split]))
            client.send(Array(bytes[split...]))
            #expect(client.afterLHLO == ["500 5.5.2", "250 2.0.0", "500 5.5.2", "250 2.0.0"], "split at \(split)")
        }
    }

    /// The commands after a message start right after its CRLF "." CRLF, in
    /// the same chunk or the next.
    @Test func pipelinedCommandsAfterTheFinalDot() {
        let bytes = Array((Self.opening + "x\r\n.\r\nNOOP\nRSET\r\nMAIL FROM:<t@test>\r\n").utf8)
        for split in 1..<bytes.count {
            var client = Client()
            client.send(Array(bytes[..<split]))
            client.send(Array(bytes[split...]))
            #expect(client.messages == [Array("x\n".utf8)], "split at \(split)")
            #expect(client.afterLHLO.suffix(3) == ["250 2.0.0", "500 5.5.2", "250 2.1.0"], "split at \(split)")
        }
    }
}

private extension String {
    /// Every occurrence of `target`, left to right, not overlapping; on the
    /// UTF-8 bytes, so that "\r\n" is never one Character to the search.
    func replacingAll(_ target: String, with replacement: String) -> String {
        let bytes = Array(utf8), needle = Array(target.utf8), with = Array(replacement.utf8)
        var result: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if index + needle.count <= bytes.count, Array(bytes[index..<(index + needle.count)]) == needle {
                result += with
                index += needle.count
            } else {
                result.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: result, as: UTF8.self)
    }
}
