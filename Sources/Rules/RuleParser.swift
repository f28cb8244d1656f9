/// A mistake in a rules file, located to the character.
public struct RuleSyntaxError: Error, Sendable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let column: Int
    public let message: String

    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// Reads the rules format:
///
///     # comment
///     +spam -inbox folder:Junk stop -- header:X-Spam-Flag~/^yes/ or header:X-Spam~/^yes/
///     +muted -inbox -- thread:{tag:muted}
///         and not tag:flagged          (an indented line continues the rule)
///
/// Left of `--` are actions, as in `notmuch tag --batch`; right of it the
/// condition. Every error is reported, not only the first.
public enum RuleParser {
    /// How deeply `(` and `not` may nest. The parser and the evaluator
    /// recurse once per level, and a thread's stack ends near ten thousand
    /// levels; no sensible rule needs more than a handful.
    public static let maximumDepth = 100

    /// The longest rule, continuation lines included (256 KiB): room for
    /// thousands of terms, and a bound for text that does not come from
    /// a file (whose size is bounded where it is read).
    public static let maximumRuleLength = 1 << 18

    public static func parse(_ text: String, origin: String) -> (RuleSet, [RuleSyntaxError]) {
        var rules: [Rule] = []
        var errors: [RuleSyntaxError] = []
        for logical in logicalLines(text) {
            var parser = LineParser(bytes: logical.bytes, positions: logical.positions, origin: origin)
            if logical.bytes.count > maximumRuleLength {
                let start = logical.positions[0]
                errors.append(RuleSyntaxError(file: origin, line: start.line, column: start.column,
                                              message: "rule longer than \(maximumRuleLength) bytes"))
                continue
            }
            do {
                rules.append(try parser.parseRule(line: logical.positions[0].line))
            } catch {
                errors.append(error)
            }
        }
        return (RuleSet(rules: rules, origin: origin), errors)
    }

    /// A rule's bytes (UTF-8) with each byte's place in the file; columns
    /// count characters, not bytes. Bytes, because a rules file is read on
    /// every delivery and a byte scanner is many times faster than one over
    /// Characters.
    struct LogicalLine {
        var bytes: [UInt8] = []
        var positions: [(line: Int, column: Int)] = []
    }

    /// Joins indented continuation lines to their rule; drops comments and blanks.
    static func logicalLines(_ text: String) -> [LogicalLine] {
        var result: [LogicalLine] = []
        var lineNumber = 0
        for rawLine in Array(text.utf8).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = rawLine.last == UInt8(ascii: "\r") ? rawLine.dropLast() : rawLine
            let trimmed = line.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            if trimmed.isEmpty || trimmed.first == UInt8(ascii: "#") { continue }
            let continues = trimmed.startIndex != line.startIndex && !result.isEmpty
            if !continues { result.append(LogicalLine()) }
            var column = trimmed.startIndex - line.startIndex + 1
            if continues {
                result[result.count - 1].bytes.append(UInt8(ascii: " "))
                result[result.count - 1].positions.append((lineNumber, column - 1))
            }
            for byte in trimmed {
                // A UTF-8 continuation byte belongs to the character before it.
                if byte & 0xC0 == 0x80 { column -= 1 }
                result[result.count - 1].bytes.append(byte)
                result[result.count - 1].positions.append((lineNumber, column))
                column += 1
            }
        }
        return result
    }
}

/// Parses one logical line.
struct LineParser {
    let bytes: [UInt8]
    let positions: [(line: Int, column: Int)]
    let origin: String
    var index = 0
    /// The `(` and `not` open around the current position.
    var depth = 0

    init(bytes: [UInt8], positions: [(line: Int, column: Int)], origin: String) {
        self.bytes = bytes
        self.positions = positions
        self.origin = origin
    }

    func error(_ message: String, at position: Int? = nil) -> RuleSyntaxError {
        let at = min(position ?? index, positions.count - 1)
        let place = positions[max(at, 0)]
        let column = (position ?? index) >= positions.count ? place.column + 1 : place.column
        return RuleSyntaxError(file: origin, line: place.line, column: column, message: message)
    }

