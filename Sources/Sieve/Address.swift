/// The addresses of an address header (RFC 5322 section 3.4), enough for
/// Sieve's address test: display names, comments, quoted local parts,
/// angle brackets and groups are understood; anything unparsable yields
/// what could be read.
enum AddressList {
    /// Each address as `local@domain` (or just `local` when it has no domain).
    static func addresses(in value: String) -> [String] {
        var addresses: [String] = []
        var current = ""          // text of the mailbox being read, outside <>
        var angle: String?        // text inside <>, which wins when present
        var inAngle = false
        var inQuote = false
        var commentDepth = 0
        var escaped = false
        func flush() {
            let chosen = (angle ?? current).trimmingSpaces
            // A group's display name ends at ':'; its members follow.
            if !chosen.isEmpty { addresses.append(chosen) }
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
            case "(": commentDepth = 1
            case "<": inAngle = true; angle = ""
            case ">": inAngle = false
            case ",", ";": if !inAngle { flush() }
            case ":":
                // A group name, unless inside <> (a source route).
                if inAngle { angle?.append(character) } else { current = "" }
            case " ", "\t", "\r", "\n":
                // Spaces only separate a display name's words; the address has none.
                if inAngle { continue }
                current.append(" ")
            default:
                if inAngle { angle?.append(character) } else { current.append(character) }
            }
        }
        flush()
        // Without <>, a mailbox is one word: `a@b (c)` was handled by the
        // comment rule; `Name a@b` is not valid, take the last word.
        return addresses.map { address in
            let words = address.split(separator: " ")
            return words.count > 1 ? String(words.last!) : address
        }.map { address in
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

extension String {
    var trimmingSpaces: String {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return String(text)
    }
}
