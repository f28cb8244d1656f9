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
                        let kind: Template.Kind
                        if case .folder = action { kind = .folder } else { kind = .tag }
                        guard let name = template.resolve(captures: evaluation.captures,
                                                          extension: facts.recipientExtension, as: kind) else {
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

    /// What a name is for, which decides how long it may be.
    public enum Kind: Sendable { case tag, folder }

    /// libnotmuch refuses a longer tag (NOTMUCH_TAG_MAX, in bytes, for the whole tag).
    public static let maximumTagLength = 200
    /// A path component longer than NAME_MAX (255 bytes) cannot be created.
    public static let maximumFolderComponentLength = 255
    /// Leaves room for the mail root and `/new/` plus a file name within
    /// PATH_MAX (4096 bytes) under any sensible mail root.
    public static let maximumFolderLength = 1024

    /// A stretch of the name with a length limit: the whole tag; for a
    /// folder, each path component and the whole. `substitutions` are
    /// indices into the template's substitutions, `fixed` the bytes the
    /// rule itself writes there.
    struct Span {
        var substitutions: [Int] = []
        var fixed = 0
        let limit: Int
        let what: String
    }

    func spans(_ kind: Kind) -> [Span] {
        var whole = Span(limit: kind == .tag ? Self.maximumTagLength : Self.maximumFolderLength, what: "\(kind)")
        guard kind == .folder else {
            for part in parts {
                if case .literal(let text) = part { whole.fixed += text.utf8.count } else { whole.substitutions.append(whole.substitutions.count) }
            }
            return [whole]
        }
        let component = { Span(limit: Self.maximumFolderComponentLength, what: "folder component") }
        var components = [component()]
        for part in parts {
            guard case .literal(let text) = part else {
                components[components.count - 1].substitutions.append(whole.substitutions.count)
                whole.substitutions.append(whole.substitutions.count)
                continue
            }
            whole.fixed += text.utf8.count
            for (n, piece) in text.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).enumerated() {
                if n > 0 { components.append(component()) }
                components[components.count - 1].fixed += piece.count
            }
        }
        return components + [whole]
    }

    /// Why no message can make this name fit, for the parser; nil when it can.
    /// Each substitution needs at least one byte.
    public func lengthProblem(_ kind: Kind) -> String? {
        for span in spans(kind) where span.fixed + span.substitutions.count > span.limit {
            let counting = span.substitutions.isEmpty ? "" : ", counting one byte for each substitution"
            return "\(span.what) longer than \(span.limit) bytes\(counting)"
        }
        return nil
    }

    /// The name with substitutions made safe: lower case, only letters,
    /// digits and `._-+@` (others become `_`), no leading `-` or `.`,
    /// bounded. Nil when a substitution comes out empty: a sender must
    /// not be able to turn `lists/$1` into `lists/`.
    ///
    /// The result always fits the limits of `kind`: a name libnotmuch or
    /// the file system refused would fail the message on every retry. Long
    /// substitutions are shortened, the longest first, so short ones stay whole.
    func resolve(captures: [String], extension recipientExtension: String?, as kind: Kind = .tag) -> String? {
        var values: [String] = []
        for part in parts {
            switch part {
            case .literal: continue
            case .capture(let n):
                guard n <= captures.count, let safe = Self.sanitise(captures[n - 1]) else { return nil }
                values.append(safe)
            case .recipientExtension:
                guard let value = recipientExtension, let safe = Self.sanitise(value) else { return nil }
                values.append(safe)
            }
        }
        var lengths = values.map(\.utf8.count)
        for span in spans(kind) {
            let fitted = Self.fit(span.substitutions.map { lengths[$0] }, into: span.limit - span.fixed)
            for (index, length) in zip(span.substitutions, fitted) { lengths[index] = length }
        }
        var result = ""
        var next = 0
        for part in parts {
            if case .literal(let text) = part { result += text; continue }
            guard let piece = Self.prefix(values[next], bytes: lengths[next]) else { return nil }
            result += piece
            next += 1
        }
        return result
    }

    /// Shares `budget` bytes among texts of the given lengths: the shortest
    /// keep their length while they are under an equal share, and what they
    /// leave goes to the longer ones.
    static func fit(_ lengths: [Int], into budget: Int) -> [Int] {
        var result = lengths
        var remaining = max(budget, 0)
        let shortestFirst = lengths.indices.sorted { lengths[$0] < lengths[$1] }
        for (placed, index) in shortestFirst.enumerated() {
            result[index] = min(lengths[index], remaining / (shortestFirst.count - placed))
            remaining -= result[index]
        }
        return result
    }

    /// At most `bytes` bytes of `text`, never half a character; nil if nothing is left.
    static func prefix(_ text: String, bytes: Int) -> String? {
        let utf8 = Array(text.utf8)
        var end = min(bytes, utf8.count)
        while end > 0, end < utf8.count, utf8[end] & 0xC0 == 0x80 { end -= 1 }
        return end == 0 ? nil : String(decoding: utf8[..<end], as: UTF8.self)
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
