/// Why a path in MAIL FROM or RCPT TO could not be read.
enum PathError: Error, Equatable {
    case missingBrackets
    case unterminated
    case badSourceRoute
    case badLocalPart
    case badDomain
    case missingDomain
    /// A control character or a byte that cannot be in an address.
    case notPrintable
    /// Bytes over 0x7F that are not UTF-8 (RFC 6531 allows UTF-8 only).
    case invalidUTF8
    /// A C1 control, or a line or paragraph separator, spelt in UTF-8.
    case controlCharacter
    case tooLong
    /// `<>` where a mailbox is needed (RCPT TO).
    case empty
    case junkAfterPath
}

/// A path of RFC 5321 4.1.2 as the engine keeps it, with what followed it
/// on the line (the parameters).
struct MailPath: Equatable {
    /// The mailbox, source route removed; "" for the null path `<>`.
    var address: String
    var rest: ArraySlice<UInt8>

    /// RFC 5321 4.5.3.1.3 allows a path of 256 octets; the brackets are not
    /// kept, so the mailbox alone is held to that.
    static let maximumLength = 256

    /// Reads `<[@route,@route:]local@domain>` (or `<>` when `allowsNull`)
    /// from the start of `text`. The local part is a dot-string or a quoted
    /// string (given back unquoted); there must be exactly one `@` outside quotes,
    /// with a domain after it, except for `<postmaster>`, which RFC 5321
    /// 4.5.1 requires to be accepted without one.
    static func parse(_ text: ArraySlice<UInt8>, allowsNull: Bool) throws(PathError) -> MailPath {
        guard text.first == ASCII.lessThan else { throw .missingBrackets }
        let inside = text.dropFirst()
        let close = try closingBracket(in: inside)
        var mailbox = inside[inside.startIndex..<close]
        let rest = inside[(close + 1)...]
        guard rest.isEmpty || rest.first == ASCII.space else { throw .junkAfterPath }
        guard mailbox.allSatisfy({ ASCII.isPrintable($0) || $0 >= 0x80 }) else { throw .notPrintable }

        if mailbox.isEmpty {
            guard allowsNull else { throw .empty }
            return MailPath(address: "", rest: rest)
        }
        if mailbox.first == ASCII.at {
            mailbox = try droppingSourceRoute(mailbox)
        }
        guard mailbox.count <= maximumLength else { throw .tooLong }
        try checkMailbox(mailbox)
        guard let address = String(validating: unquoted(mailbox), as: UTF8.self) else { throw .invalidUTF8 }
        if address.unicodeScalars.contains(where: isControl) { throw .controlCharacter }
        return MailPath(address: address, rest: rest)
    }

    /// The address holds UTF-8 beyond ASCII: it needs SMTPUTF8 (RFC 6531).
    var isInternational: Bool { !address.utf8.allSatisfy { $0 < 0x80 } }

    /// What the command line already refuses as bytes (C0, DEL) and what
    /// UTF-8 adds: C1 controls (NEL among them) and U+2028, U+2029, which
    /// some readers of a log or a header take for line ends.
    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
    }

    /// The mailbox as the MTA means it: a quoted local part without its
    /// quotes and backslashes. postfix quotes `.dot@example.org` as
    /// `".dot"@example.org` on the wire and passes `.dot@example.org` to
    /// pipe(8): the server must see the same recipient as the pipe mode,
    /// never a mailbox whose name holds the quotes.
    private static func unquoted(_ mailbox: ArraySlice<UInt8>) -> [UInt8] {
        guard mailbox.first == ASCII.quote, let end = try? closingQuote(in: mailbox) else { return Array(mailbox) }
        var local: [UInt8] = []
        var escaped = false
        for byte in mailbox[(mailbox.startIndex + 1)..<end] {
            if !escaped && byte == ASCII.backslash {
                escaped = true
                continue
            }
            escaped = false
            local.append(byte)
        }
        return local + mailbox[(end + 1)...]
    }

    /// The `>` that closes the path: the first one outside a quoted string.
    private static func closingBracket(in text: ArraySlice<UInt8>) throws(PathError) -> Int {
        var quoted = false
        var escaped = false
        for index in text.indices {
            let byte = text[index]
            if escaped {
                escaped = false
            } else if quoted && byte == ASCII.backslash {
                escaped = true
            } else if byte == ASCII.quote {
                quoted.toggle()
            } else if !quoted && byte == ASCII.greaterThan {
                return index
            }
        }
        throw .unterminated
    }

    /// `@a,@b:mailbox` to `mailbox`. The route's hosts are obsolete and
    /// ignored (RFC 5321 C), but they must at least have the route's shape.
    private static func droppingSourceRoute(_ path: ArraySlice<UInt8>) throws(PathError) -> ArraySlice<UInt8> {
        guard let colon = path.firstIndex(of: ASCII.colon) else { throw .badSourceRoute }
        let route = path[path.startIndex..<colon]
        for hop in route.split(separator: ASCII.comma, omittingEmptySubsequences: false) {
            guard hop.first == ASCII.at, hop.count > 1, isDomain(hop.dropFirst()) else { throw .badSourceRoute }
        }
        return path[(colon + 1)...]
    }

    private static func checkMailbox(_ mailbox: ArraySlice<UInt8>) throws(PathError) {
        let local: ArraySlice<UInt8>
        let afterLocal: ArraySlice<UInt8>
        if mailbox.first == ASCII.quote {
            let end = try closingQuote(in: mailbox)
            local = mailbox[mailbox.startIndex...end]
            afterLocal = mailbox[(end + 1)...]
        } else {
            let at = mailbox.firstIndex(of: ASCII.at) ?? mailbox.endIndex
            local = mailbox[mailbox.startIndex..<at]
            afterLocal = mailbox[at...]
            guard !local.isEmpty, local.allSatisfy(isDotStringByte) else { throw .badLocalPart }
        }
        guard let at = afterLocal.first else {
            if ASCII.matches(local, "POSTMASTER") { return }
            throw .missingDomain
        }
        guard at == ASCII.at else { throw .badLocalPart }
        let domain = afterLocal.dropFirst()
        guard !domain.isEmpty else { throw .missingDomain }
        guard isDomain(domain) else { throw .badDomain }
    }

    /// The index of the quote closing the quoted string that opens `text`.
    private static func closingQuote(in text: ArraySlice<UInt8>) throws(PathError) -> Int {
        var escaped = false
        for index in text.indices.dropFirst() {
            let byte = text[index]
            if escaped {
                escaped = false
            } else if byte == ASCII.backslash {
                escaped = true
            } else if byte == ASCII.quote {
                return index
            }
        }
        throw .badLocalPart
    }

    /// atext and dots (RFC 5321 4.1.2), and UTF-8 (RFC 6531 3.3; checked
    /// as a whole once the path is read). Dots are not checked for place:
    /// "a..b" and "a." are out there, and refusing them loses mail.
    private static func isDotStringByte(_ byte: UInt8) -> Bool {
        byte >= 0x80 || (ASCII.isPrintable(byte) && !" \"(),:;<>@[\\]".utf8.contains(byte))
    }

    /// A host name (U-labels in UTF-8 included) or an address literal in
    /// brackets; loosely: the visible characters that cannot end or split a path.
    private static func isDomain(_ text: ArraySlice<UInt8>) -> Bool {
        !text.isEmpty && text.allSatisfy { $0 >= 0x80 || (ASCII.isPrintable($0) && !" \"(),;<>@\\".utf8.contains($0)) }
    }
}
