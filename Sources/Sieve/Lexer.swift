/// Splits a Sieve script into tokens, working on its UTF-8 bytes (a
/// script is read on every delivery; a byte scanner is cheap).
struct Lexer {
    private let bytes: [UInt8]
    private var index = 0
    private var line = 1
    /// The column of `index`, kept as the lexer moves (counting them
    /// afresh would cost a long line quadratic time).
    private var column = 1

    init(_ text: String) {
        bytes = Array(text.utf8)
    }

    /// The largest number a script may write (K, M and G included): 2^53,
    /// far beyond any message size, and safe from overflow when compared.
    static let maximumNumber = 1 << 53

    private var location: SieveLocation { SieveLocation(line: line, column: column) }

    private func peek(_ offset: Int = 0) -> UInt8? {
        index + offset < bytes.count ? bytes[index + offset] : nil
    }

    private mutating func advance() {
        if bytes[index] == UInt8(ascii: "\n") {
            line += 1
            column = 1
        } else if bytes[index] & 0xC0 != 0x80 {
            // A UTF-8 continuation byte belongs to the character before it.
            column += 1
        }
        index += 1
    }

    private func problem(_ message: String, at location: SieveLocation) -> LocatedProblem {
        LocatedProblem(location: location, message: message)
    }

    mutating func next() throws(LocatedProblem) -> LocatedToken {
        try skipWhitespaceAndComments()
        let start = location
        guard let byte = peek() else { return LocatedToken(token: .end, location: start) }
        let punctuation: [UInt8: Token] = [
            UInt8(ascii: "["): .leftBracket, UInt8(ascii: "]"): .rightBracket,
            UInt8(ascii: "("): .leftParenthesis, UInt8(ascii: ")"): .rightParenthesis,
            UInt8(ascii: "{"): .leftBrace, UInt8(ascii: "}"): .rightBrace,
            UInt8(ascii: ","): .comma, UInt8(ascii: ";"): .semicolon,
        ]
        if let token = punctuation[byte] {
            advance()
            return LocatedToken(token: token, location: start)
        }
        if byte == UInt8(ascii: "\"") { return LocatedToken(token: .string(try quotedString(start)), location: start) }
        if byte == UInt8(ascii: ":") {
            advance()
            guard let first = peek(), Self.startsIdentifier(first) else {
                throw problem("expected a tag name after ':'", at: start)
            }
            return LocatedToken(token: .tag(identifier()), location: start)
        }
        if Self.isDigit(byte) { return LocatedToken(token: .number(try number(start)), location: start) }
        if Self.startsIdentifier(byte) {
            let name = identifier()
            if name.lowercased() == "text", peek() == UInt8(ascii: ":") {
                advance()
                return LocatedToken(token: .string(try multilineString(start)), location: start)
            }
            return LocatedToken(token: .identifier(name), location: start)
        }
        let shown = byte < 0x80 && byte >= 0x20 ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
        throw problem("unexpected \(shown)", at: start)
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private static func startsIdentifier(_ byte: UInt8) -> Bool {
        (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") || byte == UInt8(ascii: "_")
    }

    private mutating func identifier() -> String {
        let start = index
        while let byte = peek(), Self.startsIdentifier(byte) || Self.isDigit(byte) { advance() }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    private mutating func number(_ start: SieveLocation) throws(LocatedProblem) -> Int {
        var value = 0
        while let byte = peek(), Self.isDigit(byte) {
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
            if value > Self.maximumNumber { throw problem("number too large", at: start) }
            advance()
        }
        // RFC 5228 2.4.1: K, M and G count in powers of 1024.
        let multipliers: [UInt8: Int] = [UInt8(ascii: "k"): 1 << 10, UInt8(ascii: "m"): 1 << 20, UInt8(ascii: "g"): 1 << 30]
        if let byte = peek(), let multiplier = multipliers[byte | 0x20] {
            advance()
            guard value <= Self.maximumNumber / multiplier else { throw problem("number too large", at: start) }
            value *= multiplier
        }
        if let byte = peek(), Self.startsIdentifier(byte) {
            throw problem("a number may only be followed by K, M or G", at: location)
        }
        return value
    }

    /// `"…"`: `\"` and `\\` are the quote and the backslash; any other
    /// backslash is dropped (RFC 5228 2.4.2).
    private mutating func quotedString(_ start: SieveLocation) throws(LocatedProblem) -> String {
        advance()
        var value: [UInt8] = []
        while true {
            guard let byte = peek() else { throw problem("unterminated string: expected a closing '\"'", at: start) }
            advance()
            if byte == UInt8(ascii: "\"") { break }
            if byte == UInt8(ascii: "\\") {
                guard let escaped = peek() else { continue }
                advance()
                value.append(escaped)
                continue
            }
            value.append(byte)
        }
        return String(decoding: value, as: UTF8.self)
    }

    /// `text:` up to a line holding only `.`; a line starting `..` loses
    /// one dot. After `text:` only blanks and a `#` comment may follow on
    /// its line.
    private mutating func multilineString(_ start: SieveLocation) throws(LocatedProblem) -> String {
        while let byte = peek(), byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { advance() }
        if peek() == UInt8(ascii: "#") {
            while let byte = peek(), byte != UInt8(ascii: "\n") { advance() }
        }
        if peek() == UInt8(ascii: "\r") { advance() }
        guard peek() == UInt8(ascii: "\n") else {
            throw problem("expected the end of the line after 'text:'", at: location)
        }
        advance()
        var value: [UInt8] = []
        while true {
            guard index < bytes.count else {
                throw problem("unterminated multi-line string: expected a line with only '.'", at: start)
            }
            let lineBegin = index
            while let byte = peek(), byte != UInt8(ascii: "\n") { advance() }
            var content = bytes[lineBegin..<index]
            let hadNewline = peek() != nil
            if hadNewline { advance() }
            if content.last == UInt8(ascii: "\r") { content = content.dropLast() }
            if content.count == 1, content.first == UInt8(ascii: ".") { break }
            if content.first == UInt8(ascii: "."), content.dropFirst().first == UInt8(ascii: ".") {
                content = content.dropFirst()
            }
            value += content
            if hadNewline { value += [UInt8(ascii: "\r"), UInt8(ascii: "\n")] }
        }
        return String(decoding: value, as: UTF8.self)
    }

    private mutating func skipWhitespaceAndComments() throws(LocatedProblem) {
        while let byte = peek() {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: "\n"):
                advance()
            case UInt8(ascii: "#"):
                while let next = peek(), next != UInt8(ascii: "\n") { advance() }
            case UInt8(ascii: "/") where peek(1) == UInt8(ascii: "*"):
                let start = location
                advance(); advance()
                while !(peek() == UInt8(ascii: "*") && peek(1) == UInt8(ascii: "/")) {
                    guard peek() != nil else { throw problem("unterminated comment: expected '*/'", at: start) }
                    advance()
                }
                advance(); advance()
            default:
                return
            }
        }
    }
}
