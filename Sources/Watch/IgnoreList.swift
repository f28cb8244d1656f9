#if canImport(Glibc)
import Glibc
#endif

/// `new.ignore`, as `notmuch new` reads it: a plain entry is a file or
/// directory name ignored at any depth; `/REGEX/` is a POSIX extended
/// regular expression matched against the path relative to the mail root.
public final class IgnoreList {
    private let names: Set<String>
    private var patterns: [UnsafeMutablePointer<regex_t>] = []

    /// An entry that is not a valid regular expression, as notmuch would refuse it.
    public struct BadPattern: Error, CustomStringConvertible {
        public let entry: String
        public let reason: String
        public var description: String { "new.ignore entry '\(entry)' is not a regular expression: \(reason)" }
    }

    public init(_ entries: [String]) throws(BadPattern) {
        var names = Set<String>()
        for entry in entries where !entry.isEmpty {
            guard entry.count >= 2, entry.hasPrefix("/"), entry.hasSuffix("/") else {
                names.insert(entry)
                continue
            }
            let pattern = String(entry.dropFirst().dropLast())
            let compiled = UnsafeMutablePointer<regex_t>.allocate(capacity: 1)
            let code = regcomp(compiled, pattern, REG_EXTENDED | REG_NOSUB)
            guard code == 0 else {
                var buffer = [CChar](repeating: 0, count: 256)
                regerror(code, compiled, &buffer, buffer.count)
                compiled.deallocate()
                for done in patterns { regfree(done); done.deallocate() }
                throw BadPattern(entry: entry, reason: String(cString: buffer))
            }
            patterns.append(compiled)
        }
        self.names = names
    }

    deinit {
        for pattern in patterns {
            regfree(pattern)
            pattern.deallocate()
        }
    }

    /// Whether the entry `name`, at `relativePath` below the mail root, is ignored.
    public func ignores(name: String, relativePath: String) -> Bool {
        if names.contains(name) { return true }
        for pattern in patterns where regexec(pattern, relativePath, 0, nil, 0) == 0 { return true }
        return false
    }
}
