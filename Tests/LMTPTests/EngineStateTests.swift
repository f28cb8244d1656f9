@testable import LMTP
import Testing

/// The engine's state enum, transition by transition: each command in
/// each state, the server's resumes, and the session's ends. The engine is
/// driven by hand (no automatic resume), so that every pause shows.
@Suite struct EngineStateTests {
    /// A state without its payload, plus what the tests check of it.
    enum Phase: Equatable {
        case connected, greeted, ready, closed
        case transaction(recipients: Int)
        case checkingRecipient(String)
        case receiving, discarding
        case delivering(recipients: Int)
    }

    struct Session {
        var engine = LMTPEngine(configuration: LMTPConfiguration(hostname: "mx.test", maxMessageSize: 64))
        var outputs: [LMTPOutput] = []

        var phase: Phase {
            switch engine.state {
            case .connected: .connected
            case .greeted: .greeted
            case .ready: .ready
            case .transaction(let envelope): .transaction(recipients: envelope.recipients.count)
            case .checkingRecipient(_, let recipient): .checkingRecipient(recipient.address)
            case .receiving: .receiving
            case .discarding: .discarding
            case .delivering(let envelope): .delivering(recipients: envelope.recipients.count)
            case .closed: .closed
            }
        }

        /// Sends `text` and returns the replies it got, as "CODE ENHANCED" (or "CODE").
        @discardableResult
        mutating func send(_ text: String) -> [String] { replies(engine.receive(Array(text.utf8))) }

        @discardableResult
        mutating func replies(_ batch: [LMTPOutput]) -> [String] {
            outputs = batch
            let text = batch.map { output -> String in
                guard case .send(let bytes) = output else { return "" }
                return String(decoding: bytes, as: UTF8.self)
            }.joined()
            return Client.replies(in: text.split(separator: "\r\n").map(String.init))
        }

        var closedByOutput: Bool { outputs.contains(.close) }

        /// A session in `.ready`.
        static func ready() -> Session {
            var session = Session()
            _ = session.engine.start()
            session.send("LHLO client.test\r\n")
            return session
        }

        /// A session in `.transaction` with `recipients` accepted.
        static func transaction(recipients: Int = 0) -> Session {
            var session = ready()
            session.send("MAIL FROM:<s@example.org>\r\n")
            for index in 0..<recipients {
                session.send("RCPT TO:<r\(index)@example.org>\r\n")
                session.replies(session.engine.resume(recipient: .accept))
            }
            return session
        }
    }

    @Test func connectedIsLeftByTheGreetingOrTheFirstBytes() {
        var started = Session()
        #expect(started.phase == .connected)
        #expect(started.replies(started.engine.start()) == ["220"])
        #expect(started.phase == .greeted)
        #expect(started.engine.start().isEmpty, "one greeting only")

        var spoken = Session()
        #expect(spoken.send("NOOP\r\n") == ["220", "250 2.0.0"])
        #expect(spoken.phase == .greeted)
    }

    @Test func greetedTakesOnlyLHLONOOPRSETAndQUIT() {
        for command in ["MAIL FROM:<s@example.org>", "RCPT TO:<r@example.org>", "DATA", "VRFY x", "HELP"] {
            var session = Session()
            _ = session.engine.start()
            #expect(session.send(command + "\r\n") == ["503 5.5.1"], "\(command)")
            #expect(session.phase == .greeted, "\(command)")
        }
        var session = Session()
        _ = session.engine.start()
        #expect(session.send("NOOP\r\nRSET\r\n") == ["250 2.0.0", "250 2.0.0"])
        #expect(session.phase == .greeted)
        #expect(session.send("LHLO client.test\r\n").last == "250")
        #expect(session.phase == .ready)
    }

    @Test func readyTakesMAILAndRefusesRCPTAndDATA() {
        var session = Session.ready()
        #expect(session.send("RCPT TO:<r@example.org>\r\n") == ["503 5.5.1"])
        #expect(session.phase == .ready)
        #expect(session.send("DATA\r\n") == ["503 5.5.1"])
        #expect(session.phase == .ready)
        #expect(session.send("RSET\r\n") == ["250 2.0.0"])
        #expect(session.phase == .ready)
        #expect(session.send("MAIL FROM:<s@example.org>\r\n") == ["250 2.1.0"])
        #expect(session.phase == .transaction(recipients: 0))
    }

