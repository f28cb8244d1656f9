import Foundation
import LMTP
@testable import LMTPServer
import NIOCore
import Testing

/// The server's handlers (timeouts, session, spool) on an `EmbeddedChannel`,
/// with a stub at the delivery seam: what a client sends and is answered,
/// and what reaches delivery.
@Suite struct SessionPipelineTests {
    let lhlo = "LHLO client.test\r\n"

    @Test func greetingAndLHLO() throws {
        let connection = try Connection()
        #expect(try connection.lines() == ["220 mx.test LMTP ready"])
        try connection.send(lhlo)
        #expect(try connection.lines() == ["250-mx.test", "250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250-8BITMIME",
                                           "250-SMTPUTF8", "250 SIZE 1048576"])
        try connection.send("HELO client.test\r\n")
        #expect(try connection.replies() == ["500 5.5.1"])
    }

    @Test func aTransactionGetsOneReplyPerRecipientAndItsMessageIsSpooled() throws {
        let connection = try Connection()
        connection.delivery.verdict = { $0.address.hasPrefix("nobody") ? .refuse(LMTPReply(550, "5.1.1", "no such user")) : .accept }
        connection.delivery.replies = { envelope in
            envelope.recipients.map { $0.index == 0 ? LMTPReply(250, "2.0.0", "saved") : LMTPReply(452, "4.2.2", "full") }
        }
        try connection.send(lhlo)
        _ = try connection.lines()
        try connection.send("MAIL FROM:<sender@example.org> SIZE=100\r\n")
        try connection.send("RCPT TO:<one@example.org>\r\n")
        try connection.send("RCPT TO:<nobody@example.org>\r\n")
        try connection.send("RCPT TO:<two@example.org>\r\n")
        try connection.send("DATA\r\n")
        #expect(try connection.replies() == ["250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354"])
        try connection.send("Subject: hello\r\n\r\n..dot-stuffed\r\nbody\r\n.\r\n")
        #expect(try connection.replies() == ["250 2.0.0", "452 4.2.2"])

        #expect(connection.delivery.checked.map(\.address) == ["one@example.org", "nobody@example.org", "two@example.org"])
        #expect(connection.delivery.declaredSizes == [100, 100, 100])
        let message = try #require(connection.delivery.messages.first)
        #expect(message.envelope.sender == "sender@example.org")
        #expect(message.envelope.recipients.map(\.address) == ["one@example.org", "two@example.org"])
        // Return-Path always; Delivered-To only for a single recipient.
        #expect(message.content == "Return-Path: <sender@example.org>\nSubject: hello\n\n.dot-stuffed\nbody\n")
    }

    @Test func aSingleRecipientGetsDeliveredTo() throws {
        let connection = try Connection()
        try connection.send(lhlo + "MAIL FROM:<>\r\nRCPT TO:<me@example.org>\r\nDATA\r\nx\r\n.\r\n")
        #expect(try connection.replies().suffix(4) == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"])
        #expect(connection.delivery.messages.first?.content == "Return-Path: <>\nDelivered-To: me@example.org\nx\n")
    }

    @Test func aCommandEndingInABareLineFeedIsRefused() throws {
        let connection = try Connection()
        try connection.send(lhlo)
        _ = try connection.lines()
        try connection.send("MAIL FROM:<a@example.org>\nNOOP\r\n")
        #expect(try connection.lines() == ["500 5.5.2 bare LF in command: lines end in CRLF"])
        try connection.send("NOOP\r\n")
        #expect(try connection.replies() == ["250 2.0.0"])
    }

    @Test func aMessageOverTheLimitIsRefusedPerRecipientAndNotDelivered() throws {
        let connection = try Connection(maxMessageSize: 100)
        try connection.send(lhlo + "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n")
        _ = try connection.lines()
        try connection.send(String(repeating: "0123456789", count: 5) + "\r\n")
        try connection.send(String(repeating: "0123456789", count: 6) + "\r\n")
        #expect(try connection.lines().isEmpty)
        try connection.send(".\r\nNOOP\r\n")
        #expect(try connection.replies() == ["552 5.3.4", "552 5.3.4", "250 2.0.0"])
        #expect(connection.delivery.messages.isEmpty)
        // The next transaction is whole again.
        try connection.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nsmall\r\n.\r\n")
        #expect(try connection.replies() == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"])
        #expect(connection.delivery.messages.map(\.content) == ["Return-Path: <a@example.org>\nDelivered-To: b@example.org\nsmall\n"])
    }

    @Test func pipelinedCommandsInOneWriteAreAnsweredInOrder() throws {
        let connection = try Connection()
        connection.delivery.answersAtOnce = false
        try connection.send(lhlo + "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
            + "DATA\r\nbody\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n")
        // The engine waits for the first recipient's check; the rest is kept.
        #expect(try connection.replies().suffix(1) == ["250 2.1.0"])
        #expect(connection.delivery.held.count == 1)
        connection.delivery.answerHeld()
        #expect(try connection.replies() == ["250 2.1.5"])
        connection.delivery.answerHeld()
        #expect(try connection.replies() == ["250 2.1.5", "354"])
        #expect(connection.isOpen)
        connection.delivery.answerHeld()
        #expect(try connection.replies() == ["250 2.0.0", "250 2.0.0", "250 2.0.0", "250 2.0.0", "221 2.0.0"])
        #expect(!connection.isOpen)
        #expect(connection.delivery.messages.map(\.content) == ["Return-Path: <a@example.org>\nbody\n"])
    }

    @Test func rsetEndsTheTransaction() throws {
        let connection = try Connection()
        try connection.send(lhlo + "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRSET\r\nDATA\r\nRCPT TO:<b@example.org>\r\n")
        #expect(try connection.replies().suffix(5) == ["250 2.1.0", "250 2.1.5", "250 2.0.0", "503 5.5.1", "503 5.5.1"])
        try connection.send("MAIL FROM:<c@example.org>\r\n")
        #expect(try connection.replies() == ["250 2.1.0"])
    }

    @Test func quitIsAnsweredAndCloses() throws {
        let connection = try Connection()
        try connection.send("QUIT\r\n")
        #expect(try connection.lines() == ["220 mx.test LMTP ready", "221 2.0.0 mx.test closing connection"])
        #expect(!connection.isOpen)
    }

    @Test func commandsSentBeforeTheClientShutsItsSideAreAnswered() throws {
        let connection = try Connection()
        connection.delivery.answersAtOnce = false
        try connection.send(lhlo + "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nNOOP\r\n")
        connection.shutInput()
        #expect(connection.isOpen, "the recipient's check is still out")
        connection.delivery.answerHeld()
        #expect(try connection.replies().suffix(3) == ["250 2.1.0", "250 2.1.5", "250 2.0.0"])
        #expect(!connection.isOpen)
    }

    @Test func aMessageThatCannotBeSpooledIsRefusedTemporarily() throws {
        let connection = try Connection(spoolDirectory: "/nonexistent-\(UUID().uuidString)")
        try connection.send(lhlo + "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
            + "DATA\r\nbody\r\n.\r\n")
        #expect(try connection.lines().suffix(2) == ["451 4.3.0 <b@example.org> cannot spool the message",
                                                     "451 4.3.0 <c@example.org> cannot spool the message"])
        #expect(connection.delivery.messages.isEmpty)
    }

    @Test func aShutdownWaitsForTheTransaction() throws {
        let connection = try Connection()
        try connection.send(lhlo + "MAIL FROM:<a@example.org>\r\n")
        _ = try connection.lines()
        connection.channel.pipeline.fireUserInboundEventTriggered(ShutdownRequest())
        #expect(try connection.lines().isEmpty)
        #expect(connection.isOpen)
        try connection.send("RSET\r\n")
        #expect(try connection.replies() == ["250 2.0.0", "421 4.3.2"])
        #expect(!connection.isOpen)
    }
}
