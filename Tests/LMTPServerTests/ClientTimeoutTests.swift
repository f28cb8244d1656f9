import LMTP
@testable import LMTPServer
import NIOCore
import Testing

/// The timeout handler with the session behind it, on the embedded event
/// loop's clock (advanced by hand: no waiting, no timing).
@Suite struct ClientTimeoutTests {
    let timeout = Connection.timeout

    @Test func anIdleClientIsToldAndClosed() throws {
        let connection = try Connection()
        _ = try connection.lines()
        connection.wait(seconds: timeout - 1)
        #expect(try connection.lines().isEmpty)
        #expect(connection.isOpen)
        connection.wait(seconds: 1)
        #expect(try connection.lines() == ["421 4.4.2 mx.test timeout"])
        #expect(!connection.isOpen)
    }

    @Test func eachReplyStartsTheNextCommandsTime() throws {
        let connection = try Connection()
        for _ in 0..<3 {
            connection.wait(seconds: timeout - 1)
            try connection.send("NOOP\r\n")
        }
        #expect(try connection.replies() == ["220", "250 2.0.0", "250 2.0.0", "250 2.0.0"])
        connection.wait(seconds: timeout - 1)
        #expect(connection.isOpen)
        connection.wait(seconds: 1)
        #expect(try connection.replies() == ["421 4.4.2"])
    }

    @Test func tricklingACommandDoesNotExtendItsTime() throws {
        let connection = try Connection()
        _ = try connection.lines()
        for piece in ["N", "O", "O"] {
            connection.wait(seconds: 3)
            try connection.send(piece)
        }
        connection.wait(seconds: 1)
        #expect(try connection.replies() == ["421 4.4.2"])
        #expect(!connection.isOpen)
    }

    @Test func aMessageHasFourCommandTimesWithNoLongSilence() throws {
        let connection = try Connection()
        try connection.send("LHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        _ = try connection.lines()
        // Bytes every little while keep it going past a command's time...
        for _ in 0..<(4 * timeout / 3 - 1) {
            connection.wait(seconds: 3)
            try connection.send("line\r\n")
        }
        #expect(connection.isOpen)
        #expect(try connection.lines().isEmpty)
        // ...but not past the message's.
        connection.wait(seconds: 3)
        try connection.send("line\r\n")
        connection.wait(seconds: 3)
        #expect(try connection.replies() == ["421 4.4.2"])
        #expect(connection.delivery.messages.isEmpty)
        #expect(!connection.isOpen)
    }

    @Test func silenceWithinAMessageIsACommandsTime() throws {
        let connection = try Connection()
        try connection.send("LHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\npart\r\n")
        _ = try connection.lines()
        connection.wait(seconds: timeout)
        #expect(try connection.replies() == ["421 4.4.2"])
        #expect(!connection.isOpen)
    }

    @Test func noClientTimeRunsWhileTheServerWorks() throws {
        let connection = try Connection()
        connection.delivery.answersAtOnce = false
        try connection.send("LHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n")
        connection.wait(seconds: timeout * 10)
        #expect(connection.isOpen)
        connection.delivery.answerHeld()
        try connection.send("DATA\r\nbody\r\n.\r\n")
        connection.wait(seconds: timeout * 10)
        #expect(connection.isOpen)
        connection.delivery.answerHeld()
        #expect(try connection.replies().suffix(3) == ["250 2.1.5", "354", "250 2.0.0"])
        // The answer starts the client's time again.
        connection.wait(seconds: timeout)
        #expect(try connection.replies() == ["421 4.4.2"])
    }

    @Test func aMessageOverTheLimitIsStillTimedWhole() throws {
        let connection = try Connection(maxMessageSize: 10)
        try connection.send("LHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        try connection.send(String(repeating: "x", count: 20) + "\r\n")
        _ = try connection.lines()
        // Silence is no longer timed, the message's own time is.
        connection.wait(seconds: timeout + 1)
        #expect(connection.isOpen)
        connection.wait(seconds: 4 * timeout)
        #expect(try connection.replies() == ["421 4.4.2"])
        #expect(!connection.isOpen)
    }
}
