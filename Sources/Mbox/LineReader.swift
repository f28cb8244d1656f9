/// Lines (with their `\n`), with offsets, from a byte source, in pieces of
/// at most a given size: a line of 40 MiB (or a gzip bomb without a newline)
/// must cost neither its size in memory nor a search from its start on
/// every refill.
final class LineReader {
    /// Part of a line: all of it when the line is short enough.
    struct Piece {
        let bytes: ArraySlice<UInt8>
        /// Where the piece starts in the archive.
        let offset: Int
        /// The number of the line it belongs to.
        let number: Int
        /// The line's first piece: where a From_ line, a quote or a header starts.
        let startsLine: Bool
        /// Ends with the line's `\n`, or with the end of the archive.
        let endsLine: Bool

        var isWholeLine: Bool { startsLine && endsLine }
    }

    private let source: ByteSource
    private var buffer: [UInt8] = []
    private var position = 0
    /// Up to where the buffer is known to hold no `\n` past `position`.
    private var scanned = 0
    private var atEnd = false
    private var consumed = 0
    private var lineNumber = 0
    private var midLine = false

    init(_ source: ByteSource) { self.source = source }

    /// Where reads land before joining the buffer; allocated once, as a
    /// pipe may deliver a few bytes per read.
    private var chunk = [UInt8](repeating: 0, count: 1 << 16)

    /// Makes sure `count` bytes are buffered past the position, if the source has them.
    private func fill(_ count: Int) throws {
        // Dropping what was read, once it is worth the copy.
        if position > 1 << 18 {
            buffer.removeFirst(position)
            scanned -= position
            position = 0
        }
        while buffer.count - position < count && !atEnd {
            let n = try chunk.withUnsafeMutableBytes { try source.read(into: $0) }
            if n == 0 { atEnd = true } else { buffer += chunk[..<n] }
        }
    }

    /// The next piece of at most `limit` bytes; nil at the end.
    func nextPiece(limit: Int) throws -> Piece? {
        while true {
            let end = min(buffer.count, position + limit)
            let from = max(scanned, position)
            if from < end, let newline = buffer[from..<end].firstIndex(of: 10) {
                return take(newline + 1 - position, endsLine: true)
            }
            scanned = end
            if end - position >= limit { return take(limit, endsLine: false) }
            if atEnd { return position < buffer.count ? take(buffer.count - position, endsLine: true) : nil }
            try fill(buffer.count - position + 1)
        }
    }

    private func take(_ count: Int, endsLine: Bool) -> Piece {
        let piece = Piece(bytes: buffer[position..<(position + count)], offset: consumed, number: lineNumber + 1,
                          startsLine: !midLine, endsLine: endsLine)
        if endsLine { lineNumber += 1 }
        midLine = !endsLine
        position += count
        consumed += count
        return piece
    }

    func readExactly(_ count: Int) throws -> [UInt8]? {
        try fill(count)
        guard buffer.count - position >= count else { return nil }
        let bytes = Array(buffer[position..<(position + count)])
        position += count
        consumed += count
        lineNumber += bytes.lazy.filter { $0 == 10 }.count
        // What follows a counted body is read as a line of its own, even
        // when the body ends without a newline.
        midLine = false
        return bytes
    }

    func peek(_ count: Int) throws -> [UInt8] {
        try fill(count)
        return Array(buffer[position..<min(buffer.count, position + count)])
    }

    /// Only what `readExactly` took, straight after taking it, at a line start.
    func pushBack(_ bytes: [UInt8]) {
        buffer.replaceSubrange(position..<position, with: bytes)
        scanned = position
        consumed -= bytes.count
        lineNumber -= bytes.lazy.filter { $0 == 10 }.count
        midLine = false
    }
}
