/// The mbox variants (see mbox(5) and the "mboxrd" convention):
/// - mboxo: `From ` lines in messages were written as `>From `, and nothing
///   else was quoted, so `>From ` in a message cannot be told from a quoted
///   `From `: one `>` is removed from `>From ` and `>>From ` is left alone.
/// - mboxrd: every `>*From ` was quoted with one more `>`; one is removed.
/// - mboxcl: as mboxo, with Content-Length headers giving each body's size.
/// - mboxcl2: Content-Length, and nothing quoted at all.
/// `auto` reads mboxrd, which is also right for mboxo except for the rare
/// `>>From ` line; Content-Length is used only when asked for.
public enum MboxFormat: String, CaseIterable, Sendable {
    case auto, mboxo, mboxrd, mboxcl, mboxcl2
}

/// One message of an archive.
public struct MboxMessage: Sendable {
    /// The message as it was before it went into the archive: no From_ line,
    /// no separating blank line, quoting undone.
    public let bytes: [UInt8]
    /// The From_ line's text after `From ` (sender and date).
    public let envelope: String
    /// Where the From_ line starts in the (decompressed) archive.
    public let offset: Int
    public let line: Int
}

public struct MboxError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Splits an archive into messages as it streams: memory holds one message,
/// whatever the size of the archive.
public final class MboxReader {
    private let lines: LineReader
    private let format: MboxFormat
    private let name: String
    private var pendingEnvelope: (text: [UInt8], offset: Int, line: Int)?
    private var started = false

    public init(source: ByteSource, format: MboxFormat = .auto, name: String) {
        lines = LineReader(source)
        self.format = format
        self.name = name
    }

    public func next() throws -> MboxMessage? {
        if !started {
            started = true
            guard let first = try lines.nextLine() else { return nil }
            guard Self.isEnvelope(first.bytes) else {
                throw MboxError(description: "\(name): not an mbox archive: the first line is not a 'From ' separator line")
            }
            pendingEnvelope = (Array(first.bytes), first.offset, first.number)
        }
        guard let envelope = pendingEnvelope else { return nil }
        pendingEnvelope = nil
        var message: [UInt8] = []
        var previousBlank = false
        var inHeaders = true
        var contentLength: Int?
        while let line = try lines.nextLine() {
            if previousBlank, Self.isEnvelope(line.bytes) {
                pendingEnvelope = (Array(line.bytes), line.offset, line.number)
                break
            }
            let blank = Self.isBlank(line.bytes)
            if inHeaders {
                if blank {
                    inHeaders = false
                    message += line.bytes
                    if let length = contentLength, format == .mboxcl || format == .mboxcl2,
                       try readCountedBody(length, into: &message) {
                        // The body ends where the length says; what follows
                        // is the end, a From_ line, or a blank line and one.
                        if let next = try lines.nextLine() {
                            if Self.isEnvelope(next.bytes) {
                                pendingEnvelope = (Array(next.bytes), next.offset, next.number)
                            } else if let after = try lines.nextLine() {
                                pendingEnvelope = (Array(after.bytes), after.offset, after.number)
                            }
                        }
                        return finish(message, envelope: envelope, trimSeparator: false)
                    }
                    previousBlank = true
                    continue
                }
                if let value = Self.headerValue(line.bytes, name: "content-length") {
                    contentLength = Int(value)
                }
            }
            message += unquoted(line.bytes)
            previousBlank = blank
        }
        return finish(message, envelope: envelope, trimSeparator: true)
    }

    private func finish(_ bytes: [UInt8], envelope: (text: [UInt8], offset: Int, line: Int),
                        trimSeparator: Bool) -> MboxMessage {
        var bytes = bytes
        // The blank line before the next From_ line (or the end) is the
        // archive's separator, not the message's.
        if trimSeparator, bytes.count >= 2 {
            if bytes.suffix(2) == [10, 10] { bytes.removeLast() }
            else if bytes.suffix(4) == [13, 10, 13, 10] { bytes.removeLast(2) }
        }
        var text = envelope.text.dropFirst(5)
        while let last = text.last, last == 10 || last == 13 { text = text.dropLast() }
        return MboxMessage(bytes: bytes, envelope: String(decoding: text, as: UTF8.self),
                           offset: envelope.offset, line: envelope.line)
    }

    /// Reads a body of `length` bytes when the archive agrees: right after
    /// it comes the end, a From_ line, or a blank line and then one. Else
    /// puts the bytes back for line-by-line splitting.
    private func readCountedBody(_ length: Int, into message: inout [UInt8]) throws -> Bool {
        guard length >= 0, let body = try lines.readExactly(length) else { return false }
        let lookahead = try lines.peek(2048)
        // Only the first line counts: a body line starting "From " must not
        // pass on the strength of a time and a year on later lines.
        let consistent = lookahead.isEmpty || Self.isEnvelope(Self.firstLine(lookahead[...]))
            || (Self.startsWithBlankLine(lookahead) && {
                let rest = lookahead.drop { $0 == 13 }.dropFirst()
                return rest.isEmpty || Self.isEnvelope(Self.firstLine(rest))
            }())
        guard consistent else {
            lines.pushBack(body)
            return false
        }
        message += format == .mboxcl ? unquotedLines(body) : body
        return true
    }

