import LMTP

/// DATA framing against a model: the input's bytes (after the seed),
/// split at 0xFF, are message bodies that a correct client sends in one
/// pipelined stream, each in its own transaction, dot-stuffed at the start
/// of every CRLF line and ended with CRLF "." CRLF; the stream is chunked
/// at random. Whatever a body holds (bare LF, bare CR, `\n.\n`, lines that
/// look like commands, NUL), the server must deliver exactly one message
/// per body, each the body with CRLF as LF, and answer no command with an
/// error: a message more, fewer, or cut short is a framing bug, the
/// SMTP-smuggling class.
struct FramingCheck {
    private static let configuration = LMTPConfiguration(hostname: "fuzz.test", maxMessageSize: 1 << 20)
    private static let stored = LMTPReply(250, "2.6.0", "fuzz-stored")

    private var engine = LMTPEngine(configuration: configuration)
    private var random: UInt32
    private var content: [UInt8] = []
    private var delivered: [[UInt8]] = []
    private var sent: [UInt8] = []
    private var closed = false

    init(seed: UInt8) { random = UInt32(seed) &* 2_246_822_519 | 1 }

    static func run(seed: UInt8, _ input: ArraySlice<UInt8>) {
        var check = FramingCheck(seed: seed)
        check.run(input.split(separator: 0xFF, omittingEmptySubsequences: false))
    }

    private mutating func run(_ bodies: [ArraySlice<UInt8>]) {
        var stream = Array("LHLO fuzz\r\n".utf8)
        for body in bodies {
            stream += Array("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n".utf8)
            stream += Self.stuffed(body)
            stream += Array(".\r\n".utf8)
        }
        stream += Array("QUIT\r\n".utf8)
        take(engine.start())
        var rest = stream[...]
        while !rest.isEmpty {
            random = random &* 1_664_525 &+ 1_013_904_223
            let count = Int(random >> 16) % 64 + 1
            take(engine.receive(rest.prefix(count)))
            rest = rest.dropFirst(count)
        }
        let expected = bodies.map(Self.asDelivered)
        if delivered != expected {
            let first = zip(delivered, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            fatalError("LMTP framing: \(bodies.count) bodies sent, \(delivered.count) messages delivered; "
                       + "first difference at message \(first ?? min(delivered.count, expected.count))")
        }
        let text = String(decoding: sent, as: UTF8.self)
        let errors = text.split(separator: "\r\n").filter { $0.first == "4" || $0.first == "5" }
        if !errors.isEmpty || !closed {
            fatalError("LMTP framing: error replies \(errors.prefix(3)) (closed: \(closed))")
        }
    }

    private mutating func take(_ outputs: [LMTPOutput]) {
        var pending = outputs[...]
        while let output = pending.popFirst() {
            switch output {
            case .send(let bytes): sent += bytes
            case .checkRecipient: pending = engine.resume(recipient: .accept)[...]
            case .beginMessage: content = []
            case .messageBytes(let bytes): content += bytes
            case .endMessage(let envelope):
                delivered.append(content)
                pending = engine.resume(delivered: Array(repeating: Self.stored, count: envelope.recipients.count))[...]
            case .abortMessage(let reason): fatalError("LMTP framing: a message aborted: \(reason)")
            case .close: closed = true
            }
        }
    }

    private static let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n"), dot = UInt8(ascii: ".")

    /// The body as a client puts it on the wire: a dot added at the start
    /// of every line (the start, and after each CRLF), and CRLF at the end
    /// unless it ends so (an empty body is sent as nothing).
    static func stuffed(_ body: ArraySlice<UInt8>) -> [UInt8] {
        var wire: [UInt8] = []
        var lineStart = true
        for byte in body {
            if lineStart && byte == dot { wire.append(dot) }
            lineStart = byte == lf && wire.last == cr
            wire.append(byte)
        }
        if !body.isEmpty && !endsInCRLF(wire) { wire += [cr, lf] }
        return wire
    }

    /// What the server must deliver for `body`: CRLF as LF, with the CRLF
    /// the client added at the end; bare CR and bare LF as they are.
    static func asDelivered(_ body: ArraySlice<UInt8>) -> [UInt8] {
        var bytes = Array(body)
        if !bytes.isEmpty && !endsInCRLF(bytes) { bytes += [cr, lf] }
        var result: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if bytes[index] == cr, index + 1 < bytes.count, bytes[index + 1] == lf {
                result.append(lf)
                index += 2
            } else {
                result.append(bytes[index])
                index += 1
            }
        }
        return result
    }

    private static func endsInCRLF(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[bytes.count - 2] == cr && bytes[bytes.count - 1] == lf
    }
}
