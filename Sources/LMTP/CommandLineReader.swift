/// Cuts command input into lines at CRLF, whatever the chunking, keeping at
/// most one line's worth of bytes. Lines end at CRLF only (RFC 5321 2.3.8),
/// as message lines do: a bare LF is reported at once and the rest of its
/// line skipped through the next CRLF unseen, so that no byte after a bare
/// LF is ever run as a command. A bare CR stays in its line (where the
/// command parser refuses it as a control character). A line longer than the
/// limit is reported at once and skipped the same way, so that a client
/// sending endless bytes without CRLF costs no memory.
struct CommandLineReader {
    enum Event: Equatable {
        /// A complete line, without its CRLF.
        case line([UInt8])
        /// The line in progress has gone over the limit; its rest is skipped.
        case tooLong
        /// The line in progress ended in an LF without a CR before it; its
        /// rest, through the next CRLF, is skipped.
        case bareLineFeed
    }

    /// A line's longest length, its CRLF included.
    let limit: Int
    private var partial: [UInt8] = []
    private var skipping = false
    /// While skipping: the last byte skipped was a CR.
    private var skippedCR = false

    init(limit: Int) { self.limit = limit }

    /// Bytes of an unfinished line held over to the next call.
    var heldCount: Int { partial.count }

    /// Takes bytes from the front of `input` until a line ends, the limit is
    /// passed, or the input runs out; returns what happened and how many
    /// bytes were taken.
    mutating func take(from input: ArraySlice<UInt8>) -> (event: Event?, consumed: Int) {
        if skipping { return (nil, skip(input)) }
        // Room left for this line, its LF included.
        let room = limit - partial.count
        let window = input.prefix(room)
        if let newline = window.firstIndex(of: ASCII.lf) {
            let consumed = newline - input.startIndex + 1
            let before = newline > input.startIndex ? input[newline - 1] : partial.last
            guard before == ASCII.cr else {
                partial = []
                startSkipping(lastByte: ASCII.lf)
                return (.bareLineFeed, consumed)
            }
            var line = partial
            line += input[input.startIndex..<newline]
            line.removeLast()
            partial = []
            return (.line(line), consumed)
        }
        if window.count < room {
            partial += window
            return (nil, window.count)
        }
        partial = []
        startSkipping(lastByte: window.last)
        return (.tooLong, window.count)
    }

    private mutating func startSkipping(lastByte: UInt8?) {
        skipping = true
        skippedCR = lastByte == ASCII.cr
    }

    /// Skips through the next CRLF, which may have begun in an earlier chunk;
    /// returns how many bytes were taken.
    private mutating func skip(_ input: ArraySlice<UInt8>) -> Int {
        var index = input.startIndex
        while let newline = input[index...].firstIndex(of: ASCII.lf) {
            let before = newline > input.startIndex ? input[newline - 1] : (skippedCR ? ASCII.cr : nil)
            index = newline + 1
            if before == ASCII.cr {
                skipping = false
                skippedCR = false
                return index - input.startIndex
            }
        }
        skippedCR = input.last.map { $0 == ASCII.cr } ?? skippedCR
        return input.count
    }

    /// Forgets an unfinished line (the client went away).
    mutating func reset() {
        partial = []
        skipping = false
        skippedCR = false
    }
}
