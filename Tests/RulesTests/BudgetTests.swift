import Rules
import Testing
import TestSupport

/// Slow regular expressions: each match is bounded, so is the sum for one
/// message, and what is cut off is said (with its line), not swallowed.
@Suite struct RuleBudgetTests {
    /// `^(a+)+$` backtracks exponentially on a run of a's that does not end the value.
    static let catastrophic = String(repeating: "a", count: 5_000) + "!"

    @Test func matchLimitIsReportedWithItsLineAndDoesNotMatch() throws {
        let rules = parse("+fine -- *\n+slow -- header:Subject~/^(a+)+$/")
        let clock = ContinuousClock()
        var traces: [RuleTrace] = []
        let elapsed = try clock.measure {
            traces = try rules.evaluate(TableFacts([("Subject", Self.catastrophic)])) { _ in }
        }
        #expect(traces.map(\.matched) == [true, false])
        #expect(traces[1].notes == ["rules:2: header:Subject~/^(a+)+$/ could not be evaluated "
                                    + "(backtracking limit reached); taken as not matching"])
        #expect(elapsed < .milliseconds(100), "one limited match took \(elapsed)")
    }

    @Test func aMatchThatSucceedsIsUnaffected() throws {
        let rules = parse("+ok/$1 -- header:Subject~/^(a+)+$/")
        #expect(try effects(rules, TableFacts([("Subject", String(repeating: "a", count: 5_000))]))
                == [.addTag("ok/" + String(repeating: "a", count: 64))])
    }

    @Test func spentBudgetStopsTheRemainingExpressionsAndIsSaidOnce() throws {
        let headers = Array(repeating: ("Received", Self.catastrophic), count: 200) + [("Subject", "late")]
        let rules = parse("""
            +slow -- header:Received~/^(a+)+$/
            +late -- header:Subject~/late/
            +big -- size:>10
            """)
        let clock = ContinuousClock()
        var traces: [RuleTrace] = []
        let elapsed = try clock.measure {
            traces = try rules.evaluate(TableFacts(headers), budget: .milliseconds(50)) { _ in }
        }
        #expect(elapsed < .milliseconds(500), "the budget did not stop the rules: \(elapsed)")
        #expect(traces.map(\.matched) == [false, false, true], "a leaf without a regex still counts")
        let allNotes: [String] = traces.flatMap { $0.notes }
        let budgetNotes = allNotes.filter { $0.contains("time budget") }
        #expect(budgetNotes.count == 1, "\(allNotes)")
        #expect(budgetNotes.first?.hasPrefix("rules:1: the rules' time budget of ") == true)
    }

    @Test func onlyTheFirst64KiBOfAValueIsSearched() throws {
        let rules = parse("+end -- header:X~/b$/\n+start -- header:X~/^a/")
        let value = String(repeating: "a", count: Pattern.maximumSubjectLength) + "b"
        #expect(try effects(rules, TableFacts([("X", value)])) == [.addTag("start")])
        // A character across the cut is left out whole, not split into invalid UTF-8.
        let straddling = String(repeating: "a", count: Pattern.maximumSubjectLength - 1) + "é"
        let anyEnd = parse("+seen -- header:X~/a$/")
        #expect(try effects(anyEnd, TableFacts([("X", straddling)])) == [.addTag("seen")])
    }

    // MARK: Pre-evaluation

    /// Counts what the rules ask, to prove that the pre-evaluated leaves are not asked again.
    final class CountingFacts: MessageFacts {
        let base: TableFacts
        var headerLookups = 0
        var queries: [String] = []
        var reports: [String] = []

        init(_ base: TableFacts) { self.base = base }
        func headerValues(_ name: String) -> [String] { headerLookups += 1; return base.headerValues(name) }
        var recipient: String? { base.recipient }
        var sender: String? { base.sender }
        var recipientExtension: String? { base.recipientExtension }
        var size: Int { base.size }
        func matches(query: String) throws -> Bool { queries.append(query); return try base.matches(query: query) }
        func report(_ problem: String) { reports.append(problem) }
    }

    static let rulesText = """
        +neg/$1 -- not (header:X~/(x+)/ and header:W~/w/) and header:Y~/(y+)/
        +first/$1 -- (header:Z~/(nomatch)/ or sender:/^(\\w+)@/) and tag:a
        +second/$1 -- header:Y~/(y)/ or tag:b
        +q -- not tag:a or recipient:/^bob/
        +ext/$extension -- extension:shop and size:<2000
        -inbox stop -- header:List-Id and not header:Y~/^z/
        +never -- *
        """

    static let facts = TableFacts([("X", "xxx"), ("Y", "yy"), ("List-Id", "<l.example.org>")],
                                 recipient: "bob+shop@example.org", sender: "alice@example.org",
                                 recipientExtension: "shop", size: 1500)
        .answering(["tag:a": true, "tag:b": false, "not (tag:a)": false])

    @Test func preevaluatedRulesGiveTheSameEffectsAndChecks() throws {
        let rules = parse(Self.rulesText)
        var live: [Effect] = []
        let liveTraces = try rules.evaluate(Self.facts) { live.append($0) }

        let counting = CountingFacts(Self.facts)
        let known = rules.preevaluate(counting)
        #expect(counting.queries.isEmpty, "pre-evaluation must not touch the database")
        let lookupsBefore = counting.headerLookups
        var split: [Effect] = []
        let splitTraces = try rules.evaluate(counting, preevaluated: known) { split.append($0) }

        #expect(counting.headerLookups == lookupsBefore, "a header was evaluated again under the lock")
        #expect(split == live)
        #expect(live == [.addTag("neg/yy"), .addTag("first/alice"), .addTag("second/y"), .addTag("q"),
                         .addTag("ext/shop"), .removeTag("inbox")])
        #expect(splitTraces.map(\.matched) == liveTraces.map(\.matched))
        #expect(splitTraces.map { $0.checks.map(\.condition) } == liveTraces.map { $0.checks.map(\.condition) })
        #expect(splitTraces.map { $0.checks.map(\.detail) } == liveTraces.map { $0.checks.map(\.detail) })
    }

    @Test func preevaluationSpendsTheBudgetBeforeTheDatabase() throws {
        let rules = parse("+slow -- header:Received~/^(a+)+$/ and tag:x\n+late -- header:Subject~/late/ or tag:y")
        let counting = CountingFacts(TableFacts(Array(repeating: ("Received", Self.catastrophic), count: 200)
                                               + [("Subject", "late")]).answering(["tag:x": true, "tag:y": false]))
        let clock = ContinuousClock()
        let start = clock.now
        let known = rules.preevaluate(counting, budget: .milliseconds(50))
        #expect(clock.now - start < .milliseconds(500))
        #expect(counting.reports.count == 2, "\(counting.reports)")
        #expect(counting.reports.contains { $0.hasPrefix("rules:1:") && $0.contains("backtracking limit") })
        #expect(counting.reports.contains { $0.contains("time budget") })

        let evaluateStart = clock.now
        let traces = try rules.evaluate(counting, preevaluated: known) { _ in }
        #expect(clock.now - evaluateStart < .milliseconds(500), "regular expressions ran again")
        #expect(traces.map(\.matched) == [false, false])
        #expect(counting.reports.count == 2, "reported again")
        #expect(traces.flatMap { $0.notes }.count == 2, "the notes reach explain's traces")
    }

    @Test func preevaluationOfAnotherRuleSetIsIgnored() throws {
        let rules = parse("+a -- header:X~/x/")
        let other = parse("+b -- header:X~/nomatch/ and header:Y~/y/")
        let known = other.preevaluate(Self.facts)
        var applied: [Effect] = []
        try rules.evaluate(Self.facts, preevaluated: known) { applied.append($0) }
        #expect(applied == [.addTag("a")])
    }
}

