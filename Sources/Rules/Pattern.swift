internal import CGLib

/// A Perl-compatible regular expression (GLib's GRegex, PCRE2 underneath),
/// case-insensitive unless written `/…/c`. GRegex compiles a pattern in
/// microseconds, so a rules file of a hundred patterns costs nothing
/// noticeable per delivery; a compiled pattern is immutable and safe to share.
public final class Pattern: @unchecked Sendable, CustomStringConvertible {
    public let source: String
    public let caseSensitive: Bool
    private let regex: OpaquePointer

    struct CompileError: Error, CustomStringConvertible {
        let description: String
    }

    /// A match PCRE gave up on: it is neither a match nor a non-match.
    struct MatchError: Error, CustomStringConvertible {
        let description: String
    }

    /// Backtracking steps one match may take (PCRE2's match limit; its
    /// default, ten million, takes about 0.1 s here). A million is far more
    /// than an ordinary pattern needs on a 64 KiB header, and stops one
    /// like `^(a+)+$` within about 10 ms. GRegex has no setting for it, but
    /// PCRE2 reads one at the start of the pattern, where it can only lower
    /// the limit.
    public static let matchLimit = 1_000_000

    /// Bytes of a value a pattern sees: the first 64 KiB (a header of a
    /// megabyte is no reason to spend more).
    public static let maximumSubjectLength = 1 << 16

    init(source: String, caseSensitive: Bool) throws(CompileError) {
        self.source = source
        self.caseSensitive = caseSensitive
        let flags = caseSensitive ? GRegexCompileFlags(rawValue: 0) : G_REGEX_CASELESS
        var error: UnsafeMutablePointer<GError>?
        if let regex = g_regex_new("(*LIMIT_MATCH=\(Self.matchLimit))" + source, flags, GRegexMatchFlags(rawValue: 0), &error) {
            self.regex = regex
            return
        }
        g_clear_error(&error)
        // Compiled again as written, so that the message's offsets are the user's.
        if let regex = g_regex_new(source, flags, GRegexMatchFlags(rawValue: 0), &error) {
            g_regex_unref(regex)
        }
        let message = error.flatMap { $0.pointee.message.map { String(cString: $0) } } ?? "cannot compile"
        if let error { g_error_free(error) }
        throw CompileError(description: message)
    }

    deinit { g_regex_unref(regex) }

    /// The captures ($1…) of the first match, or nil when it does not match.
    /// Throws when PCRE gives up (the match limit), so that a caller can say
    /// so rather than take it for a plain non-match.
    func match(_ value: String) throws(MatchError) -> [String]? {
        try groups(value, includingWhole: false)
    }

    /// `includingWhole`: the whole match first, then the groups.
    private func groups(_ value: String, includingWhole: Bool) throws(MatchError) -> [String]? {
        let first: Int32 = includingWhole ? 0 : 1
        var value = value
        // withUTF8 only rethrows untyped errors: the outcome comes out as a Result.
        let outcome = value.withUTF8 { whole -> Result<[String]?, MatchError> in
            var length = min(whole.count, Self.maximumSubjectLength)
            // Never half a character: PCRE would refuse the subject as invalid UTF-8.
            while length > 0, length < whole.count, whole[length] & 0xC0 == 0x80 { length -= 1 }
            // GMatchInfo points into the subject: it must outlive every fetch.
            return whole.withMemoryRebound(to: CChar.self) { subject -> Result<[String]?, MatchError> in
                var info: OpaquePointer?
                var error: UnsafeMutablePointer<GError>?
                let matched = g_regex_match_full(regex, subject.baseAddress, length, 0,
                                                 GRegexMatchFlags(rawValue: 0), &info, &error) != 0
                defer { g_match_info_free(info) }
                if let error {
                    let message = error.pointee.message.map { String(cString: $0) } ?? "match failed"
                    g_error_free(error)
                    // GLib's message repeats the pattern, with the limit in front; the reason is at the end.
                    return .failure(MatchError(description: message.split(separator: ": ").last.map(String.init) ?? message))
                }
                guard matched else { return .success(nil) }
                let count = g_match_info_get_match_count(info)
                guard count > first else { return .success([]) }
                return .success((first..<count).map { group in
                    guard let text = g_match_info_fetch(info, group) else { return "" }
                    defer { g_free(text) }
                    return String(cString: text)
                })
            }
        }
        return try outcome.get()
    }

    public var description: String { "/\(source)/" + (caseSensitive ? "c" : "") }
}

extension Pattern {
    /// A pattern for another module (Sieve's `:regex`), with the same
    /// limits as the rules'; throws a description of what is wrong.
    public static func compile(_ source: String, caseSensitive: Bool) throws -> Pattern {
        try Pattern(source: source, caseSensitive: caseSensitive)
    }

