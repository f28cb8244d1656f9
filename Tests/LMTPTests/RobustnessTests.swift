import LMTP
import Testing
import TestSupport

/// Hostile and random input: never a trap, memory within the limits, and
/// the protocol's bookkeeping right whatever happens.
@Suite struct RobustnessTests {
    static let pieces = ["LHLO x\r\n", "MAIL FROM:<a@b>\r\n", "MAIL FROM:<>", " SIZE=", "99999999999999999999",
                         " BODY=8BITMIME", " SMTPUTF8", "RCPT TO:<c@d>\r\n", "RCPT TO:<", "@r:", "\"q\"", "postmaster", ">",
                         "DATA\r\n", "\r\n", "\n", "\r", ".", "..", "\r\n.\r\n", "\n.\n", "RSET\r\n", "NOOP\r\n",
                         "QUIT\r\n", "VRFY x\r\n", "HELO\r\n", "\u{0}", "\u{7F}", "x", "é", "=", " ", "\t",
                         String(repeating: "y", count: 300)]

    static let configuration = LMTPConfiguration(hostname: "fuzz.test", maxMessageSize: 256, maxRecipients: 3,
                                                 maxCommandLength: 128, maxErrors: 50, maxPipelinedInput: 512)

    /// Feeds `bytes` in random chunks, answering pauses sometimes at once and
    /// sometimes after more input, and checks what must always hold.
    static func drive(_ bytes: [UInt8], _ random: inout SplitMix) {
        let limits = configuration
        var engine = LMTPEngine(configuration: limits)
        var closed = false
        var pending: LMTPOutput?
        var accepted = 0
        var contentSize = 0
        var expectedFinalReplies: Int?
        var sent: [UInt8] = []

        func check(_ outputs: [LMTPOutput]) {
            for output in outputs {
                #expect(!closed, "output after .close")
                switch output {
                case .send(let bytes):
                    sent += bytes
                case .checkRecipient(let recipient):
                    #expect(recipient.index == accepted)
                    #expect(!recipient.address.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
                    #expect(recipient.address.utf8.count <= 256)
                    pending = output
                case .beginMessage(let envelope):
                    #expect(envelope.recipients.count == accepted && accepted > 0)
                    #expect(envelope.recipients.map(\.index) == Array(0..<accepted))
                    contentSize = 0
                case .messageBytes(let bytes):
                    contentSize += bytes.count
                    #expect(contentSize <= limits.maxMessageSize)
                case .endMessage(let envelope):
                    #expect(envelope.recipients.count == accepted)
                    pending = output
                case .abortMessage:
                    break
                case .close:
                    closed = true
                }
            }
        }

        var rest = bytes[...]
        var flip = false
        while !rest.isEmpty || pending != nil {
            if let waiting = pending, rest.isEmpty || random.below(3) == 0 {
                pending = nil
                switch waiting {
                case .checkRecipient:
                    flip.toggle()
                    if flip { accepted += 1 }
                    check(engine.resume(recipient: flip ? .accept : .refuse(LMTPReply(550, "5.1.1", "no"))))
                case .endMessage(let envelope):
                    sent = []
                    expectedFinalReplies = envelope.recipients.count
                    accepted = 0
                    check(engine.resume(delivered: envelope.recipients.map { _ in LMTPReply(250, "2.6.0", "stored") }))
                    let count = String(decoding: sent, as: UTF8.self).components("250 2.6.0 stored\r\n")
                    #expect(count == expectedFinalReplies)
                default:
                    break
                }
                continue
            }
            let size = random.below(40) + 1
            check(engine.receive(rest.prefix(size)))
            rest = rest.dropFirst(size)
            #expect(engine.bufferedByteCount <= 2 * 512 + 128)
            if !engine.isPaused { #expect(engine.bufferedByteCount < 128) }
        }
        check(engine.endOfInput())
    }

    @Test func randomCommandSoupNeverTraps() {
        var random = SplitMix(state: 2920)
        for _ in 0..<3000 {
            var text = ""
            for _ in 0..<random.below(60) { text += Self.pieces[random.below(Self.pieces.count)] }
            Self.drive(Array(text.utf8), &random)
        }
    }

    @Test func randomBytesNeverTrap() {
        var random = SplitMix(state: 5321)
        for _ in 0..<2000 {
            let opening = Array("LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<a@b>\r\nDATA\r\n".utf8)
            let noise = (0..<random.below(400)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            Self.drive((random.below(2) == 0 ? opening : []) + noise, &random)
        }
    }

    @Test func aPausedEngineKeepsABoundedAmountOfInput() {
        var engine = LMTPEngine(configuration: LMTPConfiguration(hostname: "h", maxPipelinedInput: 4096))
        _ = engine.start()
        _ = engine.receive(Array("LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<a@b>\r\n".utf8))
        #expect(engine.isPaused && engine.wantsInput)
        let noops = Array(String(repeating: "NOOP\r\n", count: 1000).utf8)
        #expect(engine.receive(noops) == [])
        #expect(!engine.wantsInput)
        #expect(engine.bufferedByteCount == 6000)
        // A server reading on regardless: kept to twice the limit, the rest dropped.
        #expect(engine.receive(noops) == [])
        #expect(engine.bufferedByteCount == 8192)
        let outputs = engine.resume(recipient: .accept)
        guard case .send(let bytes)? = outputs.first else { Issue.record("no reply"); return }
        let text = String(decoding: bytes, as: UTF8.self)
        // Every complete NOOP kept is answered, then the session ends.
        #expect(text.components("250 2.0.0 OK\r\n") == 8192 / 6)
        #expect(text.hasPrefix("250 2.1.5 recipient OK\r\n"))
        #expect(text.hasSuffix("421 4.7.0 h too much pipelined input\r\n"))
        #expect(outputs.last == .close)
    }

    @Test func aHugeSingleChunkIsCutWhenTheEnginePausesInIt() {
        var engine = LMTPEngine(configuration: LMTPConfiguration(hostname: "h", maxPipelinedInput: 4096))
        let chunk = Array(("LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<a@b>\r\n" + String(repeating: "NOOP\r\n", count: 10_000)).utf8)
        _ = engine.receive(chunk)
        #expect(engine.bufferedByteCount == 8192)
        #expect(!engine.wantsInput)
    }

    @Test func aLongMessageIsStreamedNotKept() {
        var engine = LMTPEngine(configuration: LMTPConfiguration(hostname: "h"))
        _ = engine.receive(Array("LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<a@b>\r\n".utf8))
        _ = engine.resume(recipient: .accept)
        _ = engine.receive(Array("DATA\r\n".utf8))
        let block = Array(String(repeating: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", count: 1024).utf8)
        var delivered = 0
        for _ in 0..<100 {
            for output in engine.receive(block) {
                if case .messageBytes(let bytes) = output { delivered += bytes.count }
            }
            #expect(engine.bufferedByteCount == 0)
        }
        #expect(delivered == 100 * 1024 * 64)
    }
}

extension String {
    /// How often `piece` occurs, without overlaps.
    func components(_ piece: String) -> Int {
        ranges(of: piece).count
    }
}
