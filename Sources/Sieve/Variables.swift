/// RFC 5229's variables: named ones set by `set`, and the match variables
/// `${0}`…`${9}` of the last successful `:matches` or `:regex`.
struct Variables {
    /// The longest value a variable holds (Pigeonhole's default is 4 KiB):
    /// a header copied into a variable cannot grow a run without bound.
    static let maximumValueLength = 4096
    /// Match variables kept: ${0} to ${9}, as RFC 5229 requires at least.
    static let matchVariableCount = 10

    private var named: [String: String] = [:]
    var matches: [String] = []

    func value(_ name: String) -> String { named[name.lowercased()] ?? "" }

    mutating func set(_ name: String, _ value: String) {
        named[name.lowercased()] = Self.bounded(value)
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
    func expand(_ string: ScriptString) -> String {
        guard string.mayExpand else { return string.text }
        let text = string.text
        var result = ""
        var index = text.startIndex
        while let open = text[index...].referenceStart {
            result += text[index..<open.lowerBound]
            guard let close = text[open.upperBound...].firstIndex(of: "}") else {
                index = open.lowerBound
                break
            }
            let name = String(text[open.upperBound..<close])
            if let number = Int(name), name.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) {
                result += number < matches.count ? matches[number] : ""
                index = text.index(after: close)
            } else if Compiler.isVariableName(name) {
                result += value(name)
                index = text.index(after: close)
            } else {
                // Not a reference: keep `${` and look again after it.
                result += "${"
                index = open.upperBound
            }
            if result.utf8.count > Self.maximumValueLength * 4 { break }
        }
        result += text[index...]
        return Self.bounded(result)
    }

    /// RFC 5229 section 4.1, highest precedence first (the compiler sorted them).
    static func apply(_ modifiers: [Modifier], to value: String) -> String {
        var value = value
        for modifier in modifiers {
            switch modifier {
            case .lower: value = value.lowercased()
            case .upper: value = value.uppercased()
            case .lowerfirst: value = (value.first.map { String($0).lowercased() } ?? "") + value.dropFirst()
            case .upperfirst: value = (value.first.map { String($0).uppercased() } ?? "") + value.dropFirst()
            case .quotewildcard:
                var quoted = ""
                for character in value {
                    if character == "*" || character == "?" || character == "\\" { quoted.append("\\") }
                    quoted.append(character)
                }
                value = quoted
            case .quoteregex:
                var quoted = ""
                for character in value {
                    if "\\^$.[]|()?*+{}".contains(character) { quoted.append("\\") }
                    quoted.append(character)
                }
                value = quoted
            case .length:
                value = String(value.count)
            }
        }
        return value
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