    mutating func parseRule(line: Int) throws(RuleSyntaxError) -> Rule {
        var actions: [Action] = []
        var sawSeparator = false
        while let (word, start) = nextWord() {
            if word == "--" { sawSeparator = true; break }
            actions.append(try parseAction(word, at: start))
        }
        guard sawSeparator else {
            throw error("expected '--' between the actions and the condition, as in: +tag -- from:alice@example.org")
        }
        guard !actions.isEmpty else { throw error("expected at least one action (+tag, -tag, folder:NAME, stop, discard) before '--'", at: 0) }
        skipSpaces()
        guard index < bytes.count else { throw error("expected a condition after '--' (use * to match every message)") }
        let condition = try parseOr()
        skipSpaces()
        if index < bytes.count {
            throw error(bytes[index] == UInt8(ascii: ")") ? "unbalanced ')'" : "expected 'and', 'or' or the end of the rule")
        }
        if condition.usesCaptures == false, actions.contains(where: \.usesCaptures) {
            throw error("an action uses $1… but the condition has no regular expression to capture from", at: 0)
        }
        return Rule(line: line, actions: actions, condition: condition.simplified,
                    text: String(decoding: bytes, as: UTF8.self))
    }

    // MARK: Actions

    mutating func nextWord() -> (String, Int)? {
        skipSpaces()
        guard index < bytes.count else { return nil }
        let start = index
        while index < bytes.count, !bytes[index].isSpace { index += 1 }
        return (String(decoding: bytes[start..<index], as: UTF8.self), start)
    }

    mutating func skipSpaces() {
        while index < bytes.count, bytes[index].isSpace { index += 1 }
    }

    func parseAction(_ word: String, at start: Int) throws(RuleSyntaxError) -> Action {
        switch word {
        case "stop": return .stop
        case "discard": return .discard
        default: break
        }
        if word.hasPrefix("folder:") {
            let name = String(word.dropFirst("folder:".count))
            let template = try parseTemplate(name, at: start + 7, what: "folder")
            if let problem = template.folderProblem {
                throw error(problem, at: start + 7)
            }
            return .folder(template)
        }
        if let sign = word.first, sign == "+" || sign == "-" {
            let template = try parseTemplate(String(word.dropFirst()), at: start + 1, what: "tag")
            return sign == "+" ? .addTag(template) : .removeTag(template)
        }
        throw error("expected an action (+tag, -tag, folder:NAME, stop, discard) or '--', found '\(word)'", at: start)
    }

    func parseTemplate(_ text: String, at start: Int, what: String) throws(RuleSyntaxError) -> Template {
        guard !text.isEmpty else { throw error("expected a \(what) name", at: start) }
        var parts: [Template.Part] = []
        var literal = ""
        var characters = Array(text)[...]
        while let character = characters.first {
            characters = characters.dropFirst()
            guard character == "$" else { literal.append(character); continue }
            if let next = characters.first, next.isASCII, let digit = next.wholeNumberValue, digit >= 1 {
                characters = characters.dropFirst()
                if !literal.isEmpty { parts.append(.literal(literal)); literal = "" }
                parts.append(.capture(digit))
            } else if characters.starts(with: "extension") {
                characters = characters.dropFirst("extension".count)
                if !literal.isEmpty { parts.append(.literal(literal)); literal = "" }
                parts.append(.recipientExtension)
            } else {
                throw error("'$' in a \(what) must be followed by 1-9 or 'extension'", at: start)
            }
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        let template = Template(parts: parts)
        // Content from a message may only extend a name the rule fixes.
        if what == "tag", !template.isLiteral, template.fixedPrefix.isEmpty {
            throw error("a tag built from the message needs a fixed prefix, e.g. +lists/$1", at: start)
        }
        if let problem = template.lengthProblem(what == "tag" ? .tag : .folder) {
            throw error(problem, at: start)
        }
        return template
    }

    // MARK: Conditions

    mutating func parseOr() throws(RuleSyntaxError) -> Condition {
        var parts = [try parseAnd()]
        while takeKeyword("or") { parts.append(try parseAnd()) }
        return parts.count == 1 ? parts[0] : .any(parts)
    }

    mutating func parseAnd() throws(RuleSyntaxError) -> Condition {
        var parts = [try parseNot()]
        while true {
            skipSpaces()
            guard index < bytes.count, bytes[index] != UInt8(ascii: ")") else { break }
            if isKeyword("or") { break }
            _ = takeKeyword("and")
            parts.append(try parseNot())
        }
        return parts.count == 1 ? parts[0] : .all(parts)
    }

    mutating func parseNot() throws(RuleSyntaxError) -> Condition {
        skipSpaces()
        let start = index
        guard takeKeyword("not") else { return try parsePrimary() }
        try enter(at: start)
        defer { depth -= 1 }
        return .not(try parseNot())
    }

    /// Counts one more level of nesting, refusing more than RuleParser.maximumDepth.
    mutating func enter(at start: Int) throws(RuleSyntaxError) {
        guard depth < RuleParser.maximumDepth else {
            throw error("'(' and 'not' nested more than \(RuleParser.maximumDepth) deep", at: start)
        }
        depth += 1
    }

    mutating func parsePrimary() throws(RuleSyntaxError) -> Condition {
        skipSpaces()
        guard index < bytes.count else { throw error("expected a condition") }
        if bytes[index] == UInt8(ascii: "(") {
            let open = index
            try enter(at: open)
            defer { depth -= 1 }
            index += 1
            let inner = try parseOr()
            skipSpaces()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ")") else {
                throw error("expected ')' to close the '(' at column \(positions[open].column)")
            }
            index += 1
            return inner
        }
        if bytes[index] == UInt8(ascii: ")") { throw error("expected a condition before ')'") }
        if isKeyword("and") || isKeyword("or") {
            throw error("expected a condition before '\(isKeyword("and") ? "and" : "or")'")
        }
        return try parseTerm()
    }

