import Rules

/// One fixed message for the harnesses that evaluate rules or run scripts:
/// headers with what those like to take apart (display names and groups,
/// several values, `$1`, `\1`, `${1}` and `../` in a subject, UTF-8), an
/// envelope with a `+extension`, and a size. A notmuch query "matches" when
/// its length in bytes is even, so that both answers come up without a
/// database.
public struct FixedFacts: MessageFacts {
    private static let headers: [String: [String]] = [
        "from": ["Alice Example <alice@example.org>", "\"Alice (A)\" <alice+x@example.com>, bob@example.org"],
        "to": ["Bob <bob+lists@example.org>", "carol@example.net", "undisclosed-recipients:;"],
        "subject": ["[dev] Ünïcödé — and $1 \\1 ../../etc", "[dev] Release 2.0 *is* out? \\ ${1}"],
        "list-id": ["Developers <dev.lists.example.org>"],
        "x-spam-flag": ["YES"],
        "x-spam-score": ["7"],
        "received": ["from a by b", "from c by d", "", "a"],
    ]

    public init() {}

    public func headerValues(_ name: String) -> [String] { Self.headers[name.lowercased()] ?? [] }
    public var recipient: String? { "bob+lists@example.org" }
    public var sender: String? { "bounce-123@lists.example.org" }
    public var recipientExtension: String? { "lists" }
    public var size: Int { 12_345 }
    public func matches(query: String) throws -> Bool { query.utf8.count % 2 == 0 }
}
