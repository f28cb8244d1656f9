/// Drops a leading mbox `From ` envelope line from a byte stream, whatever
/// the sizes of the chunks it arrives in (a pipe may hand over one byte at a
/// time). Everything after that line passes through untouched.
public struct EnvelopeStripper {
    private enum State { case deciding, skippingEnvelope, passing }

    private static let marker = Array("From ".utf8)
    private var state = State.deciding
    private var head: [UInt8] = []

    public init() {}

    /// Feeds a chunk; returns the bytes that belong to the message.
    public mutating func feed(_ chunk: some Collection<UInt8>) -> [UInt8] {
        var output: [UInt8] = []
        var rest = chunk[...]
        while !rest.isEmpty {
            switch state {
            case .passing:
                output.append(contentsOf: rest)
                rest = rest[rest.endIndex...]
            case .deciding:
                let wanted = Self.marker.count - head.count
                head.append(contentsOf: rest.prefix(wanted))
                rest = rest.dropFirst(wanted)
                if !Self.marker.starts(with: head) {
                    output.append(contentsOf: head)
                    head = []
                    state = .passing
                } else if head.count == Self.marker.count {
                    head = []
                    state = .skippingEnvelope
                }
            case .skippingEnvelope:
                if let newline = rest.firstIndex(of: UInt8(ascii: "\n")) {
                    rest = rest[rest.index(after: newline)...]
                    state = .passing
                } else {
                    rest = rest[rest.endIndex...]
                }
            }
        }
        return output
    }

    /// Ends the stream; returns what was held back (input shorter than `From `).
    public mutating func finish() -> [UInt8] {
        defer { head = [] }
        return state == .deciding ? head : []
    }

}
