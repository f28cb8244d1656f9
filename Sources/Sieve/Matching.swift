import Rules

/// A `:regex` key, compiled by the rules' regular expressions (GLib's
/// GRegex, PCRE2 underneath) with their match limit; case-insensitive
/// under i;ascii-casemap.
struct RegexKey: @unchecked Sendable {
    let pattern: Pattern

    init(_ source: String, comparator: Comparator) throws {
        pattern = try Pattern.compile(source, caseSensitive: comparator != .asciiCasemap)
    }
}

/// Values and keys longer than this are compared on their first 64 KiB
/// only, as the rules' patterns are: a header of megabytes buys no time.
let maximumComparedLength = 1 << 16

/// Thrown when the script's time budget is spent; the run is abandoned.
struct BudgetSpent: Error {}

/// Comparison under a comparator (RFC 4790's i;octet, i;ascii-casemap,
/// i;ascii-numeric), over Unicode scalars: `?` matches one character.
struct Comparison {
    let comparator: Comparator
    let clock: ScriptClock

    /// i;ascii-casemap folds ASCII letters. RFC 4790 maps them to upper
    /// case; Pigeonhole maps them to lower case, which orders `[\]^_``
    /// before letters for :value, and the differential test follows it.
    private func fold(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        guard comparator == .asciiCasemap, scalar.value >= 0x41, scalar.value <= 0x5A else { return scalar }
        return Unicode.Scalar(scalar.value + 0x20)!
    }

    private func scalars(_ text: String) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        for scalar in text.unicodeScalars {
            if result.count == maximumComparedLength { break }
            result.append(fold(scalar))
        }
        return result
    }

    func isEqual(_ value: String, _ key: String) -> Bool {
        if comparator == .asciiNumeric { return Self.numericOrder(value, key) == 0 }
        return scalars(value) == scalars(key)
    }

    func contains(_ value: String, _ key: String) throws(BudgetSpent) -> Bool {
        let haystack = scalars(value), needle = scalars(key)
        if needle.isEmpty { return true }
        guard needle.count <= haystack.count else { return false }
        for start in 0...(haystack.count - needle.count) {
            if start & 0xFFF == 0 { try clock.check() }
            if haystack[start] == needle[0], haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }

    /// `:matches`: `*` any sequence, `?` one character, `\` quotes the next.
    /// Returns the whole value then what each wildcard matched (RFC 5229's
    /// ${0}, ${1}…), or nil. Each wildcard takes as little as it can, left
    /// to right, as Pigeonhole does: `[*] *` on `[a] [b] c` gives `a`.
    ///
    /// The classic one-backtrack-point algorithm: on a mismatch only the
    /// last `*` grows, which finds that same match in time proportional to
    /// the pattern times the value.
    func matches(_ value: String, _ key: String) throws(BudgetSpent) -> [String]? {
        enum Element: Equatable { case literal(Unicode.Scalar), any, star }
        var pattern: [Element] = []
        var escaped = false
        for scalar in scalars(key) {
            if escaped { pattern.append(.literal(scalar)); escaped = false; continue }
            switch scalar {
            case "\\": escaped = true
            case "*": pattern.append(.star)
            case "?": pattern.append(.any)
            default: pattern.append(.literal(scalar))
            }
        }
        let original = Array(value.unicodeScalars.prefix(maximumComparedLength))
        let text = original.map(fold)
        // Where each wildcard starts and ends, by its index in `pattern`.
        var starts = [Int](repeating: 0, count: pattern.count)
        var ends = [Int](repeating: 0, count: pattern.count)
        var p = 0, t = 0
        var lastStar: Int?
        var steps = 0
        while t < text.count || p < pattern.count {
            steps += 1
            if steps & 0xFFF == 0 { try clock.check() }
            if p < pattern.count {
                switch pattern[p] {
                case .star:
                    lastStar = p
                    starts[p] = t
                    ends[p] = t
                    p += 1
                    continue
                case .any where t < text.count:
                    starts[p] = t
                    ends[p] = t + 1
                    p += 1
                    t += 1
                    continue
                case .literal(let scalar) where t < text.count && text[t] == scalar:
                    p += 1
                    t += 1
                    continue
                default:
                    break
                }
            }
            // Mismatch (or pattern exhausted with text left): grow the last star.
            guard let star = lastStar, ends[star] < text.count else { return nil }
            ends[star] += 1
            p = star + 1
            t = ends[star]
        }
        var captures = [String(String.UnicodeScalarView(original))]
        for (index, element) in pattern.enumerated() {
            if case .literal = element { continue }
            captures.append(String(String.UnicodeScalarView(original[starts[index]..<ends[index]])))
        }
        return captures
    }

    /// RFC 4790's i;ascii-numeric: the number at the start of the string;
    /// a string not starting with a digit is larger than every number.
    /// -1, 0, 1.
    static func numericOrder(_ a: String, _ b: String) -> Int {
        func digits(_ text: String) -> Substring? {
            let run = text.prefix { $0.isASCII && $0.isNumber }
            guard !run.isEmpty else { return nil }
            let trimmed = run.drop { $0 == "0" }
            return trimmed
        }
        switch (digits(a), digits(b)) {
        case (nil, nil): return 0
        case (nil, _): return 1
        case (_, nil): return -1
        case (let x?, let y?):
            if x.count != y.count { return x.count < y.count ? -1 : 1 }
            return x == y ? 0 : (x < y ? -1 : 1)
        }
    }

    /// The order of RFC 5231's :value, under this comparator.
    func order(_ a: String, _ b: String) -> Int {
        if comparator == .asciiNumeric { return Self.numericOrder(a, b) }
        let x = scalars(a), y = scalars(b)
        for (u, v) in zip(x, y) where u != v { return u.value < v.value ? -1 : 1 }
        return x.count == y.count ? 0 : (x.count < y.count ? -1 : 1)
    }

    static func holds(_ relation: Relation, _ order: Int) -> Bool {
        switch relation {
        case .greater: return order > 0
        case .greaterOrEqual: return order >= 0
        case .less: return order < 0
        case .lessOrEqual: return order <= 0
        case .equal: return order == 0
        case .notEqual: return order != 0
        }
    }
}

/// The time a run of the script may take.
final class ScriptClock: @unchecked Sendable {
    private let deadline: ContinuousClock.Instant

    init(budget: Duration) {
        deadline = ContinuousClock.now.advanced(by: budget)
    }

    func check() throws(BudgetSpent) {
        if ContinuousClock.now >= deadline { throw BudgetSpent() }
    }
}
