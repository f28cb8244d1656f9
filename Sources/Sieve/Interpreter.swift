import Rules

extension SieveScript {
    /// How long one run may take, regular expressions included: the rules'
    /// budget, for the same reason (nothing in a message may stall a delivery).
    public static let timeBudget: Duration = .seconds(2)

    /// Actions one run may take (Pigeonhole's default limit): a script
    /// cannot store a message into thousands of folders.
    public static let maximumActions = 32

    /// Runs the script on a message. Throws when the run cannot finish
    /// (its time budget spent, too many actions): the caller then delivers
    /// as if there were no script, as Pigeonhole falls back to the
    /// implicit keep.
    public func run(_ facts: MessageFacts, budget: Duration = SieveScript.timeBudget) throws(SieveError) -> SieveOutcome {
        var machine = Machine(facts: facts, script: self, clock: ScriptClock(budget: budget))
        do {
            _ = try machine.execute(statements)
        } catch let problem as LocatedProblem {
            throw SieveError(file: origin, location: problem.location, message: problem.message)
        } catch {
            throw SieveError(file: origin, location: machine.currentLocation, message: "\(error)")
        }
        machine.finish()
        return machine.outcome
    }
}

/// The state of one run.
private struct Machine {
    let facts: MessageFacts
    let script: SieveScript
    let clock: ScriptClock
    var variables = Variables()
    /// imap4flags' internal variable.
    var internalFlags: [SieveText] = []
    var implicitKeep = true
    var actions = 0
    var outcome = SieveOutcome()
    var currentLocation = SieveLocation(line: 1, column: 1)

    init(facts: MessageFacts, script: SieveScript, clock: ScriptClock) {
        self.facts = facts
        self.script = script
        self.clock = clock
    }

    private func expand(_ string: ScriptString) -> String { variables.expand(string) }
    private func expandMarked(_ string: ScriptString) -> SieveText { variables.expandMarked(string) }

    /// Runs statements; true when `stop` ran.
    mutating func execute(_ statements: [Statement]) throws -> Bool {
        for statement in statements {
            currentLocation = statement.location
            try timeCheck(statement.location)
            let line = statement.location.line
            switch statement.kind {
            case .conditional(let branches, let otherwise):
                var taken: [Statement]?
                for (condition, block) in branches {
                    let result = try test(condition)
                    outcome.trace.append("line \(condition.location.line): \(condition.name) is \(result)")
                    if result { taken = block; break }
                }
                if let block = taken ?? otherwise, try execute(block) { return true }
            case .keep(let flags):
                if try store(nil, flags: flags.map(flagList) ?? internalFlags, create: false, line: line) {
                    implicitKeep = false
                }
                outcome.trace.append("line \(line): keep")
            case .discard:
                implicitKeep = false
                outcome.discardRan = true
                outcome.trace.append("line \(line): discard")
            case .stop:
                outcome.trace.append("line \(line): stop")
                return true
            case .fileinto(let mailbox, let create, let copy, let flags):
                let name = expandMarked(mailbox)
                // A duplicate of an earlier store changes nothing, the implicit keep included (as in Pigeonhole).
                if try store(name, flags: flags.map(flagList) ?? internalFlags, create: create, line: line), !copy {
                    implicitKeep = false
                }
                outcome.trace.append("line \(line): fileinto \"\(name)\"")
            case .flags(let operation, let variable, let flags):
                // The message must not choose which of the script's variables a flag list overwrites.
                if let variable, expandMarked(variable).hasMessageText {
                    let text = "\(script.origin):\(line): \(operation.rawValue): the variable's name comes from the message; skipped"
                    outcome.notes.append(text)
                    facts.report(text)
                    continue
                }
                let given = flagList(flags)
                var current = variable.map { variables.text(expand($0)).words() } ?? internalFlags
                switch operation {
                case .set: current = Self.unique(given)
                case .add: current = Self.unique(current + given)
                case .remove:
                    current.removeAll { flag in given.contains { $0.plain.lowercased() == flag.plain.lowercased() } }
                }
                if let variable {
                    variables.set(expand(variable), Self.joined(current))
                } else {
                    internalFlags = current
                }
            case .set(let name, let value, let modifiers):
                variables.set(name, Variables.apply(modifiers, to: expandMarked(value)))
            case .tag(let operations):
                let text = expandMarked(operations)
                outcome.tagTexts.append(text)
                outcome.trace.append("line \(line): tag \"\(text)\"")
            }
        }
        return false
    }