    private func unquoted(_ line: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        guard line.first == UInt8(ascii: ">") else { return line }
        let quotes = line.prefix { $0 == UInt8(ascii: ">") }.count
        guard line.dropFirst(quotes).starts(with: Self.fromSpace) else { return line }
        switch format {
        case .auto, .mboxrd: return line.dropFirst()
        case .mboxo, .mboxcl: return quotes == 1 ? line.dropFirst() : line
        case .mboxcl2: return line
        }
    }

    private func unquotedLines(_ bytes: [UInt8]) -> [UInt8] {
        var result: [UInt8] = []
        var start = 0
        while start < bytes.count {
            let end = bytes[start...].firstIndex(of: 10).map { $0 + 1 } ?? bytes.count
            result += unquoted(bytes[start..<end])
            start = end
        }
        return result
    }

    static let fromSpace = Array("From ".utf8)

    static func isBlank(_ line: ArraySlice<UInt8>) -> Bool {
        line.allSatisfy { $0 == 10 || $0 == 13 }
    }

    static func firstLine(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        guard let newline = bytes.firstIndex(of: 10) else { return bytes }
        return bytes[...newline]
    }

    static func startsWithBlankLine(_ bytes: [UInt8]) -> Bool {
        bytes.first == 10 || (bytes.first == 13 && bytes.dropFirst().first == 10)
    }

    /// `From SENDER DATE`: the sender may have spaces (pipermail writes
    /// `From user at example.org`), so the date is what is checked: a
    /// time hh:mm and a four-digit year after `From `.
    static func isEnvelope(_ line: ArraySlice<UInt8>) -> Bool {
        guard line.starts(with: fromSpace) else { return false }
        let words = line.dropFirst(5).split(whereSeparator: { $0 == 32 || $0 == 9 || $0 == 10 || $0 == 13 })
        guard words.count >= 3 else { return false }
        let hasTime = words.contains { word in
            word.count >= 4 && word.count <= 8 && word.contains(UInt8(ascii: ":"))
                && word.allSatisfy { ($0 >= 48 && $0 <= 57) || $0 == UInt8(ascii: ":") }
        }
        let hasYear = words.contains { word in word.count == 4 && word.allSatisfy { $0 >= 48 && $0 <= 57 } }
        return hasTime && hasYear
    }

    static func headerValue(_ line: ArraySlice<UInt8>, name: String) -> String? {
        let key = Array(name.utf8)
        guard line.count > key.count, line[line.startIndex + key.count] == UInt8(ascii: ":"),
              zip(line, key).allSatisfy({ $0 | 0x20 == $1 }) else { return nil }
        let value = line.dropFirst(key.count + 1)
        return String(decoding: value, as: UTF8.self).trimmingWhitespace()
    }
}

extension String {
    public func trimmingWhitespace() -> String {
        var view = Substring(self)
        while let first = view.first, first.isWhitespace { view.removeFirst() }
        while let last = view.last, last.isWhitespace { view.removeLast() }
        return String(view)
    }
}

/// Lines (with their `\n`), with offsets, from a byte source.
final class LineReader {
    struct Line {
        let bytes: ArraySlice<UInt8>
        let offset: Int
        let number: Int
    }

    private let source: ByteSource
    private var buffer: [UInt8] = []
    private var position = 0
    private var atEnd = false
    private var consumed = 0
    private var lineNumber = 0

    init(_ source: ByteSource) { self.source = source }

    /// Where reads land before joining the buffer; allocated once, as a
    /// pipe may deliver a few bytes per read.
    private var chunk = [UInt8](repeating: 0, count: 1 << 16)

    /// Makes sure `count` bytes are buffered past the position, if the source has them.
    private func fill(_ count: Int) throws {
        if position > 1 << 20 {
            buffer.removeFirst(position)
            position = 0
        }
        while buffer.count - position < count && !atEnd {
            let n = try chunk.withUnsafeMutableBytes { try source.read(into: $0) }
            if n == 0 { atEnd = true } else { buffer += chunk[..<n] }
        }
    }

    func nextLine() throws -> Line? {
        while true {
            if let newline = buffer[position...].firstIndex(of: 10) {
                return take(newline + 1 - position)
            }
            if atEnd {
                return position < buffer.count ? take(buffer.count - position) : nil
            }
            try fill(buffer.count - position + 1)
        }
    }

    private func take(_ count: Int) -> Line {
        let line = Line(bytes: buffer[position..<(position + count)], offset: consumed, number: lineNumber + 1)
        lineNumber += 1
        position += count
        consumed += count
        return line
    }

    func readExactly(_ count: Int) throws -> [UInt8]? {
        try fill(count)
        guard buffer.count - position >= count else { return nil }
        let bytes = Array(buffer[position..<(position + count)])
        position += count
        consumed += count
        lineNumber += bytes.lazy.filter { $0 == 10 }.count
        return bytes
    }

    func peek(_ count: Int) throws -> [UInt8] {
        try fill(count)
        return Array(buffer[position..<min(buffer.count, position + count)])
    }

    func pushBack(_ bytes: [UInt8]) {
        buffer.replaceSubrange(position..<position, with: bytes)
        consumed -= bytes.count
        lineNumber -= bytes.lazy.filter { $0 == 10 }.count
    }
}
