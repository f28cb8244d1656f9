import SystemPackage
internal import MaildirKit

/// How much of what GMime parses as header fields and MIME parts a message
/// may hold. GMime keeps every header field and every part as objects of a
/// few hundred bytes to a few kilobytes, so a message of many short header
/// lines or many empty parts costs far more memory than its size (measured
/// with GMime 3.2 and libnotmuch 5.6: about 480 bytes a header line, 500 MB
/// for a million `X-H: v` lines; about 2 KB a part, 240 MB for a 1 MiB
/// message of 175,000 empty parts). Counted in one streaming pass, before
/// GMime sees the message; the count also gives an estimate of what parsing
/// and indexing it may cost (`Scan.parsingCost`, `Scan.indexingCost`).
///
/// Real mail stays far below: a header block of a few hundred lines and
/// some tens of kilobytes (a long Received chain, DKIM and ARC signatures,
/// a Cc list of a thousand addresses); a digest of a hundred messages.
public enum MessageLimits {
    /// Lines of the message's header block, folded continuation lines
    /// included. About 5 MB of GMime's and libnotmuch's memory.
    public static let maxLinesPerHeader = 10_000
    /// Bytes of the message's header block: twenty times postfix's
    /// header_size_limit (100 KiB for one field), and room for a header
    /// field of a whole MiB, which earlier versions took.
    public static let maxBytesPerHeader = 2 << 20
    /// Header fields of all blocks together (the message's, its parts',
    /// embedded messages'): a digest or a forward of a thousand messages of
    /// forty fields. About 25 MB of GMime's memory.
    public static let maxHeaderLines = 50_000
    /// Lines that start with `--` after the message's header: each MIME part
    /// starts with one (its boundary). Counting every such line, not only
    /// real boundaries, errs on the safe side. About 40 MB of GMime's memory.
    public static let maxBoundaryLines = 20_000

    /// What a message goes over (the first limit it crossed).
    public enum Excess: Equatable, Sendable, CustomStringConvertible {
        case linesPerHeader
        case bytesPerHeader
        case headerLines
        case boundaryLines

        public var description: String {
            switch self {
            case .linesPerHeader:
                return "the message's header has more than \(MessageLimits.maxLinesPerHeader) lines"
            case .bytesPerHeader:
                return "the message's header is larger than \(MessageLimits.maxBytesPerHeader >> 20) MiB"
            case .headerLines:
                return "the message's header fields (its parts' and embedded messages' included) are more than "
                    + "\(MessageLimits.maxHeaderLines)"
            case .boundaryLines:
                return "the message has more than \(MessageLimits.maxBoundaryLines) lines starting with '--' (MIME parts)"
            }
        }
    }

    public struct Scan: Equatable, Sendable {
        /// Nil: within every limit.
        public let excess: Excess?
        /// At most about what GMime takes to parse it, in bytes: its size,
        /// and its header fields and parts at what each costs.
        public let parsingCost: Int64
        /// At most about what libnotmuch takes to index it: parsing it,
        /// and about 1 KB a distinct word of text (Xapian's terms and
        /// positions; 5 GB for 39 MB of distinct words), counted as if the
        /// whole message were such text. Ordinary text costs a few times
        /// its size.
        public var indexingCost: Int64 { parsingCost + 128 * bytes }
        /// The message's size, as far as it was read.
        public let bytes: Int64
    }

