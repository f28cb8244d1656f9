import SystemPackage

/// How large a message's header block (everything before its first empty
/// line) may be. GMime keeps every header field as objects of a few hundred
/// bytes and libnotmuch indexes the addresses and the subject word by word,
/// so a header block of many short lines, or of many distinct words, costs
/// far more memory than its size (measured with libnotmuch 5.6 and GMime
/// 3.2: about 480 bytes a line, 500 MB for a million `X-H: v` lines; about
/// 180 MB for a 1 MB subject of distinct words). Counted while reading,
/// before GMime sees the message.
///
/// Real mail stays far below both: its header block is a few hundred lines
/// and some tens of kilobytes (a long Received chain, DKIM and ARC
/// signatures, a Cc list of a thousand addresses).
public enum HeaderBlockLimit {
    /// Lines, folded continuation lines included, and a leading mbox
    /// `From ` line; the lines of MIME parts' headers count too. At most
    /// about 5 MB of GMime's and libnotmuch's memory.
    public static let maxLines = 10_000
    /// Bytes, line ends included: twenty times postfix's
    /// header_size_limit (100 KiB for one header field), and room for a
    /// header field of a whole MiB, which earlier versions took (the rules
    /// read the first MiB).
    public static let maxBytes = 2 * MessageHeaders.readLimit

    /// Lines that start with `--` anywhere in the message: each MIME part
    /// starts with one (its boundary), and GMime spends about 2 KB on a
    /// part (240 MB for a 1 MiB message of 175,000 empty parts). Counting
    /// every such line, not only real boundaries, errs on the safe side;
    /// no real message comes near (a digest of a thousand messages has a
    /// thousand). At most about 100 MB of GMime's memory.
    public static let maxBoundaryLines = 50_000

    /// What a message goes over (the first limit it crossed).
    public enum Excess: Equatable, Sendable, CustomStringConvertible {
        case lines
        case bytes
        case boundaryLines

        public var description: String {
            switch self {
            case .lines: return "the message's header has more than \(HeaderBlockLimit.maxLines) lines"
            case .bytes: return "the message's header is larger than \(HeaderBlockLimit.maxBytes >> 20) MiB"
            case .boundaryLines:
                return "the message has more than \(HeaderBlockLimit.maxBoundaryLines) lines starting with '--' (MIME parts)"
            }
        }
    }

    /// The header block of the file at `path`: nil when within both
    /// limits, or when the file cannot be read (its reader says why).
    public static func excess(ofFile path: String) -> Excess? {
        guard let file = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) else { return nil }
        defer { try? file.close() }
        return try? excess(in: file)
    }

    /// Reads `file` from its current offset; nil when it is within the
    /// limits. Streams, 64 KiB at a time, whatever the file's size.
    static func excess(in file: FileDescriptor) throws -> Excess? {
        var counter = Counter()
        var verdict: Excess?
        try file.readChunks { chunk in
            switch counter.consume(chunk) {
            case .needMore: return true
            case .over(let excess):
                verdict = excess
                return false
            }
        }
        return verdict
    }

    /// Counts lines and bytes up to the first empty line (LF LF, or
    /// CRLF CRLF and the mixed forms): GMime reads header fields up to
    /// there, skipping lines that are not fields, so every line before it
    /// is counted. Then, to the end, the lines that start with `--`.
    struct Counter {
        enum Step: Equatable {
            case needMore
            case over(Excess)
        }

        private var inHeader = true
        /// After a line starting with `--`, up to the next empty line.
        private var inPartHeader = false
        private var lines = 0
        private var bytes = 0
        private var boundaryLines = 0
        /// Bytes of the current line before its LF.
        private var lineLength = 0
        private var lineStartsWithCR = false
        private var lineStartsWithDashes = false
        private var previous: UInt8 = 0

        mutating func consume(_ chunk: ArraySlice<UInt8>) -> Step {
            for byte in chunk {
                if inHeader { bytes += 1 }
                if byte == 10 {
                    if inHeader {
                        // An empty line (LF alone, or CR LF) ends the block.
                        if lineLength == 0 || (lineLength == 1 && lineStartsWithCR) {
                            inHeader = false
                        } else {
                            lines += 1
                            if lines > HeaderBlockLimit.maxLines { return .over(.lines) }
                        }
                    } else if lineStartsWithDashes {
                        boundaryLines += 1
                        if boundaryLines > HeaderBlockLimit.maxBoundaryLines { return .over(.boundaryLines) }
                        inPartHeader = true
                    } else if inPartHeader {
                        // A MIME part's header fields cost GMime as the
                        // message's do: they count towards the same limit.
                        if lineLength == 0 || (lineLength == 1 && lineStartsWithCR) {
                            inPartHeader = false
                        } else {
                            lines += 1
                            if lines > HeaderBlockLimit.maxLines { return .over(.lines) }
                        }
                    }
                    lineLength = 0
                    lineStartsWithCR = false
                    lineStartsWithDashes = false
                } else {
                    if lineLength == 0 { lineStartsWithCR = byte == 13 }
                    if lineLength == 1 { lineStartsWithDashes = previous == 45 && byte == 45 }
                    lineLength += 1
                }
                previous = byte
                if inHeader && bytes > HeaderBlockLimit.maxBytes { return .over(.bytes) }
            }
            return .needMore
        }
    }
}