    private func timeCheck(_ location: SieveLocation) throws {
        do { try clock.check() } catch {
            throw LocatedProblem(location: location, message: "the script's time budget of \(SieveScript.timeBudget) is spent")
        }
    }

    mutating func finish() {
        guard implicitKeep else { return }
        // Already stored in the default mailbox explicitly: that is the keep.
        if outcome.stores.contains(where: { $0.mailbox == nil }) { return }
        outcome.implicitKeep = SieveStore(name: nil, flagTexts: internalFlags, create: false, line: 0)
    }

    /// One store per mailbox, as Pigeonhole merges duplicates: the later
    /// one's flags replace the earlier's. `INBOX` is the default mailbox.
    /// False for a duplicate.
    private mutating func store(_ mailbox: SieveText?, flags: [SieveText], create: Bool, line: Int) throws -> Bool {
        let mailbox = mailbox.flatMap { $0.plain.uppercased() == "INBOX" ? nil : $0 }
        if let index = outcome.stores.firstIndex(where: { $0.mailbox == mailbox?.plain }) {
            outcome.stores[index].flagTexts = flags
            return false
        }
        actions += 1
        if actions > SieveScript.maximumActions {
            throw LocatedProblem(location: currentLocation, message: "more than \(SieveScript.maximumActions) actions")
        }
        outcome.stores.append(SieveStore(name: mailbox, flagTexts: flags, create: create, line: line))
        return true
    }

    // MARK: Flags

    /// Flags of a list of strings, each holding flags separated by spaces
    /// (RFC 5232): spaces the script wrote; a value from the message is
    /// part of one flag, whatever spaces it holds (see SieveText).
    private func flagList(_ strings: [ScriptString]) -> [SieveText] {
        Self.unique(strings.flatMap { expandMarked($0).words() })
    }

    /// Flags compare without regard to case (RFC 5232); the first spelling stays.
    static func unique(_ flags: [SieveText]) -> [SieveText] {
        var seen: Set<String> = []
        return flags.filter { seen.insert($0.plain.lowercased()).inserted }
    }

    /// A flag list as a variable holds it: the flags, separated by spaces the script writes.
    static func joined(_ flags: [SieveText]) -> SieveText {
        var text = SieveText()
        for (index, flag) in flags.enumerated() {
            if index > 0 { text.append(" ", fromMessage: false) }
            text.append(flag)
        }
        return text
    }

    // MARK: Tests

