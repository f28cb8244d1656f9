/// Why the parameters after a path could not be read.
enum ParameterError: Error, Equatable {
    /// Not `keyword[=value]` (RFC 5321 4.1.2), or a keyword given twice.
    case malformed
    /// A parameter the command does not take.
    case unknown(String)
    /// A known parameter with a value it cannot have.
    case badValue(String)
}

/// The `keyword[=value]` parameters after a path, keywords in upper case,
/// in the order given.
struct MailParameters: Equatable {
    var items: [(keyword: String, value: String?)]

    static func == (lhs: MailParameters, rhs: MailParameters) -> Bool {
        lhs.items.elementsEqual(rhs.items) { $0.keyword == $1.keyword && $0.value == $1.value }
    }

    /// `text` is what followed the path: empty, or parameters after spaces.
    static func parse(_ text: ArraySlice<UInt8>) throws(ParameterError) -> MailParameters {
        var items: [(keyword: String, value: String?)] = []
        for word in text.split(separator: ASCII.space) {
            let equals = word.firstIndex(of: ASCII.equals)
            let keyword = word[word.startIndex..<(equals ?? word.endIndex)]
            guard let first = keyword.first, ASCII.isLetter(first) || ASCII.isDigit(first),
                  keyword.allSatisfy({ ASCII.isLetter($0) || ASCII.isDigit($0) || $0 == ASCII.hyphen })
            else { throw .malformed }
            var value: String?
            if let equals {
                let text = word[(equals + 1)...]
                // esmtp-value: visible characters but "=", at least one.
                guard !text.isEmpty, text.allSatisfy({ (0x21...0x7E).contains($0) && $0 != ASCII.equals })
                else { throw .malformed }
                value = String(decoding: text, as: UTF8.self)
            }
            let name = ASCII.uppercased(keyword)
            guard !items.contains(where: { $0.keyword == name }) else { throw .malformed }
            items.append((name, value))
        }
        return MailParameters(items: items)
    }
}

/// What MAIL FROM's parameters say about the message.
struct MailOptions: Equatable {
    /// SIZE=; a number too large for Int is kept as Int.max, which is over
    /// any limit, so that it is refused as too big rather than as malformed.
    var declaredSize: Int?
    var eightBit = false
    /// SMTPUTF8 (RFC 6531): the envelope may hold UTF-8 addresses.
    var smtputf8 = false

    /// SIZE (RFC 1870), BODY (RFC 6152) and SMTPUTF8 (RFC 6531); nothing
    /// else is advertised.
    init(_ parameters: MailParameters) throws(ParameterError) {
        for (keyword, value) in parameters.items {
            switch keyword {
            case "SIZE":
                guard let value, let size = Self.decimal(value) else { throw .badValue(keyword) }
                declaredSize = size
            case "BODY":
                switch value.map({ ASCII.uppercased($0.utf8) }) {
                case "7BIT": eightBit = false
                case "8BITMIME": eightBit = true
                default: throw .badValue(keyword)
                }
            case "SMTPUTF8":
                guard value == nil else { throw .badValue(keyword) }
                smtputf8 = true
            default:
                throw .unknown(keyword)
            }
        }
    }

    /// Digits only, saturating at Int.max.
    static func decimal(_ text: String) -> Int? {
        guard !text.isEmpty, text.utf8.allSatisfy(ASCII.isDigit) else { return nil }
        var number = 0
        for byte in text.utf8 {
            let (shifted, overflowTimes) = number.multipliedReportingOverflow(by: 10)
            let (sum, overflowPlus) = shifted.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            if overflowTimes || overflowPlus { return Int.max }
            number = sum
        }
        return number
    }
}

/// What RCPT TO's parameters hold: ORCPT and NOTIFY (RFC 3461), kept for
/// the server; DSN is not advertised, but clients send them anyway.
struct RecipientOptions: Equatable {
    var parameters: [String: String] = [:]

    init(_ parameters: MailParameters) throws(ParameterError) {
        for (keyword, value) in parameters.items {
            guard keyword == "ORCPT" || keyword == "NOTIFY" else { throw .unknown(keyword) }
            guard let value else { throw .badValue(keyword) }
            self.parameters[keyword] = value
        }
    }
}
