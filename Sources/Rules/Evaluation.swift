/// What rules may ask about the message being delivered. The delivery
/// pipeline answers from the file, the envelope and the database.
public protocol MessageFacts {
    /// Every value of the header, unfolded and decoded, in file order.
    func headerValues(_ name: String) -> [String]
    var recipient: String? { get }
    var sender: String? { get }
    /// The recipient's `+extension`, without the `+`.
    var recipientExtension: String? { get }
    var size: Int { get }
    /// Whether the message matches a notmuch query (it is indexed by now).
    func matches(query: String) throws -> Bool
}

/// One step a matching rule asks for, with names already resolved.
public enum Effect: Sendable, Equatable, CustomStringConvertible {
    case addTag(String)
    case removeTag(String)
    case folder(String)
    case discard

    public var description: String {
        switch self {
        case .addTag(let tag): return "+\(tag)"
        case .removeTag(let tag): return "-\(tag)"
        case .folder(let folder): return "folder:\(folder)"
        case .discard: return "discard"
        }
    }
}

/// What happened to each rule, for `explain` and for the log.
public struct RuleTrace: Sendable {
    public let rule: Rule
    public let matched: Bool
    /// Each leaf tested, with its result and, for headers, what it saw.
    public let checks: [(condition: String, result: Bool, detail: String?)]
    public let effects: [Effect]
    /// Why an action was skipped (e.g. a capture that sanitised to nothing).
    public let notes: [String]
}

extension RuleSet {
    /// Applies the rules in order, handing each effect to `apply` at once so
    /// that a later rule's query sees the tags an earlier rule set. Stops
    /// after a rule with `stop` or `discard`.
    @discardableResult
    public func evaluate(_ facts: MessageFacts, apply: (Effect) throws -> Void) throws -> [RuleTrace] {
        var traces: [RuleTrace] = []
        for rule in rules {
            var evaluation = Evaluation(facts: facts)
            let matched = try evaluation.test(rule.condition)
            var effects: [Effect] = []
            var notes: [String] = []
            var stops = false
            if matched {
                for action in rule.actions {
                    switch action {
                    case .stop: stops = true
                    case .discard: effects.append(.discard); stops = true
                    case .addTag(let template), .removeTag(let template), .folder(let template):
                        guard let name = template.resolve(captures: evaluation.captures,
                                                          extension: facts.recipientExtension) else {
                            notes.append("\(action) skipped: its substitution is empty after sanitising")
                            continue
                        }
                        switch action {
                        case .addTag: effects.append(.addTag(name))
                        case .removeTag: effects.append(.removeTag(name))
                        default: effects.append(.folder(name))
                        }
                    }
                }
                for effect in effects { try apply(effect) }
            }
            traces.append(RuleTrace(rule: rule, matched: matched, checks: evaluation.checks,
                                    effects: effects, notes: notes))
            if stops { break }
        }
        return traces
    }
}

/// Evaluates one rule's condition, short-circuiting, and remembers the
/// captures of the first regular expression that matched.
struct Evaluation {
    let facts: MessageFacts
    var captures: [String] = []
    var checks: [(condition: String, result: Bool, detail: String?)] = []

    init(facts: MessageFacts) { self.facts = facts }

    mutating func test(_ condition: Condition) throws -> Bool {
        switch condition {
        case .all(let parts):
            for part in parts where try !test(part) { return false }
            return true
        case .any(let parts):
            for part in parts where try test(part) { return true }
            return false
        case .not(let part):
            // Captures from inside a negation would describe a non-match.
            let saved = captures
            let result = try !test(part)
            captures = saved
            return result
        case .always:
            return record(condition, true, nil)
        case .query(let query):
            return record(condition, try facts.matches(query: query), nil)
        case .header(let name, let pattern):
            let values = facts.headerValues(name)
            guard let pattern else { return record(condition, !values.isEmpty, values.first) }
            for value in values {
                if let found = pattern.match(value) {
                    remember(found)
                    return record(condition, true, "\(name): \(value)")
                }
            }
            return record(condition, false, values.first.map { "\(name): \($0)" } ?? "no \(name) header")
        case .recipient(let pattern):
            return record(condition, matchEnvelope(pattern, facts.recipient), facts.recipient ?? "no recipient")
        case .sender(let pattern):
            return record(condition, matchEnvelope(pattern, facts.sender), facts.sender ?? "no sender")
        case .recipientExtension(let value):
            let actual = facts.recipientExtension
            return record(condition, actual?.lowercased() == value.lowercased(), actual.map { "+\($0)" } ?? "no extension")
        case .size(let comparison, let bytes):
            let result = comparison == .larger ? facts.size > bytes : facts.size < bytes
            return record(condition, result, "\(facts.size) bytes")
        }
    }

    private mutating func matchEnvelope(_ pattern: Pattern, _ value: String?) -> Bool {
        guard let value, let found = pattern.match(value) else { return false }
        remember(found)
        return true
    }

    private mutating func remember(_ found: [String]) {
        if captures.isEmpty { captures = found }
    }

    private mutating func record(_ condition: Condition, _ result: Bool, _ detail: String?) -> Bool {
        checks.append((condition.description, result, detail))
        return result
    }
}

extension Template {
    /// Longest text one substitution may contribute.
    static let maximumSubstitution = 64

    /// The name with substitutions made safe: lower case, only letters,
    /// digits and `._-+@` (others become `_`), no leading `-` or `.`,
    /// bounded. Nil when a substitution comes out empty: a sender must
    /// not be able to turn `lists/$1` into `lists/`.
    func resolve(captures: [String], extension recipientExtension: String?) -> String? {
        var result = ""
        for part in parts {
            switch part {
            case .literal(let text): result += text
            case .capture(let n):
                guard n <= captures.count, let safe = Self.sanitise(captures[n - 1]) else { return nil }
                result += safe
            case .recipientExtension:
                guard let value = recipientExtension, let safe = Self.sanitise(value) else { return nil }
                result += safe
            }
        }
        return result
    }

    static func sanitise(_ text: String) -> String? {
        var safe = ""
        for scalar in text.lowercased().unicodeScalars {
            let allowed = (scalar.properties.isAlphabetic && scalar.isASCII) || ("0"..."9").contains(scalar)
                || "._-+@".unicodeScalars.contains(scalar)
            safe.unicodeScalars.append(allowed ? scalar : "_")
        }
        while let first = safe.first, first == "-" || first == "." || first == "_" { safe.removeFirst() }
        while let last = safe.last, last == "_" { safe.removeLast() }
        safe = String(safe.prefix(maximumSubstitution))
        return safe.isEmpty ? nil : safe
    }
}
