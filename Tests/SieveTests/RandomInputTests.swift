@testable import Sieve
import Testing

/// Scripts of random words of the language: parsing and running never
/// crash, errors point inside the text, a run stays within its limits.
@Suite struct SieveRandomInputTests {
    static let words = [
        "require", "\"fileinto\"", "[\"variables\", \"imap4flags\", \"regex\", \"relational\"]", "if", "elsif", "else",
        "{", "}", "(", ")", "[", "]", ",", ";", "keep", "discard", "stop", "fileinto", "addflag", "set", "header",
        "address", "exists", "size", "allof", "anyof", "not", "true", "false", ":is", ":contains", ":matches",
        ":regex", ":count", "\"ge\"", ":over", "10K", "\"Subject\"", "\"*${1}*\"", "\"(a+)+$\"", "\"x\"", "text:\n.\n",
        "# comment\n", "/* c */", "\"${hex:41}\"", "\n", "hasflag", "string", ":lower", "\"${a}\"",
    ]

    @Test func randomScriptsNeverCrash() throws {
        var generator = SystemRandomNumberGenerator()
        let message = Message([("Subject", "[dev] aaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"), ("From", "a@b.c")])
        for _ in 0..<3000 {
            let count = Int.random(in: 1...40, using: &generator)
            let text = (0..<count).map { _ in Self.words.randomElement(using: &generator)! }.joined(separator: " ")
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count
            switch SieveParser.parse(text, origin: "r") {
            case .failure(let errors):
                for error in errors.errors {
                    #expect(error.location.line >= 1 && error.location.line <= lines && error.location.column >= 1, "\(error) in \(text)")
                }
            case .success(let script):
                _ = try? script.run(message, budget: .milliseconds(200))
            }
        }
    }
}
