/// The addresses of an address header (RFC 5322 section 3.4), enough for
/// Sieve's address test: display names, comments, quoted local parts,
/// angle brackets and groups are understood; anything unparsable yields
/// what could be read.
enum AddressList {
    /// Each address as `local@domain` (or just `local` when it has no domain).
    static func addresses(in value: String) -> [String] {
        /// Separates the words of a mailbox outside quotes; a quoted
        /// string's spaces are its own (`"john doe"@example.com`).
        let wordBreak: Character = "\u{0}"
        var addresses: [String] = []
        var current = ""          // text of the mailbox being read, outside <>
        var angle: String?        // text inside <>, which wins when present
        var inAngle = false
        var inQuote = false
        var commentDepth = 0
        var escaped = false
        /// `atComma`: a comma ended the mailbox. Headers arrive decoded, so
        /// `=?UTF-8?Q?M=C3=BCller=2C_Hans?= <h@x>` reads `Müller, Hans <h@x>`:
        /// a piece with neither `<>` nor `@` before a comma is taken for part
        /// of a display name, and reading goes on.
        func flush(atComma: Bool = false) {
            if atComma, angle == nil, !current.contains("@"), !current.allSatisfy({ $0 == wordBreak }) {
                current.append(wordBreak)
                return
            }
            let chosen = angle ?? current
            // Without <>, a mailbox is one word: `Name a@b` is not valid; take the last word.
            let words = chosen.split(separator: wordBreak)
            if let last = words.last, !last.isEmpty { addresses.append(String(last)) }
            current = ""
            angle = nil
        }
        for character in value {
            if escaped {
                if inAngle { angle?.append(character) } else if commentDepth == 0 { current.append(character) }
                escaped = false
                continue
            }
            if commentDepth > 0 {
                if character == "\\" { escaped = true } else if character == "(" { commentDepth += 1 } else if character == ")" { commentDepth -= 1 }
                continue
            }
            if inQuote {
                if character == "\\" { escaped = true; continue }
                if character == "\"" { inQuote = false; continue }
                if inAngle { angle?.append(character) } else { current.append(character) }
                continue
            }
            switch character {
            case "\"": inQuote = true
            case "(": commentDepth = 1; current.append(wordBreak)
            case "<": inAngle = true; angle = ""
            case ">": inAngle = false
            case ",": if !inAngle { flush(atComma: true) }
            case ";": if !inAngle { flush() }
            case ":":
                // A group's display name ends at ':' (its members follow), unless inside <> (a source route).
                if inAngle { angle?.append(character) } else { current = "" }
            case " ", "\t", "\r", "\n":
                if !inAngle { current.append(wordBreak) }
            default:
                if inAngle { angle?.append(character) } else { current.append(character) }
            }
        }
        flush()
        return addresses.map { address in
            // A source route `@a,@b:x@y` keeps only the mailbox.
            guard address.hasPrefix("@"), let colon = address.firstIndex(of: ":") else { return address }
            return String(address[address.index(after: colon)...])
        }
    }

    /// One part of an address; nil when it has none (:detail of an address
    /// without `+`).
    static func part(_ part: AddressPart, of address: String, separator: Character = "+") -> String? {
        let at = address.lastIndex(of: "@")
        let local = at.map { String(address[..<$0]) } ?? address
        switch part {
        case .all: return address
        case .localpart: return local
        case .domain: return at.map { String(address[address.index(after: $0)...]) } ?? ""
        case .user:
            return local.firstIndex(of: separator).map { String(local[..<$0]) } ?? local
        case .detail:
            return local.firstIndex(of: separator).map { String(local[local.index(after: $0)...]) }
        }
    }
}