    /// The whole first match and then its groups, nil for no match; throws
    /// when PCRE gives up (the match limit).
    public func wholeMatchAndGroups(_ value: String) throws -> [String]? {
        try groups(value, includingWhole: true)
    }
}

extension Pattern {
    /// Why this pattern may backtrack exponentially, or nil. A heuristic,
    /// for `check-rules`: a group repeated without bound (`*`, `+`, `{n,}`)
    /// that itself holds an unbounded repeat, as in `(a+)+` or `(a*b*)*`,
    /// or identical alternatives, as in `(a|a)*`. Possessive repeats
    /// (`(a+)++`) and atomic groups (`(?>a+)+`) do not backtrack and are
    /// not flagged. It also flags some safe patterns, like `(\d+\.)+`; the
    /// match limit stops a pattern that is really slow either way, and the
    /// warning says why such a rule would then not match some mail.
    public var nestedQuantifier: String? {
        struct Group {
            var start: String.Index
            var atomic = false
            var repeatsInside = false
            var alternatives: [String] = [""]
        }
        var groups: [Group] = []
        var index = source.startIndex
        func take() -> Character? {
            guard index < source.endIndex else { return nil }
            defer { index = source.index(after: index) }
            return source[index]
        }
        func peek() -> Character? { index < source.endIndex ? source[index] : nil }
        /// After an atom: whether an unbounded repeat follows, and whether it is possessive.
        func unboundedRepeat() -> (unbounded: Bool, possessive: Bool) {
            guard let next = peek() else { return (false, false) }
            var unbounded = false
            if next == "*" || next == "+" {
                unbounded = true
                _ = take()
            } else if next == "{" {
                let rest = source[index...]
                guard let close = rest.firstIndex(of: "}") else { return (false, false) }
                let inside = rest[rest.index(after: rest.startIndex)..<close]
                unbounded = inside.hasSuffix(",") && inside.dropLast().allSatisfy(\.isNumber)
                if unbounded { index = source.index(after: close) }
            } else if next == "?" {
                _ = take()
            }
            guard unbounded else { return (false, false) }
            if peek() == "+" { _ = take(); return (true, true) }
            if peek() == "?" { _ = take() }
            return (true, false)
        }
        func noteRepeat() {
            let (unbounded, _) = unboundedRepeat()
            if unbounded, !groups.isEmpty { groups[groups.count - 1].repeatsInside = true }
        }
        func append(_ text: String) {
            guard !groups.isEmpty else { return }
            groups[groups.count - 1].alternatives[groups[groups.count - 1].alternatives.count - 1] += text
        }
        while let character = take() {
            switch character {
            case "\\":
                append(take().map { "\\\($0)" } ?? "\\")
                noteRepeat()
            case "[":
                // A class is one atom; `]` right after `[` or `[^` is a member.
                var text = "["
                if peek() == "^" { text.append(take()!) }
                if peek() == "]" { text.append(take()!) }
                while let member = take() {
                    text.append(member)
                    if member == "\\", let next = take() { text.append(next) } else if member == "]" { break }
                }
                append(text)
                noteRepeat()
            case "(":
                groups.append(Group(start: index, atomic: source[index...].hasPrefix("?>")))
            case "|":
                if !groups.isEmpty { groups[groups.count - 1].alternatives.append("") }
            case ")":
                guard var group = groups.popLast() else { continue }
                let text = String(source[source.index(before: group.start)..<index])
                let (unbounded, possessive) = unboundedRepeat()
                if unbounded, !possessive, !group.atomic {
                    if group.repeatsInside {
                        return "the group \(text) holds a repeat and is repeated itself"
                    }
                    if Set(group.alternatives).count < group.alternatives.count {
                        return "the group \(text) has identical alternatives and is repeated"
                    }
                }
                group.repeatsInside = group.repeatsInside || unbounded
                append(text)
                if group.repeatsInside, !groups.isEmpty { groups[groups.count - 1].repeatsInside = true }
            default:
                append(String(character))
                noteRepeat()
            }
        }
        return nil
    }
}

extension RuleSet {
    /// Rules that parse but may misbehave: for `check-rules`, which reports
    /// them without failing. Each starts with FILE:LINE.
    public var warnings: [String] {
        var warnings: [String] = []
        for rule in rules {
            for leaf in rule.condition.leaves {
                let pattern: Pattern?
                switch leaf {
                case .header(_, let found): pattern = found
                case .recipient(let found), .sender(let found): pattern = found
                default: pattern = nil
                }
                if let pattern, let reason = pattern.nestedQuantifier {
                    warnings.append("\(origin):\(rule.line): warning: \(pattern) may backtrack for a very long time "
                                    + "(\(reason)); such a match is cut off and the rule does not match")
                }
            }
        }
        return warnings
    }
}
