import LMTP

/// The LMTP engine against its invariants, whatever a client sends and
/// however it arrives. The first input byte seeds the chunk sizes, when
/// pauses are answered, how many delivery replies the server gives and
/// whether it shuts down halfway; the rest is the client's stream.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLMTP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    var session = FuzzSession(seed: input[0])
    session.run(input.dropFirst())
    FramingCheck.run(seed: input[0], input.dropFirst())
    return 0
}

/// Small limits, so that short inputs reach every one of them.
private let configuration = LMTPConfiguration(hostname: "fuzz.test", maxMessageSize: 300, maxRecipients: 4,
                                              maxCommandLength: 100, maxErrors: 30, maxPipelinedInput: 256)

/// Replies the engine never makes up, so that they can be counted in what it sends.
private let stored = LMTPReply(250, "2.6.0", "fuzz-stored")
private let storedWire = Array(stored.bytes)
private let paddingWire = Array("451 4.3.0 internal error: no delivery status\r\n".utf8)
private let tooBigWire = Array("552 5.3.4 message too big\r\n".utf8)

private struct FuzzSession {
    var engine = LMTPEngine(configuration: configuration)
    var random: UInt32
    let shutDownHalfway: Bool

    var closed = false
    /// The pause waiting for an answer.
    var pending: LMTPOutput?
    var acceptNext = true
    /// Recipients accepted since the last one with index 0.
    var accepted: [String] = []
    /// The message being read: its recipients and content so far.
    var messageRecipients: Int?
    var contentSize = 0
    /// A message went over the limit: its 552s are owed.
    var owedTooBig: Int?

    init(seed: UInt8) {
        random = UInt32(seed) &* 2_654_435_761 | 1
        shutDownHalfway = seed & 0x80 != 0
    }

    mutating func next(_ below: Int) -> Int {
        random = random &* 1_664_525 &+ 1_013_904_223
        return Int(random >> 16) % max(below, 1)
    }

    mutating func run(_ stream: ArraySlice<UInt8>) {
        check(engine.start())
        var rest = stream
        let halfway = stream.count / 2
        var shutDown = false
        while !rest.isEmpty || pending != nil {
            if let waiting = pending, rest.isEmpty || next(4) != 0 {
                pending = nil
                answer(waiting)
                continue
            }
            let count = next(48) + 1
            check(engine.receive(rest.prefix(count)))
            rest = rest.dropFirst(count)
            if shutDownHalfway && !shutDown && stream.count - rest.count >= halfway {
                shutDown = true
                check(engine.shuttingDown())
            }
            let bound = 2 * configuration.maxPipelinedInput + configuration.maxCommandLength
            if engine.bufferedByteCount > bound {
                fatalError("LMTPEngine: \(engine.bufferedByteCount) bytes held, more than \(bound)")
            }
        }
        check(next(2) == 0 ? engine.endOfInput() : engine.timedOut())
        if !engine.receive(Array("NOOP\r\n".utf8)).isEmpty || engine.wantsInput {
            fatalError("LMTPEngine: still reading after the end of input")
        }
    }

    mutating func answer(_ pause: LMTPOutput) {
        if !engine.isPaused { fatalError("LMTPEngine: \(pause) out, but not paused") }
        switch pause {
        case .checkRecipient(let recipient):
            let accept = acceptNext
            acceptNext.toggle()
            if accept { accepted.append(recipient.address) }
            check(engine.resume(recipient: accept ? .accept : .refuse(LMTPReply(550, "5.1.1", "refused"))))
        case .endMessage(let envelope):
            let count = envelope.recipients.count
            let given = max(count + next(3) - 1, 0)
            let outputs = engine.resume(delivered: Array(repeating: stored, count: given))
            var sent: [UInt8] = []
            if case .send(let bytes)? = outputs.first { sent = bytes }
            let replies = occurrences(of: storedWire, in: sent)
            let padded = occurrences(of: paddingWire, in: sent)
            if replies != min(given, count) || padded != max(count - given, 0) {
                fatalError("LMTPEngine: \(count) recipients, \(given) replies given, \(replies) sent and \(padded) padded")
            }
            accepted = []
            messageRecipients = nil
            check(outputs)
        default:
            fatalError("LMTPEngine: \(pause) is not a pause")
        }
    }

    mutating func check(_ outputs: [LMTPOutput]) {
        for (position, output) in outputs.enumerated() {
            if closed { fatalError("LMTPEngine: \(output) after .close") }
            switch output {
            case .send(let bytes):
                let tooBig = occurrences(of: tooBigWire, in: bytes)
                if tooBig > 0 {
                    if tooBig != owedTooBig { fatalError("LMTPEngine: \(tooBig) 552s for \(owedTooBig ?? 0) recipients") }
                    owedTooBig = nil
                }
            case .checkRecipient(let recipient):
                if recipient.index == 0 { accepted = [] }
                if recipient.index != accepted.count {
                    fatalError("LMTPEngine: recipient index \(recipient.index) after \(accepted.count) accepted")
                }
                if recipient.address.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
                    || recipient.address.isEmpty {
                    fatalError("LMTPEngine: recipient address \(recipient.address.debugDescription)")
                }
                pausedAt(position, outputs)
            case .beginMessage(let envelope):
                if owedTooBig != nil { fatalError("LMTPEngine: a message began before the last one's 552s") }
                checkEnvelope(envelope)
                messageRecipients = envelope.recipients.count
                contentSize = 0
            case .messageBytes(let bytes):
                if messageRecipients == nil { fatalError("LMTPEngine: message bytes outside a message") }
                contentSize += bytes.count
                if contentSize > configuration.maxMessageSize {
                    fatalError("LMTPEngine: \(contentSize) bytes of message, over the limit")
                }
            case .endMessage(let envelope):
                checkEnvelope(envelope)
                pausedAt(position, outputs)
            case .abortMessage(let reason):
                guard let recipients = messageRecipients else { fatalError("LMTPEngine: abort outside a message") }
                if reason.hasPrefix("message over") { owedTooBig = recipients }
                messageRecipients = nil
            case .close:
                closed = true
            }
        }
    }

    /// A pause is the last output of its call.
    mutating func pausedAt(_ position: Int, _ outputs: [LMTPOutput]) {
        if position != outputs.count - 1 { fatalError("LMTPEngine: outputs after a pause") }
        pending = outputs[position]
    }

    func checkEnvelope(_ envelope: LMTPEnvelope) {
        if envelope.recipients.isEmpty || envelope.recipients.map(\.address) != accepted
            || envelope.recipients.map(\.index) != Array(envelope.recipients.indices)
            || envelope.recipients.count > configuration.maxRecipients {
            fatalError("LMTPEngine: envelope \(envelope.recipients) for accepted \(accepted)")
        }
    }
}

private func occurrences(of needle: [UInt8], in haystack: [UInt8]) -> Int {
    guard !needle.isEmpty, haystack.count >= needle.count else { return 0 }
    var count = 0
    var index = 0
    while index <= haystack.count - needle.count {
        if haystack[index..<(index + needle.count)].elementsEqual(needle) {
            count += 1
            index += needle.count
        } else {
            index += 1
        }
    }
    return count
}