@Suite struct NestedQuantifierTests {
    private func reason(_ source: String) -> String? {
        parse("+x -- header:X~/\(source)/").rules[0].condition.patternForTest?.nestedQuantifier
    }

    @Test(arguments: ["^(a+)+$", "(a*)*", "(a|a)*", "(\\w+\\s?)+x", "((ab)*c)+", "(a{2,})*", "(x(a+))*", "([a-z]+)+@"])
    func flagged(_ source: String) {
        #expect(reason(source) != nil, "\(source)")
    }

    @Test(arguments: ["^a+$", "(a+)++", "(?>a+)+", "(foo|bar)*", "[(]a+[)]+", "\\(a+\\)+", "(a{2,3})*", "(ab)+", "(a+)?"])
    func notFlagged(_ source: String) {
        #expect(reason(source) == nil, "\(source): \(reason(source) ?? "")")
    }

    @Test func ruleSetWarningsNameFileAndLine() {
        let rules = parse("+a -- *\n+b -- sender:/^(a+)+@/ or header:X~/ok/")
        #expect(rules.warnings.count == 1)
        #expect(rules.warnings.first?.hasPrefix("rules:2: warning: /^(a+)+@/ may backtrack") == true)
    }
}

extension Condition {
    var patternForTest: Pattern? {
        if case .header(_, let pattern) = self { return pattern }
        return nil
    }
}
