#if canImport(Glibc)
import Glibc
#endif

/// A POSIX extended regular expression (regcomp(3) with REG_EXTENDED),
/// for where the C library's own dialect is the rule: notmuch matches
/// `new.ignore`'s `/REGEX/` entries this way, and Swift's Regex reads
/// some patterns differently.
package final class PosixRegex {
    /// Set only once compiled: deinit frees what regcomp made.
    private let compiled: UnsafeMutablePointer<regex_t>

    /// Why a pattern does not compile, in the C library's words.
    package struct Invalid: Error {
        package let reason: String
    }

    package init(_ pattern: String) throws(Invalid) {
        let candidate = UnsafeMutablePointer<regex_t>.allocate(capacity: 1)
        let code = regcomp(candidate, pattern, REG_EXTENDED | REG_NOSUB)
        guard code == 0 else {
            var buffer = [UInt8](repeating: 0, count: 256)
            buffer.withUnsafeMutableBufferPointer { raw in
                raw.withMemoryRebound(to: CChar.self) { _ = regerror(code, candidate, $0.baseAddress, $0.count) }
            }
            candidate.deallocate()
            throw Invalid(reason: String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self))
        }
        compiled = candidate
    }

    deinit {
        regfree(compiled)
        compiled.deallocate()
    }

    /// Whether the pattern matches somewhere in `text`.
    package func matches(_ text: String) -> Bool {
        regexec(compiled, text, 0, nil, 0) == 0
    }
}
