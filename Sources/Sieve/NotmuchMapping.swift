import Rules

/// A Sieve script as notmuch-deliver runs it: before the native rules,
/// its outcome mapped onto their effects (tags, a folder, discard).
public struct SieveRules: RulePrelude {
    public let script: SieveScript
    /// What separates levels in the script's mailbox names (`.` for
    /// Dovecot's Maildir++ layout, `/` otherwise); each level becomes a
    /// directory under the mail root.
    public let separator: Character

    public init(script: SieveScript, separator: Character = SieveRules.defaultSeparator) {
        self.script = script
        self.separator = separator
    }

    public static let defaultSeparator: Character = "/"

    public var origin: String { script.origin }
    public var needsDatabase: Bool { script.needsDatabase }

    public func run(_ facts: MessageFacts, budget: Duration) -> PreludeResult {
        let outcome: SieveOutcome
        do {
            outcome = try script.run(facts, budget: budget)
        } catch {
            // Pigeonhole keeps the message when a script fails; so do we, without the script's effects.
            let note = "\(error); delivering as if there were no Sieve script"
            facts.report(note)
            return PreludeResult(effects: [], notes: [note])
        }
        var notes = outcome.notes
        let effects = self.effects(of: outcome, notes: &notes)
        for note in notes where !outcome.notes.contains(note) { facts.report(note) }
        let checks = outcome.trace.map { (condition: $0, result: true, detail: String?.none) }
        return PreludeResult(effects: effects, checks: checks, notes: notes)
    }

    /// The effects of an outcome: the `tag` operations, the tags of every
    /// store's flags (notmuch has one set of tags per message), the first
    /// store's folder; or discard when nothing is stored.
    public func effects(of outcome: SieveOutcome, notes: inout [String]) -> [Effect] {
        if outcome.isDiscarded { return [.discard] }
        var effects: [Effect] = []
        for operations in outcome.tagOperations {
            for word in operations.split(whereSeparator: { $0 == " " || $0 == "\t" }) {
                let name = String(word.dropFirst())
                guard let sign = word.first, sign == "+" || sign == "-", !name.isEmpty,
                      name.utf8.count <= Template.maximumTagLength else {
                    notes.append("\(origin): tag operation '\(word)' is not +TAG or -TAG; skipped")
                    continue
                }
                effects.append(sign == "+" ? .addTag(name) : .removeTag(name))
            }
        }
        var flags: [String] = []
        for store in outcome.allStores { flags += store.flags }
        for flag in Self.uniqueIgnoringCase(flags) {
            if let effect = Self.tagEffect(forFlag: flag) { effects.append(effect) }
        }
        let stores = outcome.allStores
        let first = stores[0]
        let firstFolder = first.mailbox.flatMap { folder(for: $0) }
        if let firstFolder {
            effects.append(first.create ? .folder(firstFolder) : .existingFolder(firstFolder))
        }
        // The other stores: more files of the one message.
        var copied: Set<String> = [firstFolder ?? ""]
        for store in stores.dropFirst() {
            let target = store.mailbox.flatMap { folder(for: $0) } ?? ""
            guard copied.insert(target).inserted else { continue }
            effects.append(.copy(target, mustExist: !store.create && !target.isEmpty))
        }
        return effects
    }

    /// The maildir folder of a mailbox name, relative to the mail root;
    /// nil for the top level (`INBOX`, and names under it, lose that level).
    public func folder(for mailbox: String) -> String? {
        var levels = mailbox.split(separator: separator, omittingEmptySubsequences: true).map(String.init)
        if let first = levels.first, first.uppercased() == "INBOX" { levels.removeFirst() }
        return levels.isEmpty ? nil : levels.joined(separator: "/")
    }

    /// IMAP flags that notmuch has tags for; `\Seen` is the absence of `unread`.
    static let systemFlags: [String: Effect] = [
        "\\seen": .removeTag("unread"),
        "\\flagged": .addTag("flagged"),
        "\\answered": .addTag("replied"),
        "\\draft": .addTag("draft"),
        "\\deleted": .addTag("deleted"),
        "$junk": .addTag("spam"),
        "$forwarded": .addTag("passed"),
    ]

    /// A flag's tag: the table above, else a keyword becomes a tag of its
    /// name cleaned as the rules clean substitutions; other `\` flags
    /// (`\Recent`) have no tag.
    public static func tagEffect(forFlag flag: String) -> Effect? {
        if let known = systemFlags[flag.lowercased()] { return known }
        if flag.hasPrefix("\\") { return nil }
        return Template.cleanedName(flag).map { .addTag($0) }
    }

    static func uniqueIgnoringCase(_ flags: [String]) -> [String] {
        var seen: Set<String> = []
        return flags.filter { seen.insert($0.lowercased()).inserted }
    }
}
