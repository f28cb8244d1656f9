import LMTP
import Testing

/// Drives an engine the way the server will: feeds client bytes, answers
/// `.checkRecipient` and `.endMessage` at once, and keeps everything the
/// engine produced for the tests to look at.
struct Client {
    var engine: LMTPEngine
    /// Everything sent to the client, as text.
    var sent = ""
    /// Every output, in order, `.send` included.
    var outputs: [LMTPOutput] = []
    /// The content of each message handed over with `.endMessage`.
    var messages: [[UInt8]] = []
    var aborted: [String] = []
    var content: [UInt8] = []
    var closed = false
    var verdict: (LMTPRecipient) -> RecipientVerdict = { _ in .accept }
    var delivery: (LMTPEnvelope) -> [LMTPReply] = { envelope in
        envelope.recipients.map { LMTPReply(250, "2.0.0", "delivered to \($0.address) as \($0.index)") }
    }

    init(_ configuration: LMTPConfiguration = LMTPConfiguration(hostname: "mx.test"), start: Bool = true) {
        engine = LMTPEngine(configuration: configuration)
        if start { take(engine.start()) }
    }

    mutating func send(_ text: String) { send(Array(text.utf8)) }

    /// Client bytes in chunks of the given sizes (cycled), or all at once.
    mutating func send(_ bytes: [UInt8], chunks: [Int] = []) {
        var rest = bytes[...]
        var turn = 0
        while !rest.isEmpty {
            let size = chunks.isEmpty ? rest.count : max(chunks[turn % chunks.count], 1)
            turn += 1
            take(engine.receive(rest.prefix(size)))
            rest = rest.dropFirst(size)
        }
    }

    /// Records outputs and answers the pauses, as often as they come.
    mutating func take(_ batch: [LMTPOutput]) {
        var pending = batch[...]
        while let output = pending.popFirst() {
            #expect(!closed, "output after .close: \(output)")
            outputs.append(output)
            switch output {
            case .send(let bytes):
                sent += String(decoding: bytes, as: UTF8.self)
            case .checkRecipient(let recipient):
                #expect(pending.isEmpty, "outputs after a pause")
                #expect(engine.isPaused)
                pending = engine.resume(recipient: verdict(recipient))[...]
            case .beginMessage:
                content = []
            case .messageBytes(let bytes):
                content += bytes
            case .endMessage(let envelope):
                #expect(pending.isEmpty, "outputs after a pause")
                messages.append(content)
                pending = engine.resume(delivered: delivery(envelope))[...]
            case .abortMessage(let reason):
                aborted.append(reason)
            case .close:
                closed = true
            }
        }
    }

    /// The reply lines sent, without CRLF.
    var lines: [String] { sent.split(separator: "\r\n", omittingEmptySubsequences: true).map(String.init) }

    /// The last line of each reply, cut to code and enhanced code:
    /// ["250 2.1.0", "550 5.1.1", "354"].
    var replies: [String] { Self.replies(in: lines) }

    /// `lines`, the last of each reply, cut to code and enhanced code.
    static func replies(in lines: [String]) -> [String] {
        lines.filter { $0.count < 4 || $0.dropFirst(3).first == " " }.map { line in
            let words = line.split(separator: " ", maxSplits: 2)
            if words.count > 1, words[1].first?.isNumber == true, words[1].contains(".") {
                return "\(words[0]) \(words[1])"
            }
            return String(words.first ?? "")
        }
    }

    /// The replies after the greeting and the LHLO reply.
    var afterLHLO: [String] { Array(replies.dropFirst(2)) }
}

let lhlo = "LHLO client.test\r\n"

