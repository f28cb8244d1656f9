/// The DATA phase: undoes dot-stuffing, turns CRLF into LF and finds the
/// final dot, one byte's worth of state carried from chunk to chunk so that
/// any split of the input gives the same result.
///
/// Lines end at CRLF and nowhere else (RFC 5321 2.3.8, 4.1.1.4): the
/// message ends at CRLF "." CRLF only, the message start counting as a
/// line start ("." at once is an empty message). A bare LF or a bare CR is
/// content, kept as it came: it neither ends the message nor starts a line,
/// so a dot after it is kept and never unstuffed. Whatever a body holds
/// (`text\n.\nMAIL FROM:…`, `\r\n.\n`, `\n.\r\n`), the bytes up to the one
/// CRLF "." CRLF are one message, and nothing in it is read as a command.
struct MessageReceiver {
    private enum Position {
        /// After CRLF, or at the start of the message.
        case lineStart
        /// The line began with a dot, already dropped: stuffing, or the end.
        case afterLeadingDot
        /// The line so far is ".\r": the end if LF follows.
        case afterLeadingDotCR
        case inLine
        /// A CR, held until the next byte says whether it ends the line.
        case afterCR
    }

    let limit: Int
    private var position = Position.lineStart
    /// Content bytes so far, as delivered.
    private(set) var size = 0
    /// The content went over the limit: nothing more is handed out, the
    /// input is still read for the final dot.
    private(set) var overflowed = false

    init(limit: Int) { self.limit = limit }

    /// Reads message input from the front of `input`, appending content to
    /// `content`; returns how many bytes were taken and whether the final
    /// dot line was among them (then what follows is commands again).
    mutating func take(from input: ArraySlice<UInt8>, into content: inout [UInt8]) -> (consumed: Int, finished: Bool) {
        var index = input.startIndex
        while index < input.endIndex {
            if position == .inLine {
                // The bulk of a message: copy up to the next CR at once (only
                // a CR can begin the end of a line).
                let stop = input[index...].firstIndex(of: ASCII.cr) ?? input.endIndex
                emit(input[index..<stop], into: &content)
                index = stop
                if index == input.endIndex { break }
            }
            let byte = input[index]
            index += 1
            if step(byte, into: &content) {
                return (index - input.startIndex, true)
            }
        }
        return (index - input.startIndex, false)
    }

    /// One byte through the line state; true when it completed the final dot line.
    private mutating func step(_ byte: UInt8, into content: inout [UInt8]) -> Bool {
        switch position {
        case .lineStart:
            if byte == ASCII.dot {
                position = .afterLeadingDot
            } else {
                inLine(byte, into: &content)
            }
        case .afterLeadingDot:
            if byte == ASCII.cr {
                position = .afterLeadingDotCR
            } else {
                // The dot was stuffing (even before a bare LF, which is content).
                inLine(byte, into: &content)
            }
        case .afterLeadingDotCR:
            if byte == ASCII.lf { return true }
            // ".\r" then more: the dot was stuffing, the CR a bare one.
            emit(CollectionOfOne(ASCII.cr), into: &content)
            inLine(byte, into: &content)
        case .inLine:
            inLine(byte, into: &content)
        case .afterCR:
            if byte == ASCII.lf {
                emit(CollectionOfOne(ASCII.lf), into: &content)
                position = .lineStart
            } else {
                emit(CollectionOfOne(ASCII.cr), into: &content)
                inLine(byte, into: &content)
            }
        }
        return false
    }

    /// A byte inside a line (or opening one that does not start with a
    /// dot). A bare LF is content and the line goes on.
    private mutating func inLine(_ byte: UInt8, into content: inout [UInt8]) {
        if byte == ASCII.cr {
            position = .afterCR
        } else {
            emit(CollectionOfOne(byte), into: &content)
            position = .inLine
        }
    }

    private mutating func emit(_ bytes: some Collection<UInt8>, into content: inout [UInt8]) {
        guard !overflowed else { return }
        if bytes.count > limit - size {
            overflowed = true
            return
        }
        size += bytes.count
        content += bytes
    }
}