    mutating func test(_ condition: Condition) throws -> Bool {
        try timeCheck(condition.location)
        currentLocation = condition.location
        switch condition.kind {
        case .constant(let value):
            return value
        case .not(let inner):
            return try !test(inner)
        case .allOf(let parts):
            for part in parts where try !test(part) { return false }
            return true
        case .anyOf(let parts):
            for part in parts where try test(part) { return true }
            return false
        case .header(let names, let keys, let match):
            let values = names.flatMap { facts.headerValues(expand($0)) }
            return try compare(values, keys, match, condition)
        case .address(let part, let headers, let keys, let match):
            let values = headers.flatMap { facts.headerValues(expand($0)) }
                .flatMap(AddressList.addresses(in:))
                .compactMap { AddressList.part(part, of: $0) }
            // As Pigeonhole: with no address at all, even :count "eq" "0" is false.
            if values.isEmpty, case .count = match.type { return false }
            return try compare(values, keys, match, condition)
        case .envelope(let part, let fields, let keys, let match):
            let values = fields.compactMap { field -> String? in
                switch expand(field).lowercased() {
                case "from": return facts.sender.map(Self.bareEnvelopeAddress)
                case "to": return facts.recipient.map(Self.bareEnvelopeAddress)
                default: return nil
                }
            }.compactMap { address -> String? in
                // The null sender `<>` has no parts but itself.
                address.isEmpty ? (part == .all ? "" : nil) : AddressList.part(part, of: address)
            }
            return try compare(values, keys, match, condition)
        case .exists(let names):
            return names.allSatisfy { !facts.headerValues(expand($0)).isEmpty }
        case .size(let over, let limit):
            return over ? facts.size > limit : facts.size < limit
        case .hasFlag(let names, let keys, let match):
            let flags = names.isEmpty ? internalFlags
                : Self.unique(names.flatMap { variables.text(expand($0)).words() })
            return try compare(flags.map(\.plain), keys, match, condition)
        case .string(let sources, let keys, let match):
            var values = sources.map(expand)
            // RFC 5229 5: for :count, empty strings are not counted.
            if case .count = match.type { values.removeAll { $0.isEmpty } }
            return try compare(values, keys, match, condition)
        case .notmuch(let query):
            // Text from the message is one phrase of the query, never an operator.
            return try facts.matches(query: expandMarked(query).notmuchQuery)
        }
    }

    static func bareEnvelopeAddress(_ address: String) -> String {
        var text = Substring(address)
        if text.hasPrefix("<") { text = text.dropFirst() }
        if text.hasSuffix(">") { text = text.dropLast() }
        return String(text)
    }

    /// Whether some value matches some key; sets the match variables of
    /// the first `:matches` or `:regex` pair that does.
    private mutating func compare(_ values: [String], _ keys: [Key], _ match: MatchSpec, _ condition: Condition) throws -> Bool {
        let comparison = Comparison(comparator: match.comparator, clock: clock)
        do {
            switch match.type {
            case .count(let relation):
                let count = String(values.count)
                return keys.contains { Comparison.holds(relation, comparison.order(count, expand($0.string))) }
            case .value(let relation):
                let expanded = keys.map { expand($0.string) }
                return values.contains { value in expanded.contains { Comparison.holds(relation, comparison.order(value, $0)) } }
            case .is:
                let expanded = keys.map { expand($0.string) }
                return values.contains { value in expanded.contains { comparison.isEqual(value, $0) } }
            case .contains:
                let expanded = keys.map { expand($0.string) }
                for value in values {
                    for key in expanded where try comparison.contains(value, key) { return true }
                }
                return false
            case .matches:
                let expanded = keys.map { expand($0.string) }
                for value in values {
                    for key in expanded {
                        if let captures = try comparison.matches(value, key) {
                            variables.setMatches(captures)
                            return true
                        }
                    }
                }
                return false
            case .regex:
                let patterns = keys.compactMap { key -> Pattern? in
                    if let compiled = key.compiled { return compiled.pattern }
                    let source = expand(key.string)
                    do { return try RegexKey(source, comparator: match.comparator).pattern } catch {
                        note(condition, "invalid regular expression '\(source)' (\(error)); taken as not matching")
                        return nil
                    }
                }
                for value in values {
                    for pattern in patterns {
                        try clock.check()
                        do {
                            if let captures = try pattern.wholeMatchAndGroups(value) {
                                variables.setMatches(captures)
                                return true
                            }
                        } catch {
                            note(condition, "\(pattern) could not be evaluated (\(error)); taken as not matching")
                        }
                    }
                }
                return false
            }
        } catch {
            throw LocatedProblem(location: condition.location, message: "the script's time budget of \(SieveScript.timeBudget) is spent")
        }
    }

    private mutating func note(_ condition: Condition, _ problem: String) {
        let text = "\(script.origin):\(condition.location.line): \(problem)"
        guard !outcome.notes.contains(text) else { return }
        outcome.notes.append(text)
        facts.report(text)
    }
}
