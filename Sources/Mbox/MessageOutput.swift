/// Passes one message's bytes on as the splitter finds them, holding back
/// only a blank line: whether it is the message's or the archive's
/// separator is known only from the line after it.
struct MessageOutput {
    let write: (ArraySlice<UInt8>) -> Void
    /// The start of the header block, bounded by `MboxReader.headerLimit`.
    private(set) var headers: [UInt8] = []
    private(set) var size = 0
    private var held: [UInt8]?
    /// The last two bytes passed on, newest last.
    private var tail: [UInt8] = []

    init(write: @escaping (ArraySlice<UInt8>) -> Void) { self.write = write }

    mutating func add(_ bytes: ArraySlice<UInt8>, header: Bool) {
        releaseHeld()
        pass(bytes)
        if header && headers.count < MboxReader.headerLimit {
            headers += bytes.prefix(MboxReader.headerLimit - headers.count)
        }
    }

    mutating func holdBlank(_ bytes: ArraySlice<UInt8>) {
        releaseHeld()
        held = Array(bytes)
    }

    /// At the message's end: the held blank line is the archive's when it
    /// repeats the previous line's ending (`\n` after `\n`, CRLF after
    /// CRLF); otherwise it is the message's.
    mutating func dropSeparator() {
        guard let line = held else { return }
        if (line == [10] && tail.last == 10) || (line == [13, 10] && tail == [13, 10]) {
            held = nil
        } else {
            releaseHeld()
        }
    }

    private mutating func releaseHeld() {
        guard let line = held else { return }
        held = nil
        pass(line[...])
    }

    private mutating func pass(_ bytes: ArraySlice<UInt8>) {
        guard !bytes.isEmpty else { return }
        size += bytes.count
        tail = Array((tail + bytes.suffix(2)).suffix(2))
        write(bytes)
    }
}
