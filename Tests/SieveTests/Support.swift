import Rules
@testable import Sieve
import Testing

/// A message for scripts: headers in order, the envelope, a size, and
/// the answers notmuch queries get.
struct Message: MessageFacts {
    var headers: [(String, String)] = []
    var recipient: String?
    var sender: String?
    var recipientExtension: String?
    var size = 1000
    var queries: [String: Bool] = [:]

    init(_ headers: [(String, String)] = [], recipient: String? = nil, sender: String? = nil, size: Int = 1000) {
        self.headers = headers
        self.recipient = recipient
        self.sender = sender
        self.size = size
    }

    func headerValues(_ name: String) -> [String] {
        headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }

    func matches(query: String) throws -> Bool { queries[query] ?? false }
}

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
