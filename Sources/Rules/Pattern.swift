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

    init(source: String, caseSensitive: Bool) throws(CompileError) {
        self.source = source
        self.caseSensitive = caseSensitive
        let flags = caseSensitive ? GRegexCompileFlags(rawValue: 0) : G_REGEX_CASELESS
        var error: UnsafeMutablePointer<GError>?
        guard let regex = g_regex_new(source, flags, GRegexMatchFlags(rawValue: 0), &error) else {
            let message = error.flatMap { $0.pointee.message.map { String(cString: $0) } } ?? "cannot compile"
            if let error { g_error_free(error) }
            throw CompileError(description: message)
        }
        self.regex = regex
    }

    deinit { g_regex_unref(regex) }

    /// The captures ($1…) of the first match, or nil when it does not match.
    func match(_ value: String) -> [String]? {
        // GMatchInfo points into the subject string: it must outlive every fetch.
        value.withCString { subject in
            var info: OpaquePointer?
            let matched = g_regex_match(regex, subject, GRegexMatchFlags(rawValue: 0), &info) != 0
            defer { g_match_info_free(info) }
            guard matched else { return nil }
            let count = g_match_info_get_match_count(info)
            guard count > 1 else { return [] }
            return (1..<count).map { group in
                guard let text = g_match_info_fetch(info, group) else { return "" }
                defer { g_free(text) }
                return String(cString: text)
            }
        }
    }

    public var description: String { "/\(source)/" + (caseSensitive ? "c" : "") }
}
