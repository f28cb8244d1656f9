import Rules

/// The rules parser on any text, then the rules it accepts evaluated against
/// one fixed message: regular expressions, captures and name templates run
/// too. Errors must point inside the file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRules(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    // As RulesLoader reads a file: bytes decoded as UTF-8, invalid ones replaced.
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let (rules, errors) = RuleParser.parse(text, origin: "fuzz")

    let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).count
    for error in errors {
        guard error.line >= 1, error.line <= lines, error.column >= 1 else {
            fatalError("error outside the file (\(lines) lines): \(error)")
        }
        _ = error.description
    }
    var previousLine = 0
    for rule in rules.rules {
        guard rule.line > previousLine, rule.line <= lines, !rule.actions.isEmpty else {
            fatalError("rule at line \(rule.line) after \(previousLine), of \(lines) lines, \(rule.actions.count) actions")
        }
        previousLine = rule.line
        _ = rule.condition.description
        _ = rule.actions.map(\.description)
    }
    _ = try? rules.evaluate(FixedFacts()) { effect in
        switch effect {
        case .addTag(let name), .removeTag(let name), .folder(let name):
            if name.isEmpty { fatalError("an empty name from \(effect)") }
        case .discard: break
        }
    }
    return 0
}

/// A message with a few headers, an envelope and a size; a notmuch query
/// "matches" when its length is even.
private struct FixedFacts: MessageFacts {
    private static let headers: [String: [String]] = [
        "from": ["Alice Example <alice@example.org>"],
        "to": ["Bob <bob+lists@example.org>", "carol@example.net"],
        "subject": ["[dev] Ünïcödé — and $1 \\1 ../../etc"],
        "list-id": ["Developers <dev.lists.example.org>"],
        "x-spam-flag": ["YES"],
        "received": ["from a by b", "from c by d", ""],
    ]

    func headerValues(_ name: String) -> [String] { Self.headers[name.lowercased()] ?? [] }
    var recipient: String? { "bob+lists@example.org" }
    var sender: String? { "bounce-123@lists.example.org" }
    var recipientExtension: String? { "lists" }
    var size: Int { 12_345 }
    func matches(query: String) throws -> Bool { query.utf8.count % 2 == 0 }
}
