internal import MailParsing

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

/// One message of an archive, whole in memory: for tests and small
/// archives. The import streams with `next(writingTo:)` instead.
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

/// What the splitter knows of a message it streamed: all but its bytes.
public struct MboxEntry: Sendable {
    /// The From_ line's text after `From ` (sender and date).
    public let envelope: String
    /// Where the From_ line starts in the (decompressed) archive.
    public let offset: Int
    public let line: Int
    /// The header block as stored, up to `MboxReader.headerLimit` bytes:
    /// enough for the few headers an import reads itself, and bounded
    /// when an archive is one endless header.
    public let headers: [UInt8]
    /// The bytes handed to the writer.
    public let size: Int
}

public struct MboxError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Splits an archive into messages as it streams: memory holds a piece of
/// a line and the start of the header block, whatever the size of the
/// archive or of one message.
public final class MboxReader {
    private let lines: LineReader
    private let format: MboxFormat
    private let name: String
    private var pendingEnvelope: (text: [UInt8], offset: Int, line: Int)?
    private var started = false

    /// Lines are handed on in pieces of this size at most. A From_ line
    /// longer than this is not one (real ones are under 1,000 bytes), and
    /// a quote of more `>` than this before `From ` is not unquoted.
    static let pieceLimit = 1 << 16
    public static let headerLimit = 1 << 18
    /// A Content-Length larger than this is not followed: the body would
    /// have to be held whole to be checked against what comes after it.
    /// Such a message is split on its lines instead.
    static let countedBodyLimit = 1 << 23

    public init(source: ByteSource, format: MboxFormat = .auto, name: String) {
        lines = LineReader(source)
        self.format = format
        self.name = name
    }

    /// The next message, whole.
    public func next() throws -> MboxMessage? {
        var bytes: [UInt8] = []
        guard let entry = try next(writingTo: { bytes += $0 }) else { return nil }
        return MboxMessage(bytes: bytes, envelope: entry.envelope, offset: entry.offset, line: entry.line)
    }

    /// Hands the next message to `write` in pieces, in order, as it is
    /// split; nil at the end of the archive.
    public func next(writingTo write: (ArraySlice<UInt8>) -> Void) throws -> MboxEntry? {
        if !started {
            started = true
            guard let first = try lines.nextPiece(limit: Self.pieceLimit) else { return nil }
            guard first.isWholeLine, Self.isEnvelope(first.bytes) else {
                throw MboxError(description: "\(name): not an mbox archive: the first line is not a 'From ' separator line")
            }
            pendingEnvelope = (Array(first.bytes), first.offset, first.number)
        }
        guard let envelope = pendingEnvelope else { return nil }
        pendingEnvelope = nil
        // The writer is called only during this call.
        return try withoutActuallyEscaping(write) { write in
            var output = MessageOutput(write: write)
            return try split(envelope, into: &output)
        }
    }

    private func split(_ envelope: (text: [UInt8], offset: Int, line: Int),
                       into output: inout MessageOutput) throws -> MboxEntry {
        var previousBlank = false
        var inHeaders = true
        var contentLength: Int?
        while let piece = try lines.nextPiece(limit: Self.pieceLimit) {
            guard piece.startsLine else {
                output.add(piece.bytes, header: inHeaders)
                continue
            }
            if previousBlank, piece.isWholeLine, Self.isEnvelope(piece.bytes) {
                pendingEnvelope = (Array(piece.bytes), piece.offset, piece.number)
                break
            }
            let blank = piece.endsLine && Self.isBlank(piece.bytes)
            if inHeaders {
                if blank {
                    inHeaders = false
                    if let length = contentLength, format == .mboxcl || format == .mboxcl2,
                       let body = try readCountedBody(length) {
                        output.add(piece.bytes, header: false)
                        output.add(body[...], header: false)
                        // The body ends where the length says; what follows
                        // is the end, a From_ line, or a blank line and one.
                        if let next = try lines.nextPiece(limit: Self.pieceLimit) {
                            if Self.isEnvelope(next.bytes) {
                                pendingEnvelope = (Array(next.bytes), next.offset, next.number)
                            } else if let after = try lines.nextPiece(limit: Self.pieceLimit) {
                                pendingEnvelope = (Array(after.bytes), after.offset, after.number)
                            }
                        }
                        return entry(envelope, output)
                    }
                    output.holdBlank(piece.bytes)
                    previousBlank = true
                    continue
                }
                if piece.endsLine, let value = Self.headerValue(piece.bytes, name: "content-length") {
                    contentLength = Int(value)
                }
            }
            if blank {
                output.holdBlank(piece.bytes)
            } else {
                output.add(unquoted(piece.bytes), header: inHeaders)
            }
            previousBlank = blank
        }
        // The blank line before the next From_ line (or the end) is the
        // archive's separator, not the message's.
        output.dropSeparator()
        return entry(envelope, output)
    }

    private func entry(_ envelope: (text: [UInt8], offset: Int, line: Int), _ output: MessageOutput) -> MboxEntry {
        var text = envelope.text.dropFirst(5)
        while let last = text.last, last == 10 || last == 13 { text = text.dropLast() }
        return MboxEntry(envelope: String(decoding: text, as: UTF8.self), offset: envelope.offset,
                         line: envelope.line, headers: output.headers, size: output.size)
    }

    /// Reads a body of `length` bytes when the archive agrees: right after
    /// it comes the end, a From_ line, or a blank line and then one. Else
    /// puts the bytes back for line-by-line splitting.
    private func readCountedBody(_ length: Int) throws -> [UInt8]? {
        guard length >= 0, length <= Self.countedBodyLimit, let body = try lines.readExactly(length) else { return nil }
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
            return nil
        }
        return format == .mboxcl ? unquotedLines(body) : body
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
