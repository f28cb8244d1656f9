/// One reply to the client: a code, an RFC 3463 enhanced status code and one
/// or more lines of text.
public struct LMTPReply: Equatable, Sendable {
    /// The three-digit reply code, 250 or 550 say.
    public var code: Int
    /// The enhanced status code, "2.1.5" say. Every reply after LHLO carries
    /// one (ENHANCEDSTATUSCODES is advertised); the greeting, the LHLO reply
    /// and 354 go without.
    public var enhanced: String?
    /// The text, a line each; none gives a reply of the codes alone.
    public var lines: [String]

    public init(_ code: Int, _ enhanced: String?, _ lines: String...) {
        self.init(code, enhanced, lines: lines)
    }

    public init(_ code: Int, _ enhanced: String?, lines: [String]) {
        self.code = code
        self.enhanced = enhanced
        self.lines = lines
    }

    /// The reply as it goes on the wire, "250-2.0.0 a\r\n250 2.0.0 b\r\n".
    /// Whatever the fields hold, the result is a well-formed reply: text is
    /// cut to printable ASCII (a CR or LF in it would forge a further reply),
    /// each line fits RFC 5321's 512 octets, a code outside 100...599 goes
    /// out as 451, and an enhanced code of the wrong shape is left out.
    public var bytes: [UInt8] {
        let code = (100...599).contains(self.code) ? self.code : 451
        let codeBytes = Array(String(code).utf8)
        let enhancedBytes = enhanced.flatMap { Self.isWellFormedEnhancedCode($0) ? Array($0.utf8) : nil }
        let texts = lines.isEmpty ? [""] : lines
        var wire: [UInt8] = []
        for (position, text) in texts.enumerated() {
            var line = codeBytes
            line.append(position == texts.count - 1 ? ASCII.space : ASCII.hyphen)
            if let enhancedBytes {
                line += enhancedBytes
                line.append(ASCII.space)
            }
            let room = max(Self.maximumLineLength - 2 - line.count, 0)
            line += text.utf8.prefix(room).map { ASCII.isPrintable($0) ? $0 : ASCII.questionMark }
            while line.last == ASCII.space { line.removeLast() }
            wire += line
            wire += [ASCII.cr, ASCII.lf]
        }
        return wire
    }

    /// RFC 5321 4.5.3.1.5: a reply line, CRLF included.
    static let maximumLineLength = 512

    /// class "." subject "." detail (RFC 3463): a class of 2, 4 or 5, then
    /// one to three digits twice.
    static func isWellFormedEnhancedCode(_ text: String) -> Bool {
        let parts = text.utf8.split(separator: ASCII.dot, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 1, let first = parts[0].first,
              [UInt8(ascii: "2"), UInt8(ascii: "4"), UInt8(ascii: "5")].contains(first) else { return false }
        return parts.dropFirst().allSatisfy { (1...3).contains($0.count) && $0.allSatisfy(ASCII.isDigit) }
    }
}
