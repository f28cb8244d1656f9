import Rules
@testable import Sieve
import Testing
import TestSupport

/// A message for scripts: headers in order, the envelope, a size, and
/// the answers notmuch queries get (a query the test did not list fails it).
typealias Message = TableFacts

func compile(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> SieveScript? {
    switch SieveParser.parse(text, origin: "test.sieve") {
    case .success(let script): return script
    case .failure(let errors):
        Issue.record("does not compile: \(errors)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The errors of a script that must not compile, as FILE:LINE:COLUMN: message.
func errors(_ text: String) -> [String] {
    switch SieveParser.parse(text, origin: "test.sieve") {
    case .success: return []
    case .failure(let errors): return errors.errors.map(\.description)
    }
}

/// The script's actions on a message, in the normalised form (`store X flags`, `discard`).
func actions(_ text: String, _ message: Message = Message(), sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
    guard let script = compile(text, sourceLocation: sourceLocation) else { return [] }
    return try script.run(message).normalised
}

func run(_ text: String, _ message: Message = Message()) throws -> SieveOutcome? {
    try compile(text)?.run(message)
}