    /// Reads the file at `path`; nil when it cannot be read (its reader
    /// says why).
    public static func scan(ofFile path: String) -> Scan? {
        guard let file = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) else { return nil }
        defer { try? file.close() }
        return try? scan(file)
    }

    /// Reads `file` from its current offset to its end (or to the first
    /// limit crossed), 64 KiB at a time.
    static func scan(_ file: FileDescriptor) throws -> Scan {
        var counter = Counter()
        var excess: Excess?
        try file.readChunks { chunk in
            excess = counter.consume(chunk)
            return excess == nil
        }
        return Scan(excess: excess, parsingCost: counter.parsingCost, bytes: counter.bytes)
    }

    /// A line-by-line reading of the message as GMime's parser shapes it:
    /// a header block runs to the first empty line (GMime skips lines in
    /// it that are not fields and goes on); after the message's header, a
    /// line starting with `--` may start a part, whose header block
    /// follows; a header block whose Content-Type names a `message` type,
    /// and every part once a `digest` is named, is followed by an embedded
    /// message's header block. Those two words are looked for anywhere in
    /// a Content-Type field, comments included. Every line of the message's
    /// own header counts; in the other blocks, the lines that may be fields
    /// (a name without blanks, perhaps blanks, a colon), so that the text
    /// after a `--` line that is no boundary (a patch's `--- a/file`, say)
    /// is not counted as a header unless it looks like one.
    struct Counter {
        private enum Place { case header, body }
        private var place = Place.header
        /// In the message's own header block, the first one read.
        private var topLevel = true
        private(set) var bytes: Int64 = 0
        private var headerLines = 0
        private var boundaryLines = 0
        /// Of the message's own header block.
        private var topLines = 0
        private var topBytes = 0
        /// Of the current header block.
        private var blockNamesMessage = false
        private var digestNamed = false
        private var inContentType = false
        /// The current line.
        private var lineLength = 0
        private var firstByte: UInt8 = 0
        private var secondByte: UInt8 = 0
        /// The line so far is a field name (non-blank bytes, then perhaps
        /// blanks), and then a colon came: a line GMime may take as a field.
        private var nameState = NameState.name
        private var contentTypeMatch = PrefixMatch(Array("content-type".utf8))
        private var messageMatch = WordMatch(Array("message".utf8))
        private var digestMatch = WordMatch(Array("digest".utf8))

        var parsingCost: Int64 {
            bytes + Int64(headerLines) * 512 + Int64(boundaryLines) * 2048
        }

        mutating func consume(_ chunk: ArraySlice<UInt8>) -> Excess? {
            chunk.withUnsafeBufferPointer { consume($0) }
        }

        private mutating func consume(_ buffer: UnsafeBufferPointer<UInt8>) -> Excess? {
            guard let base = buffer.baseAddress else { return nil }
            var index = 0
            while index < buffer.count {
                // In a body only a line's first two bytes matter: the rest
                // is skipped at memchr's speed (a message is read twice).
                if place == .body && lineLength >= 2 {
                    let rest = buffer.count - index
                    let tail = UnsafeRawBufferPointer(start: base + index, count: rest)
                    let skipped = ByteSearch.firstOffset(of: 10, in: tail) ?? rest
                    bytes += Int64(skipped)
                    lineLength += skipped
                    index += skipped
                    if index == buffer.count { break }
                }
                let byte = base[index]
                index += 1
                bytes += 1
                if byte == 10 {
                    if let excess = endLine() { return excess }
                    continue
                }
                if lineLength == 0 {
                    firstByte = byte
                    // A field's continuation starts with a space or a tab.
                    if !isBlank(byte) { inContentType = false }
                } else if lineLength == 1 {
                    secondByte = byte
                }
                nameState.feed(byte, first: lineLength == 0)
                if place == .header {
                    if topLevel {
                        topBytes += 1
                        if topBytes > MessageLimits.maxBytesPerHeader { return .bytesPerHeader }
                    }
                    if contentTypeMatch.feed(byte, at: lineLength) { inContentType = true }
                    if inContentType {
                        if messageMatch.feed(byte) { blockNamesMessage = true }
                        if digestMatch.feed(byte) { digestNamed = true }
                    }
                }
                lineLength += 1
            }
            return nil
        }

        private mutating func endLine() -> Excess? {
            defer {
                lineLength = 0
                nameState = .name
                messageMatch.reset()
                digestMatch.reset()
            }
            let empty = lineLength == 0 || (lineLength == 1 && firstByte == 13)
            switch place {
            case .header where empty:
                // An embedded message's header follows; else the body.
                let embedded = blockNamesMessage || (digestNamed && !topLevel)
                blockNamesMessage = false
                inContentType = false
                topLevel = false
                if !embedded { place = .body }
            case .header:
                if topLevel {
                    topLines += 1
                    if topLines > MessageLimits.maxLinesPerHeader { return .linesPerHeader }
                }
                if topLevel || nameState == .field {
                    headerLines += 1
                    if headerLines > MessageLimits.maxHeaderLines { return .headerLines }
                }
            case .body where lineLength >= 2 && firstByte == 45 && secondByte == 45:
                boundaryLines += 1
                if boundaryLines > MessageLimits.maxBoundaryLines { return .boundaryLines }
                place = .header
            case .body:
                break
            }
            return nil
        }

        private func isBlank(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 }

        enum NameState {
            case name, blanksAfterName, field, notField

            mutating func feed(_ byte: UInt8, first: Bool) {
                let blank = byte == 32 || byte == 9
                switch self {
                case .name where byte == 58: self = first ? .notField : .field
                case .name where blank: self = first ? .notField : .blanksAfterName
                case .blanksAfterName where byte == 58: self = .field
                case .blanksAfterName where !blank: self = .notField
                default: break
                }
            }
        }
    }
}

/// Whether a line starts with a fixed text, ASCII letters in any case.
private struct PrefixMatch {
    let text: [UInt8]
    private var matching = true

    init(_ text: [UInt8]) { self.text = text }

    /// Feeds the line's byte at `offset`; true when the line's first bytes
    /// have just completed the text.
    mutating func feed(_ byte: UInt8, at offset: Int) -> Bool {
        if offset == 0 { matching = true }
        guard matching, offset < text.count else { return false }
        matching = lowercased(byte) == text[offset]
        return matching && offset == text.count - 1
    }
}

/// Whether a word appears in a stream of bytes, ASCII letters in any case.
/// The words looked for repeat no prefix of theirs inside, so restarting
/// on a mismatch finds every occurrence.
private struct WordMatch {
    let word: [UInt8]
    private var matched = 0

    init(_ word: [UInt8]) { self.word = word }

    mutating func feed(_ byte: UInt8) -> Bool {
        let byte = lowercased(byte)
        if byte == word[matched] {
            matched += 1
        } else {
            matched = byte == word[0] ? 1 : 0
        }
        guard matched == word.count else { return false }
        matched = 0
        return true
    }

    mutating func reset() { matched = 0 }
}

private func lowercased(_ byte: UInt8) -> UInt8 {
    (65...90).contains(byte) ? byte + 32 : byte
}
