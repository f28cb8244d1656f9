import Rules
import Testing
import TestSupport

/// Random and hostile rules files: the parser must answer with rules or
/// located errors, never crash or hang.
@Suite struct RandomRulesInputTests {
    static let pieces = ["+", "-", "--", "tag", "folder:", "stop", "discard", "header:", "X-Spam", "~", "/", "(", ")",
                         "{", "}", "\"", "and", "or", "not", "*", "size:>", "10k", "$1", "$extension", "recipient:",
                         "sender:", "extension:", " ", " ", "\t", "\n", "\n  ", "#", "é", "\\", "[", "]", "^", "$",
                         "lists/", ".*", "thread:{tag:x}", "\u{0}", "\r\n"]

    @Test func randomTokenSoupNeverCrashes() {
        var random = SplitMix(state: 42)
        for _ in 0..<3000 {
            var text = ""
            for _ in 0..<random.below(40) { text += Self.pieces[random.below(Self.pieces.count)] }
            let (rules, errors) = RuleParser.parse(text, origin: "fuzz")
            for error in errors {
                #expect(error.line >= 1 && error.column >= 1, "\(error) for \(text.debugDescription)")
            }
            // At most one rule or one error per line (counted in bytes: "\r\n" is one Character).
            #expect(rules.rules.count + errors.count <= text.utf8.split(separator: 10, omittingEmptySubsequences: false).count)
        }
    }

    @Test func randomBytesNeverCrash() {
        var random = SplitMix(state: 7)
        for _ in 0..<2000 {
            let bytes = (0..<random.below(200)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            _ = RuleParser.parse(String(decoding: bytes, as: UTF8.self), origin: "bytes")
        }
    }

    @Test func hugeLinesParseInReasonableTime() {
        let long = "+a -- " + Array(repeating: "from:x", count: 20_000).joined(separator: " or ")
        let (rules, errors) = RuleParser.parse(long, origin: "long")
        #expect(errors.isEmpty && rules.rules.count == 1)
        // Deeper than RuleParser.maximumDepth: refused, quickly, with its place.
        let deep = "+a -- " + String(repeating: "(", count: 500) + "from:x" + String(repeating: ")", count: 500)
        #expect(RuleParser.parse(deep, origin: "deep").1.map(\.description) == ["deep:1:107: '(' and 'not' nested more than 100 deep"])
    }
}
