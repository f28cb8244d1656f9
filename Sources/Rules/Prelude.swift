/// A program that runs before the rules and feeds the same tag set: a
/// Sieve script. Defined here, implemented elsewhere, so that the rules
/// know nothing of Sieve and a delivery handles both as one RuleSet.
public protocol RulePrelude: Sendable {
    /// Where it came from, for messages.
    var origin: String { get }
    /// Whether it asks the database (a notmuch query); if not, it runs
    /// entirely before the database is opened.
    var needsDatabase: Bool { get }
    /// Runs it on a message. Never fails: a run that cannot finish has no
    /// effects and says why in its notes.
    func run(_ facts: MessageFacts, budget: Duration) -> PreludeResult
}

/// What a prelude asks for, as the rules' effects, and what it did.
public struct PreludeResult: Sendable {
    public var effects: [Effect]
    /// The steps it took, for `explain`: a description and its outcome.
    public var checks: [(condition: String, result: Bool, detail: String?)]
    /// Limits met and failures, each starting with FILE:LINE; also logged.
    public var notes: [String]

    public init(effects: [Effect], checks: [(condition: String, result: Bool, detail: String?)] = [], notes: [String] = []) {
        self.effects = effects
        self.checks = checks
        self.notes = notes
    }
}

extension RuleSet {
    /// These rules, with `prelude` run before them.
    public func with(prelude: (any RulePrelude)?) -> RuleSet {
        var copy = self
        copy.prelude = prelude
        return copy
    }

    /// The trace `explain` shows for the prelude: line 0, its origin as text.
    func preludeTrace(_ prelude: any RulePrelude, _ result: PreludeResult) -> RuleTrace {
        let rule = Rule(line: 0, actions: [], condition: .always, text: "Sieve script \(prelude.origin)")
        return RuleTrace(rule: rule, matched: true, checks: result.checks, effects: result.effects, notes: result.notes)
    }
}