    @Test func aMAILThatIsRefusedLeavesTheSessionReady() {
        var session = Session.ready()
        #expect(session.send("MAIL FROM:<s@example.org> SIZE=65\r\n") == ["552 5.3.4"])
        #expect(session.phase == .ready)
        #expect(session.send("MAIL FROM:<not an address>\r\n") == ["501 5.1.7"])
        #expect(session.phase == .ready)
    }

    @Test func aTransactionRefusesASecondMAILAndDATAWithoutRecipients() {
        var session = Session.transaction()
        #expect(session.send("MAIL FROM:<other@example.org>\r\n") == ["503 5.5.1"])
        #expect(session.phase == .transaction(recipients: 0))
        #expect(session.send("DATA\r\n") == ["503 5.5.1"])
        #expect(session.phase == .transaction(recipients: 0))
    }

    @Test func rcptPausesUntilTheVerdict() {
        var session = Session.transaction()
        #expect(session.send("RCPT TO:<r@example.org>\r\n").isEmpty)
        #expect(session.outputs == [.checkRecipient(LMTPRecipient(address: "r@example.org", index: 0))])
        #expect(session.phase == .checkingRecipient("r@example.org"))
        #expect(session.engine.isPaused)
        // Input meanwhile is kept, not read.
        #expect(session.send("RCPT TO:<q@example.org>\r\n").isEmpty)
        #expect(session.phase == .checkingRecipient("r@example.org"))
        // The wrong resume changes nothing.
        #expect(session.engine.resume(delivered: []).isEmpty)
        #expect(session.phase == .checkingRecipient("r@example.org"))

        #expect(session.replies(session.engine.resume(recipient: .accept)) == ["250 2.1.5"])
        // The kept RCPT is read at once: the next pause.
        #expect(session.phase == .checkingRecipient("q@example.org"))
        #expect(session.replies(session.engine.resume(recipient: .refuse(LMTPReply(550, "5.1.1", "no")))) == ["550 5.1.1"])
        #expect(session.phase == .transaction(recipients: 1))
        #expect(session.engine.resume(recipient: .accept).isEmpty, "no recipient is waiting")
        #expect(session.phase == .transaction(recipients: 1))
    }

    @Test func dataReceivesThenDeliversThenTheSessionIsReady() {
        var session = Session.transaction(recipients: 2)
        #expect(session.send("DATA\r\n") == ["354"])
        #expect(session.phase == .receiving)
        #expect(session.send("Subject: x\r\n\r\nbody\r\n").isEmpty)
        #expect(session.phase == .receiving)
        // Commands in a message are content.
        session.send("RSET\r\nQUIT\r\n")
        #expect(session.phase == .receiving)
        #expect(session.send(".\r\nNOOP\r\n").isEmpty)
        #expect(session.phase == .delivering(recipients: 2))
        #expect(session.engine.isPaused)
        #expect(session.engine.resume(recipient: .accept).isEmpty, "the wrong resume changes nothing")
        #expect(session.phase == .delivering(recipients: 2))
        let replies = [LMTPReply(250, "2.0.0", "one"), LMTPReply(452, "4.2.2", "two")]
        #expect(session.replies(session.engine.resume(delivered: replies)) == ["250 2.0.0", "452 4.2.2", "250 2.0.0"])
        #expect(session.phase == .ready)
    }

    @Test func aMessageOverTheLimitIsDiscardedToItsDot() {
        var session = Session.transaction(recipients: 2)
        session.send("DATA\r\n")
        session.send(String(repeating: "x", count: 70) + "\r\n")
        #expect(session.outputs.contains(.abortMessage("message over 64 bytes")))
        #expect(session.phase == .discarding)
        #expect(session.send("more\r\nMAIL FROM:<a@b>\r\n").isEmpty)
        #expect(session.phase == .discarding)
        #expect(session.send(".\r\n") == ["552 5.3.4", "552 5.3.4"])
        #expect(session.phase == .ready)
    }

