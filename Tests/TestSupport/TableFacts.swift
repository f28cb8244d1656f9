import Rules

/// A message's facts for the rules and Sieve without a database: headers
/// in order, the envelope, a size, and notmuch queries answered from a
/// table; a query the table does not list is an error, so a test names
/// every query the rules make.
public struct TableFacts: MessageFacts, Sendable {
    public var headers: [(String, String)]
    public var recipient: String?
    public var sender: String?
    public var recipientExtension: String?
    public var size: Int
    public var queries: [String: Bool] = [:]

    public init(_ headers: [(String, String)] = [], recipient: String? = nil, sender: String? = nil,
                recipientExtension: String? = nil, size: Int = 1000) {
        self.headers = headers
        self.recipient = recipient
        self.sender = sender
        self.recipientExtension = recipientExtension
        self.size = size
    }

    /// The same facts, with notmuch queries answered from `queries`.
    public func answering(_ queries: [String: Bool]) -> TableFacts {
        var facts = self
        facts.queries = queries
        return facts
    }

    public func headerValues(_ name: String) -> [String] {
        headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }

    public func matches(query: String) throws -> Bool {
        guard let answer = queries[query] else { throw UnlistedQuery(query: query) }
        return answer
    }

    public struct UnlistedQuery: Error, Sendable { public let query: String }
}