    /// Whether the next word is `keyword` (either case), as a whole word.
    func isKeyword(_ keyword: String) -> Bool {
        var i = index
        while i < bytes.count, bytes[i].isSpace { i += 1 }
        let end = i + keyword.utf8.count
        guard end <= bytes.count,
              zip(bytes[i..<end], keyword.utf8).allSatisfy({ $0 | 0x20 == $1 }) else { return false }
        return end == bytes.count || bytes[end].isSpace || bytes[end] == UInt8(ascii: "(")
    }

    /// Consumes the next word when it is `keyword`; whether it was.
    mutating func takeKeyword(_ keyword: String) -> Bool {
        guard isKeyword(keyword) else { return false }
        skipSpaces()
        index += keyword.count
        return true
    }

    /// One term: ours (header:, recipient:, sender:, extension:, size:) or
    /// a notmuch query term, kept verbatim with its quotes, braces and parentheses.
    mutating func parseTerm() throws(RuleSyntaxError) -> Condition {
        let start = index
        let word = try readTerm()
        if word == "*" { return .always }
        if word.hasPrefix("header:") { return try headerCondition(word, at: start) }
        if word.hasPrefix("recipient:") {
            return .recipient(try pattern(String(word.dropFirst(10)), at: start + 10))
        }
        if word.hasPrefix("sender:") {
            return .sender(try pattern(String(word.dropFirst(7)), at: start + 7))
        }
        if word.hasPrefix("extension:") {
            let value = String(word.dropFirst(10))
            guard !value.isEmpty else { throw error("expected a value after 'extension:'", at: start + 10) }
            return .recipientExtension(value)
        }
        if word.hasPrefix("size:") { return try sizeCondition(String(word.dropFirst(5)), at: start + 5) }
        return .query(word)
    }

