import MaildirKit
/// `new.ignore`, as `notmuch new` reads it: a plain entry is a file or
/// directory name ignored at any depth; `/REGEX/` is a POSIX extended
/// regular expression matched against the path relative to the mail root.
public final class IgnoreList {
    private let names: Set<String>
    private let patterns: [PosixRegex]

    /// An entry that is not a valid regular expression, as notmuch would refuse it.
    public struct BadPattern: Error, CustomStringConvertible {
        public let entry: String
        public let reason: String
        public var description: String { "new.ignore entry '\(entry)' is not a regular expression: \(reason)" }
    }

    public init(_ entries: [String]) throws(BadPattern) {
        var names = Set<String>()
        var patterns: [PosixRegex] = []
        for entry in entries where !entry.isEmpty {
            guard entry.count >= 2, entry.hasPrefix("/"), entry.hasSuffix("/") else {
                names.insert(entry)
                continue
            }
            let pattern = String(entry.dropFirst().dropLast())
            do { patterns.append(try PosixRegex(pattern)) } catch {
                throw BadPattern(entry: entry, reason: error.reason)
            }
        }
        self.names = names
        self.patterns = patterns
    }

    /// Whether the entry `name`, at `relativePath` below the mail root, is ignored.
    public func ignores(name: String, relativePath: String) -> Bool {
        if names.contains(name) { return true }
        return patterns.contains { $0.matches(relativePath) }
    }
}
