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
    /// A rule that could not be evaluated as written (a regular expression
    /// that hit its limit, the time budget spent), already taken as not
    /// matching: for the log. `problem` starts with FILE:LINE.
    func report(_ problem: String)
}

extension MessageFacts {
    public func report(_ problem: String) {}
}

/// One step a matching rule asks for, with names already resolved.
public enum Effect: Sendable, Equatable, CustomStringConvertible {
    case addTag(String)
    case removeTag(String)
    case folder(String)
    /// The folder, only if it exists already (Sieve's fileinto without
    /// :create); otherwise the message stays where it was delivered.
    case existingFolder(String)
    /// One more file of the message in this folder ("" the top level),
    /// besides the one where it is stored (Sieve's further fileinto and
    /// keep); `mustExist` as for `existingFolder`.
    case copy(String, mustExist: Bool)
    case discard

    public var description: String {
        switch self {
        case .addTag(let tag): return "+\(tag)"
        case .removeTag(let tag): return "-\(tag)"
        case .folder(let folder): return "folder:\(folder)"
        case .existingFolder(let folder): return "folder:\(folder) (if it exists)"
        case .copy(let folder, let mustExist):
            return "copy:\(folder.isEmpty ? "(default)" : folder)" + (mustExist ? " (if it exists)" : "")
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
    /// Why an action was skipped (e.g. a capture that sanitised to nothing),
    /// or a condition taken as not matching (a limit reached).
    public let notes: [String]
}

/// The results of every leaf that needs no database (headers, envelope,
/// size), for every rule of a RuleSet, worked out before the database is
/// opened: regular expressions may be slow, and nothing should be slow
/// while other programs wait for the database's write lock. Made by
/// `RuleSet.preevaluate`, used by `RuleSet.evaluate(_:preevaluated:apply:)`.
public struct PreevaluatedLeaves: Sendable {
    /// Per rule, per leaf in the order `Condition.leaves` walks them; nil for a query.
    let results: [[LeafResult?]]
    /// Per rule, the limits it ran into.
    let notes: [[String]]
    /// The prelude's run, when it needs no database.
    var prelude: PreludeResult?
}

struct LeafResult: Sendable {
    let matched: Bool
    /// A regular expression's captures, when it matched.
    let captures: [String]?
    let detail: String?
}

/// The time all the rules of one message may spend on regular expressions.
final class TimeBudget {
    let allowed: Duration
    let deadline: ContinuousClock.Instant
    private(set) var spent = false

    init(_ allowed: Duration) {
        self.allowed = allowed
        deadline = ContinuousClock.now.advanced(by: allowed)
    }

    /// Whether a regular expression may still run, and whether this call
    /// is the first to find the budget spent (it is reported once).
    func check() -> (allowed: Bool, firstRefusal: Bool) {
        if spent { return (false, false) }
        if ContinuousClock.now < deadline { return (true, false) }
        spent = true
        return (false, true)
    }
}

extension RuleSet {
    /// How long the regular expressions of all the rules may take for one
    /// message. A single match is bounded by Pattern.matchLimit; this bounds
    /// their sum, for a message with thousands of headers.
    public static let timeBudget: Duration = .seconds(2)

    /// Evaluates every leaf of every rule that needs no database, once.
    /// Every leaf, because which ones the rules would reach depends on the
    /// queries, answered later.
    public func preevaluate(_ facts: MessageFacts, budget: Duration = RuleSet.timeBudget) -> PreevaluatedLeaves {
        let budget = TimeBudget(budget)
        var results: [[LeafResult?]] = []
        var notes: [[String]] = []
        for rule in rules {
            var evaluation = Evaluation(facts: facts, rule: rule, origin: origin, budget: budget)
            results.append(rule.condition.leaves.map { leaf in
                if case .query = leaf { return nil }
                return evaluation.evaluateLeaf(leaf)
            })
            notes.append(evaluation.notes)
        }
        var preluded: PreludeResult?
        if let prelude, !prelude.needsDatabase { preluded = prelude.run(facts, budget: budget.allowed) }
        return PreevaluatedLeaves(results: results, notes: notes, prelude: preluded)
    }

    /// Applies the rules in order, handing each effect to `apply` at once so
    /// that a later rule's query sees the tags an earlier rule set. Stops
    /// after a rule with `stop` or `discard`.
    ///
    /// With `preevaluated` (from `preevaluate` on this RuleSet), only the
    /// queries are evaluated here; the outcome is the same as without it,
    /// captures included.
    @discardableResult
    public func evaluate(_ facts: MessageFacts, preevaluated: PreevaluatedLeaves? = nil,
                         budget: Duration = RuleSet.timeBudget,
                         apply: (Effect) throws -> Void) throws -> [RuleTrace] {
        var traces: [RuleTrace] = []
        if let prelude {
            // The prelude first; its discard ends everything, as a rule's does.
            let result = preevaluated?.prelude ?? prelude.run(facts, budget: budget)
            traces.append(preludeTrace(prelude, result))
            for effect in result.effects { try apply(effect) }
            if result.effects.contains(.discard) { return traces }
        }
        let budget = TimeBudget(budget)
        for (index, rule) in rules.enumerated() {
            var evaluation = Evaluation(facts: facts, rule: rule, origin: origin, budget: budget)
            if let preevaluated, index < preevaluated.results.count,
               preevaluated.results[index].count == rule.condition.leafCount {
                evaluation.known = preevaluated.results[index]
                evaluation.notes = preevaluated.notes[index]
            }
            let matched = try evaluation.test(rule.condition, firstLeaf: 0)
            var effects: [Effect] = []
            var notes = evaluation.notes
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

extension Condition {
    /// The leaves, left to right; and/or/not are not leaves.
    var leaves: [Condition] {
        switch self {
        case .all(let parts), .any(let parts): return parts.flatMap(\.leaves)
        case .not(let part): return part.leaves
        default: return [self]
        }
    }

    var leafCount: Int {
        switch self {
        case .all(let parts), .any(let parts): return parts.reduce(0) { $0 + $1.leafCount }
        case .not(let part): return part.leafCount
        default: return 1
        }
    }
}

/// Evaluates one rule's condition, short-circuiting, and remembers the
/// captures of the first regular expression that matched.
struct Evaluation {
    let facts: MessageFacts
    let rule: Rule
    let origin: String
    let budget: TimeBudget
    /// Leaves already evaluated (`RuleSet.preevaluate`), by leaf number.
    var known: [LeafResult?] = []
    var captures: [String] = []
    var checks: [(condition: String, result: Bool, detail: String?)] = []
    var notes: [String] = []

    init(facts: MessageFacts, rule: Rule, origin: String, budget: TimeBudget) {
        self.facts = facts
        self.rule = rule
        self.origin = origin
        self.budget = budget
    }

    /// `firstLeaf`: the number of the condition's first leaf in the rule,
    /// so that a pre-evaluated result is found whatever was skipped before.
    mutating func test(_ condition: Condition, firstLeaf: Int) throws -> Bool {
        switch condition {
        case .all(let parts):
            var leaf = firstLeaf
            for part in parts {
                if try !test(part, firstLeaf: leaf) { return false }
                leaf += part.leafCount
            }
            return true
        case .any(let parts):
            var leaf = firstLeaf
            for part in parts {
                if try test(part, firstLeaf: leaf) { return true }
                leaf += part.leafCount
            }
            return false
        case .not(let part):
            // Captures from inside a negation would describe a non-match.
            let saved = captures
            let result = try !test(part, firstLeaf: firstLeaf)
            captures = saved
            return result
        case .query(let query):
            return record(condition, LeafResult(matched: try facts.matches(query: query), captures: nil, detail: nil))
        default:
            let known = firstLeaf < self.known.count ? self.known[firstLeaf] : nil
            return record(condition, known ?? evaluateLeaf(condition))
        }
    }

    /// A leaf other than a query, on its own: no captures remembered, no check recorded.
    mutating func evaluateLeaf(_ condition: Condition) -> LeafResult {
        switch condition {
        case .header(let name, let pattern):
            let values = facts.headerValues(name)
            guard let pattern else { return LeafResult(matched: !values.isEmpty, captures: nil, detail: values.first) }
            for value in values {
                if let found = match(pattern, value, in: condition) {
                    return LeafResult(matched: true, captures: found, detail: "\(name): \(value)")
                }
            }
            return LeafResult(matched: false, captures: nil, detail: values.first.map { "\(name): \($0)" } ?? "no \(name) header")
        case .recipient(let pattern):
            return matchEnvelope(pattern, facts.recipient, in: condition, absent: "no recipient")
        case .sender(let pattern):
            return matchEnvelope(pattern, facts.sender, in: condition, absent: "no sender")
        case .recipientExtension(let value):
            let actual = facts.recipientExtension
            return LeafResult(matched: actual?.lowercased() == value.lowercased(), captures: nil,
                              detail: actual.map { "+\($0)" } ?? "no extension")
        case .size(let comparison, let bytes):
            let result = comparison == .larger ? facts.size > bytes : facts.size < bytes
            return LeafResult(matched: result, captures: nil, detail: "\(facts.size) bytes")
        case .always:
            return LeafResult(matched: true, captures: nil, detail: nil)
        case .all, .any, .not, .query:
            preconditionFailure("not a leaf evaluated without the database: \(condition)")
        }
    }

    private mutating func matchEnvelope(_ pattern: Pattern, _ value: String?, in condition: Condition,
                                        absent: String) -> LeafResult {
        guard let value else { return LeafResult(matched: false, captures: nil, detail: absent) }
        let found = match(pattern, value, in: condition)
        return LeafResult(matched: found != nil, captures: found, detail: value)
    }

    /// The captures, or nil for no match; a limit reached is reported and
    /// counts as no match, since a rule must never stop mail.
    private mutating func match(_ pattern: Pattern, _ value: String, in condition: Condition) -> [String]? {
        let (allowed, firstRefusal) = budget.check()
        guard allowed else {
            if firstRefusal {
                complain("the rules' time budget of \(budget.allowed) is spent; this and the remaining "
                         + "regular expressions are taken as not matching")
            }
            return nil
        }
        do {
            return try pattern.match(value)
        } catch {
            complain("\(condition) could not be evaluated (\(error)); taken as not matching")
            return nil
        }
    }

    private mutating func complain(_ problem: String) {
        let note = "\(origin):\(rule.line): \(problem)"
        // One report per problem and rule: a header repeated a thousand times is one line.
        guard !notes.contains(note) else { return }
        notes.append(note)
        facts.report(note)
    }

    private mutating func record(_ condition: Condition, _ leaf: LeafResult) -> Bool {
        if leaf.matched, let found = leaf.captures, captures.isEmpty { captures = found }
        checks.append((condition.description, leaf.matched, leaf.detail))
        return leaf.matched
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

    /// A name cleaned as substitutions are (lower case, only letters,
    /// digits and `._-+@`, bounded); nil when nothing is left.
    public static func cleanedName(_ text: String) -> String? { sanitise(text) }

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