    mutating func readTerm() throws(RuleSyntaxError) -> String {
        let start = index
        var depth = 0
        var quoted = false
        var regexAllowed = true
        while index < bytes.count {
            let byte = bytes[index]
            if !quoted && depth == 0 && (byte.isSpace || byte == UInt8(ascii: ")")) { break }
            if byte == UInt8(ascii: "/") && !quoted && regexAllowed && startsRegex(from: start) {
                try skipRegex()
                regexAllowed = false
                continue
            }
            if byte == UInt8(ascii: "\"") { quoted.toggle() }
            else if !quoted && (byte == UInt8(ascii: "(") || byte == UInt8(ascii: "{")) { depth += 1 }
            else if !quoted && (byte == UInt8(ascii: ")") || byte == UInt8(ascii: "}")) { depth -= 1 }
            index += 1
        }
        if quoted { throw error("unterminated '\"'", at: start) }
        if depth > 0 { throw error("unbalanced '(' or '{' in '\(String(decoding: bytes[start..<index], as: UTF8.self))'", at: start) }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    /// A `/` right after `header:NAME~`, `recipient:` or `sender:` opens a regex.
    /// Compares bytes in place: called at every `/` of a term, making a
    /// String of the term so far each time would be quadratic in its length.
    func startsRegex(from start: Int) -> Bool {
        let sofar = bytes[start..<index]
        return sofar.elementsEqual("recipient:".utf8) || sofar.elementsEqual("sender:".utf8)
            || (sofar.starts(with: "header:".utf8) && sofar.last == UInt8(ascii: "~"))
    }

    /// Skips `/…/` (with `\/` inside) and its flags.
    mutating func skipRegex() throws(RuleSyntaxError) {
        let open = index
        index += 1
        while index < bytes.count, bytes[index] != UInt8(ascii: "/") {
            if bytes[index] == UInt8(ascii: "\\") { index += 1 }
            index += 1
        }
        guard index < bytes.count else { throw error("unterminated regular expression: expected a closing '/'", at: open) }
        index += 1
        while index < bytes.count, bytes[index].isASCIILetter { index += 1 }
    }

    func headerCondition(_ word: String, at start: Int) throws(RuleSyntaxError) -> Condition {
        let body = word.dropFirst("header:".count)
        guard let tilde = body.firstIndex(of: "~") else {
            guard isHeaderName(body) else { throw error("expected a header name after 'header:'", at: start + 7) }
            return .header(name: String(body), pattern: nil)
        }
        let name = body[..<tilde]
        guard isHeaderName(name) else { throw error("expected a header name after 'header:'", at: start + 7) }
        let offset = start + 7 + name.count + 1
        return .header(name: String(name), pattern: try pattern(String(body[body.index(after: tilde)...]), at: offset))
    }

    func isHeaderName(_ name: Substring) -> Bool {
        !name.isEmpty && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }

    func pattern(_ text: String, at start: Int) throws(RuleSyntaxError) -> Pattern {
        guard text.hasPrefix("/"), let close = text.lastIndex(of: "/"), close != text.startIndex else {
            throw error("expected a regular expression between slashes, e.g. /^yes$/", at: start)
        }
        let source = String(text[text.index(after: text.startIndex)..<close]).replacingSlashEscapes()
        let flags = text[text.index(after: close)...]
        guard flags.allSatisfy({ $0 == "c" || $0 == "i" }) else {
            throw error("unknown regular expression flag in '\(flags)': use i (the default) or c (case-sensitive)", at: start)
        }
        do {
            return try Pattern(source: source, caseSensitive: flags.contains("c"))
        } catch {
            throw self.error("invalid regular expression /\(source)/: \(error)", at: start)
        }
    }

    func sizeCondition(_ text: String, at start: Int) throws(RuleSyntaxError) -> Condition {
        guard let first = text.first, let comparison = Condition.SizeComparison(rawValue: String(first)) else {
            throw error("expected '>' or '<' after 'size:', e.g. size:>1M", at: start)
        }
        var digits = text.dropFirst()
        var multiplier = 1
        switch digits.last?.lowercased() {
        case "k": multiplier = 1024; digits = digits.dropLast()
        case "m": multiplier = 1024 * 1024; digits = digits.dropLast()
        default: break
        }
        guard let number = Int(digits), number >= 0 else {
            throw error("expected a size in bytes, k or M after 'size:\(first)', e.g. size:>100k", at: start + 1)
        }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { throw error("size too large: \(text.dropFirst())", at: start + 1) }
        return .size(comparison, bytes)
    }
}

extension String {
    /// `\/` inside /…/ stands for a slash.
    func replacingSlashEscapes() -> String {
        var result = ""
        var escaped = false
        for character in self {
            if escaped {
                if character != "/" { result.append("\\") }
                result.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else {
                result.append(character)
            }
        }
        if escaped { result.append("\\") }
        return result
    }
}

extension Action {
    var usesCaptures: Bool {
        switch self {
        case .addTag(let t), .removeTag(let t), .folder(let t):
            return t.parts.contains { if case .capture = $0 { true } else { false } }
        case .stop, .discard: return false
        }
    }
}

extension Condition {
    /// Whether any leaf is a regular expression that can capture.
    var usesCaptures: Bool {
        switch self {
        case .all(let parts), .any(let parts): return parts.contains(where: \.usesCaptures)
        case .not(let part): return part.usesCaptures
        case .header(_, let pattern): return pattern != nil
        case .recipient, .sender: return true
        case .always, .query, .recipientExtension, .size: return false
        }
    }

    /// Joins neighbouring notmuch terms into one query, so a rule costs one
    /// database lookup per run of query terms rather than one per term.
    var simplified: Condition {
        switch self {
        case .all(let parts): return Self.merge(parts.map(\.simplified), joiner: "and", wrap: Condition.all)
        case .any(let parts): return Self.merge(parts.map(\.simplified), joiner: "or", wrap: Condition.any)
        case .not(let part):
            let inner = part.simplified
            if case .query(let query) = inner { return .query("not (\(query))") }
            return .not(inner)
        default: return self
        }
    }

    /// And and or commute, so every query term of a node becomes one query,
    /// evaluated after the cheap leaves.
    private static func merge(_ parts: [Condition], joiner: String, wrap: ([Condition]) -> Condition) -> Condition {
        var merged: [Condition] = []
        var queries: [String] = []
        for part in parts {
            if case .query(let query) = part { queries.append(query) } else { merged.append(part) }
        }
        if !queries.isEmpty {
            merged.append(.query(queries.count == 1 ? queries[0] : queries.map { "(\($0))" }.joined(separator: " \(joiner) ")))
        }
        return merged.count == 1 ? merged[0] : wrap(merged)
    }
}

extension UInt8 {
    var isSpace: Bool { self == UInt8(ascii: " ") || self == UInt8(ascii: "\t") }
    var isASCIILetter: Bool { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self | 0x20) }
}
