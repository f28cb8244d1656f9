/// A string as a run of the script has it after expansion, remembering
/// which parts the script wrote and which came from the message (header
/// values, addresses, match variables, and variables set from those).
///
/// Where a string is read as a list (the `tag` action's operations,
/// imap4flags' flag lists), only what the script wrote separates items: an
/// expanded value always stays inside the item it is in. A header holding
/// `x -inbox +spam` therefore never becomes three tag operations, and a
/// header holding `\Seen $Junk` never becomes two flags.
public struct SieveText: Sendable, Equatable, CustomStringConvertible {
    public struct Piece: Sendable, Equatable {
        public internal(set) var text: String
        /// Text from the message, not from the script.
        public let fromMessage: Bool
    }

    /// In order; two neighbours never have the same origin. A value from
    /// the message that is empty still has its piece: an empty expansion
    /// is not the same as none.
    public private(set) var pieces: [Piece] = []

    init() {}

    init(script text: String) { append(text, fromMessage: false) }

    init(message text: String) { append(text, fromMessage: true) }

    /// The text itself, as Pigeonhole would have it.
    public var plain: String { pieces.map(\.text).joined() }

    public var description: String { plain }

    /// Whether any of it comes from the message.
    public var hasMessageText: Bool { pieces.contains { $0.fromMessage } }

    mutating func append(_ text: String, fromMessage: Bool) {
        if let last = pieces.indices.last, pieces[last].fromMessage == fromMessage, !(fromMessage && text.isEmpty) {
            pieces[last].text += text
        } else if !text.isEmpty || fromMessage {
            pieces.append(Piece(text: text, fromMessage: fromMessage))
        }
    }

    mutating func append(_ other: SieveText) {
        for piece in other.pieces { append(piece.text, fromMessage: piece.fromMessage) }
    }

    /// Each piece's text changed by `transform`, origins kept (the case
    /// and quoting modifiers work character by character).
    func mapPieces(_ transform: (String) -> String) -> SieveText {
        var result = SieveText()
        for piece in pieces { result.append(transform(piece.text), fromMessage: piece.fromMessage) }
        return result
    }

    /// The items of a list the script wrote: split where the script wrote
    /// spaces or tabs, never inside text from the message.
    public func words() -> [SieveText] {
        var words: [SieveText] = []
        var current = SieveText()
        var inWord = false
        for piece in pieces {
            if piece.fromMessage {
                current.append(piece.text, fromMessage: true)
                inWord = true
                continue
            }
            for character in piece.text {
                if character == " " || character == "\t" {
                    if inWord { words.append(current) }
                    current = SieveText()
                    inWord = false
                } else {
                    current.append(String(character), fromMessage: false)
                    inWord = true
                }
            }
        }
        if inWord { words.append(current) }
        return words
    }

    /// The text as a notmuch query (vnd.notmuch's `notmuch` test), where a
    /// value from the message is one phrase and never query syntax: it
    /// keeps letters, digits, `@._+-'` and spaces (anything else becomes a
    /// space: no quote, colon, brace or parenthesis survives), and is put
    /// in double quotes unless the script already wrote them around it.
    /// `from:${1}` with `x or tag:inbox` is `from:"x or tag inbox"`.
    public var notmuchQuery: String {
        var query = ""
        for (index, piece) in pieces.enumerated() {
            guard piece.fromMessage else { query += piece.text; continue }
            let words = String(piece.text.map { $0.isLetter || $0.isNumber || "@._+-' ".contains($0) ? $0 : " " })
            let quotedBefore = index > 0 && pieces[index - 1].text.hasSuffix("\"")
            let quotedAfter = index + 1 < pieces.count && pieces[index + 1].text.hasPrefix("\"")
            query += quotedBefore && quotedAfter ? words : "\"" + words + "\""
        }
        return query
    }

    /// At most `bytes` bytes of UTF-8, never half a character.
    func bounded(_ bytes: Int) -> SieveText {
        guard plain.utf8.count > bytes else { return self }
        var result = SieveText()
        var left = bytes
        for piece in pieces {
            var kept = ""
            for scalar in piece.text.unicodeScalars {
                let size = String(scalar).utf8.count
                if size > left { left = 0; break }
                kept.unicodeScalars.append(scalar)
                left -= size
            }
            result.append(kept, fromMessage: piece.fromMessage)
            if left == 0 { break }
        }
        return result
    }
}