    @Test func rsetAndLHLOEndATransaction() {
        var reset = Session.transaction(recipients: 1)
        #expect(reset.send("RSET\r\n") == ["250 2.0.0"])
        #expect(reset.phase == .ready)
        var again = Session.transaction(recipients: 1)
        again.send("LHLO client.test\r\n")
        #expect(again.phase == .ready)
    }

    @Test func quitClosesFromEveryCommandState() {
        var greeted = Session()
        _ = greeted.engine.start()
        for var session in [greeted, Session.ready(), Session.transaction(recipients: 1)] {
            #expect(session.send("QUIT\r\n") == ["221 2.0.0"])
            #expect(session.closedByOutput)
            #expect(session.phase == .closed)
            #expect(session.send("NOOP\r\n").isEmpty, "nothing is read after close")
        }
    }

    @Test func aTimeoutClosesFromEveryState() {
        var receiving = Session.transaction(recipients: 1)
        receiving.send("DATA\r\n")
        var checking = Session.transaction()
        checking.send("RCPT TO:<r@example.org>\r\n")
        for var session in [Session(), Session.ready(), Session.transaction(), checking, receiving] {
            let wasReceiving = session.phase == .receiving
            #expect(session.replies(session.engine.timedOut()) == ["421 4.4.2"])
            #expect(session.outputs.contains(.abortMessage("timeout")) == wasReceiving)
            #expect(session.phase == .closed)
            #expect(session.engine.timedOut().isEmpty)
        }
    }

    @Test func theClientGoingAwayEndsTheSessionOnceItsInputIsAnswered() {
        var idle = Session.ready()
        #expect(idle.engine.endOfInput().isEmpty)
        #expect(idle.phase == .closed)
        #expect(idle.engine.clientInput == .ended)

        var receiving = Session.transaction(recipients: 1)
        receiving.send("DATA\r\nhalf a message")
        receiving.replies(receiving.engine.endOfInput())
        #expect(receiving.outputs == [.abortMessage("the client went away")])
        #expect(receiving.phase == .closed)

        // Paused: what was sent before is still answered.
        var checking = Session.transaction()
        checking.send("RCPT TO:<r@example.org>\r\nQUIT\r\n")
        #expect(checking.engine.endOfInput().isEmpty)
        #expect(checking.phase == .checkingRecipient("r@example.org"))
        #expect(!checking.engine.wantsInput)
        #expect(checking.replies(checking.engine.resume(recipient: .accept)) == ["250 2.1.5", "221 2.0.0"])
        #expect(checking.phase == .closed)
    }

    @Test func aShutdownWaitsForTheTransaction() {
        var idle = Session.ready()
        #expect(idle.replies(idle.engine.shuttingDown()) == ["421 4.3.2"])
        #expect(idle.phase == .closed)

        var busy = Session.transaction(recipients: 1)
        #expect(busy.engine.shuttingDown().isEmpty)
        #expect(busy.phase == .transaction(recipients: 1))
        #expect(busy.send("RSET\r\n") == ["250 2.0.0", "421 4.3.2"])
        #expect(busy.phase == .closed)
    }

    @Test func tooMuchPipelinedInputIsCutOffAndAnsweredThen421() {
        var session = Session()
        session.engine = LMTPEngine(configuration: LMTPConfiguration(hostname: "mx.test", maxCommandLength: 64,
                                                                       maxPipelinedInput: 64))
        _ = session.engine.start()
        session.send("LHLO c\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\n")
        #expect(session.engine.isPaused)
        session.send(String(repeating: "NOOP\r\n", count: 40))
        #expect(session.engine.clientInput == .cutOff)
        #expect(!session.engine.wantsInput)
        let replies = session.replies(session.engine.resume(recipient: .accept))
        #expect(replies.first == "250 2.1.5")
        #expect(replies.last == "421 4.7.0")
        #expect(session.phase == .closed)
    }
}
