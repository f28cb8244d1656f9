/// Cuts command input into lines at LF, whatever the chunking, keeping at
/// most one line's worth of bytes: a line longer than the limit is reported
/// at once and its remainder skipped through the next LF unseen, so that a
/// client sending endless bytes without LF costs no memory.
struct CommandLineReader {
    enum Event: Equatable {
        /// A complete line, without its LF or a CR before it.
        case line([UInt8])
        /// The line in progress has gone over the limit; its rest is skipped.
        case tooLong
    }

    /// A line's longest length, its LF (and CR) included.
    let limit: Int
    private var partial: [UInt8] = []
    private var skipping = false

    init(limit: Int) { self.limit = limit }

    /// Bytes of an unfinished line held over to the next call.
    var heldCount: Int { partial.count }

    /// Takes bytes from the front of `input` until a line ends, the limit is
    /// passed, or the input runs out; returns what happened and how many
    /// bytes were taken.
    mutating func take(from input: ArraySlice<UInt8>) -> (event: Event?, consumed: Int) {
        if skipping {
            guard let newline = input.firstIndex(of: ASCII.lf) else { return (nil, input.count) }
            skipping = false
            return (nil, newline - input.startIndex + 1)
        }
        // Room left for this line, its LF included.
        let room = limit - partial.count
        let window = input.prefix(room)
        if let newline = window.firstIndex(of: ASCII.lf) {
            var line = partial
            line += input[input.startIndex..<newline]
            partial = []
            if line.last == ASCII.cr { line.removeLast() }
            return (.line(line), newline - input.startIndex + 1)
        }
        if window.count < room {
            partial += window
            return (nil, window.count)
        }
        partial = []
        skipping = true
        return (.tooLong, window.count)
    }

    /// Forgets an unfinished line (the client went away).
    mutating func reset() {
        partial = []
        skipping = false
    }
}
