/// Collects what one call of the engine produces, merging neighbours of
/// the same kind: the replies to pipelined commands become one `.send` (one
/// write instead of one per command), the content of a chunk one
/// `.messageBytes`. Order between different kinds is kept exactly.
struct OutputQueue {
    private var items: [LMTPOutput] = []
    private var sending: [UInt8] = []
    /// Message content not yet handed out; the message reader appends here.
    /// Only in the DATA phase, which `.beginMessage` opens, so no reply is
    /// ever waiting in `sending` behind it.
    var content: [UInt8] = []

    mutating func send(_ reply: LMTPReply) {
        flushContent()
        sending += reply.bytes
    }

    mutating func append(_ output: LMTPOutput) {
        flushContent()
        flushSending()
        items.append(output)
    }

    /// Everything so far, in order; the queue is empty afterwards.
    mutating func take() -> [LMTPOutput] {
        flushContent()
        flushSending()
        defer { items = [] }
        return items
    }

    private mutating func flushSending() {
        guard !sending.isEmpty else { return }
        items.append(.send(sending))
        sending = []
    }

    private mutating func flushContent() {
        guard !content.isEmpty else { return }
        items.append(.messageBytes(content))
        content = []
    }
}
