/// RFC 5229's variables: named ones set by `set`, and the match variables
/// `${0}`…`${9}` of the last successful `:matches` or `:regex`.
struct Variables {
    /// The longest value a variable holds (Pigeonhole's default is 4 KiB):
    /// a header copied into a variable cannot grow a run without bound.
    static let maximumValueLength = 4096
    /// Match variables kept: ${0} to ${9}, as RFC 5229 requires at least.
    static let matchVariableCount = 10

    /// Each value keeps which parts came from the message (`SieveText`).
    private var named: [String: SieveText] = [:]
    /// Always text from the message: what a test matched.
    var matches: [String] = []

    func value(_ name: String) -> String { text(name).plain }

    func text(_ name: String) -> SieveText { named[name.lowercased()] ?? SieveText() }

    mutating func set(_ name: String, _ value: SieveText) {
        named[name.lowercased()] = value.bounded(Self.maximumValueLength)
    }

    mutating func setMatches(_ captures: [String]) {
        matches = Array(captures.prefix(Self.matchVariableCount)).map(Self.bounded)
    }

    static func bounded(_ value: String) -> String {
        guard value.utf8.count > maximumValueLength else { return value }
        var end = value.utf8.index(value.utf8.startIndex, offsetBy: maximumValueLength)
        while end > value.startIndex, !value.unicodeScalars.indices.contains(end) { end = value.utf8.index(before: end) }
        return String(value[..<end])
    }

    /// `text` with `${name}` and `${N}` replaced. A reference that is not
    /// well formed stays as written; an unknown variable is empty.
    func expand(_ string: ScriptString) -> String { expandMarked(string).plain }

    /// As `expand`, keeping apart what the script wrote and what came from
    /// the message: a match variable is from the message, a named variable
    /// is what it was set from.
    func expandMarked(_ string: ScriptString) -> SieveText {
        guard string.mayExpand else { return SieveText(script: string.text) }
        let text = string.text
        var result = SieveText()
        var index = text.startIndex
        while let open = text[index...].referenceStart {
            result.append(String(text[index..<open.lowerBound]), fromMessage: false)
            guard let close = text[open.upperBound...].firstIndex(of: "}") else {
                index = open.lowerBound
                break
            }
            let name = String(text[open.upperBound..<close])
            if let number = Int(name), name.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) {
                result.append(number < matches.count ? matches[number] : "", fromMessage: true)
                index = text.index(after: close)
            } else if Compiler.isVariableName(name) {
                result.append(self.text(name))
                index = text.index(after: close)
            } else {
                // Not a reference: keep `${` and look again after it.
                result.append("${", fromMessage: false)
                index = open.upperBound
            }
            if result.plain.utf8.count > Self.maximumValueLength * 4 { break }
        }
        result.append(String(text[index...]), fromMessage: false)
        return result.bounded(Self.maximumValueLength)
    }

    /// RFC 5229 section 4.1, highest precedence first (the compiler sorted
    /// them). Origins are kept piece by piece; a length is from the message
    /// when any of what it measures is.
    static func apply(_ modifiers: [Modifier], to value: SieveText) -> SieveText {
        var value = value
        for modifier in modifiers {
            switch modifier {
            case .lowerfirst, .upperfirst:
                guard let first = value.pieces.firstIndex(where: { !$0.text.isEmpty }) else { continue }
                var result = SieveText()
                for (index, piece) in value.pieces.enumerated() {
                    result.append(index == first ? apply(modifier, to: piece.text) : piece.text, fromMessage: piece.fromMessage)
                }
                value = result
            case .length:
                value = value.hasMessageText ? SieveText(message: String(value.plain.count))
                    : SieveText(script: String(value.plain.count))
            default:
                value = value.mapPieces { apply(modifier, to: $0) }
            }
        }
        return value
    }

    static func apply(_ modifiers: [Modifier], to value: String) -> String {
        apply(modifiers, to: SieveText(script: value)).plain
    }

    private static func apply(_ modifier: Modifier, to value: String) -> String {
        switch modifier {
        case .lower: return value.lowercased()
        case .upper: return value.uppercased()
        case .lowerfirst: return (value.first.map { String($0).lowercased() } ?? "") + value.dropFirst()
        case .upperfirst: return (value.first.map { String($0).uppercased() } ?? "") + value.dropFirst()
        case .quotewildcard:
            var quoted = ""
            for character in value {
                if character == "*" || character == "?" || character == "\\" { quoted.append("\\") }
                quoted.append(character)
            }
            return quoted
        case .quoteregex:
            var quoted = ""
            for character in value {
                if "\\^$.[]|()?*+{}".contains(character) { quoted.append("\\") }
                quoted.append(character)
            }
            return quoted
        case .length:
            return String(value.count)
        }
    }
}

/// RFC 5228 2.4.2.4's encoded characters, `${hex:…}` and `${unicode:…}`,
/// replaced once when the script is checked.
enum EncodedCharacters {
    static func decode(_ text: String) -> String {
        guard Substring(text).referenceStart != nil else { return text }
        var result = ""
        var rest = Substring(text)
        while let open = rest.referenceStart {
            result += rest[..<open.lowerBound]
            let after = rest[open.upperBound...]
            guard let close = after.firstIndex(of: "}") else { rest = rest[open.lowerBound...]; break }
            let body = after[..<close]
            if let decoded = decodeBody(body) {
                result += decoded
            } else {
                result += rest[open.lowerBound...close]
            }
            rest = after[after.index(after: close)...]
        }
        return result + rest
    }

    private static func decodeBody(_ body: Substring) -> String? {
        guard let colon = body.firstIndex(of: ":") else { return nil }
        let kind = body[..<colon].lowercased()
        let units = body[body.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard kind == "hex" || kind == "unicode", !units.isEmpty else { return nil }
        if kind == "hex" {
            var bytes: [UInt8] = []
            for unit in units {
                guard unit.count <= 2, let byte = UInt8(unit, radix: 16) else { return nil }
                bytes.append(byte)
            }
            return String(validating: bytes, as: UTF8.self)
        }
        var scalars = String.UnicodeScalarView()
        for unit in units {
            guard unit.count <= 6, let value = UInt32(unit, radix: 16), let scalar = Unicode.Scalar(value) else { return nil }
            scalars.append(scalar)
        }
        return String(scalars)
    }
}

extension Substring {
    /// Where the first `${` is, as the range of those two characters.
    var referenceStart: Range<String.Index>? {
        var index = startIndex
        while let dollar = self[index...].firstIndex(of: "$") {
            let next = self.index(after: dollar)
            if next < endIndex, self[next] == "{" { return dollar..<self.index(after: next) }
            index = next
        }
        return nil
    }
}
