import Rules
import FuzzFacts

/// The rules parser on any text, then the rules it accepts evaluated against
/// one fixed message: regular expressions, captures and name templates run
/// too. Errors must point inside the file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRules(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    // As RulesLoader reads a file: bytes decoded as UTF-8, invalid ones replaced.
    check(String(decoding: bytes, as: UTF8.self), compareWithPreevaluation: true)
    // Depth and size, not only content: a short input is also taken as a
    // count (its first two bytes) and a fragment (the rest), repeated into
    // a rule of up to about 300 KB: "(" or " not" many thousands deep, a
    // term of slashes, a line over the length limit. Parsing must stay
    // linear and every nesting bounded (libFuzzer's -timeout and stack
    // overflow detection are the checks).
    if size >= 3, size <= 64 {
        let fragment = String(decoding: UnsafeBufferPointer(rebasing: bytes[2...]), as: UTF8.self)
        let wanted = Int(bytes[0]) << 8 | Int(bytes[1])
        let count = min(wanted, 300_000 / max(fragment.utf8.count, 1))
        check("+deep -- " + String(repeating: fragment, count: count) + " *", compareWithPreevaluation: false)
    }
    return 0
}

private func check(_ text: String, compareWithPreevaluation: Bool) {
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
    _ = rules.warnings
    let facts = FixedFacts()
    var live: [Effect] = []
    _ = try? rules.evaluate(facts) { effect in
        checkName(effect)
        live.append(effect)
    }
    guard compareWithPreevaluation else { return }
    // Leaves worked out before the database, queries after: the same outcome.
    var split: [Effect] = []
    _ = try? rules.evaluate(facts, preevaluated: rules.preevaluate(facts)) { split.append($0) }
    if split != live { fatalError("pre-evaluation changed the effects: \(live) against \(split)") }
}

/// Names a message builds must be ones libnotmuch and the file system accept.
private func checkName(_ effect: Effect) {
    switch effect {
    case .addTag(let name), .removeTag(let name):
        if name.isEmpty || name.utf8.count > 200 { fatalError("a tag libnotmuch refuses: \(effect)") }
    case .folder(let name), .existingFolder(let name):
        let tooLongComponent = name.split(separator: "/").contains { $0.utf8.count > 255 }
        if name.isEmpty || name.utf8.count > 1024 || tooLongComponent { fatalError("a folder that cannot be: \(effect)") }
    case .copy:
        fatalError("a rule cannot make a copy: \(effect)")
    case .discard: break
    }
}
