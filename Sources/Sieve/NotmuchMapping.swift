internal import MaildirKit
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
    ///
    /// Text from the message (see SieveText) is never an operation: it adds
    /// to one tag, one flag or one folder level, the script decides which.
    public func effects(of outcome: SieveOutcome, notes: inout [String]) -> [Effect] {
        if outcome.isDiscarded { return [.discard] }
        var effects: [Effect] = []
        for operations in outcome.tagTexts {
            for word in operations.words() {
                switch Self.tagOperation(word) {
                case .success(let effect): effects.append(effect)
                case .failure(let problem): notes.append("\(origin): tag operation '\(word)' \(problem.reason); skipped")
                }
            }
        }
        var flags: [SieveText] = []
        for store in outcome.allStores { flags += store.flagTexts }
        for flag in Self.uniqueIgnoringCase(flags) {
            if flag.hasMessageText, Self.isSystemFlag(flag.plain) {
                notes.append("\(origin): flag '\(flag)' comes from the message; only the script sets \\Seen, "
                             + "\\Flagged, $Junk and the other flags with a meaning; skipped")
                continue
            }
            if let effect = Self.tagEffect(forFlag: flag.plain) { effects.append(effect) }
        }
        let stores = outcome.allStores
        let first = stores[0]
        let firstFolder = first.name.flatMap { folder(for: $0) }
        if let firstFolder {
            effects.append(first.create ? .folder(firstFolder) : .existingFolder(firstFolder))
        }
        // The other stores: more files of the one message.
        var copied: Set<String> = [firstFolder ?? ""]
        for store in stores.dropFirst() {
            let target = store.name.flatMap { folder(for: $0) } ?? ""
            guard copied.insert(target).inserted else { continue }
            effects.append(.copy(target, mustExist: !store.create && !target.isEmpty))
        }
        return effects
    }

    /// The `fileinto`s whose folder no delivery can use (the folder gate,
    /// MailFolder, refuses it: absolute, `..`, `.notmuch`, tmp/new/cur),
    /// as FILE:LINE: messages for `check-rules`. At delivery such a
    /// message stays in the default folder and the reason is logged.
    public func folderProblems() -> [String] {
        script.literalMailboxes.compactMap { line, name -> String? in
            guard let folder = folder(for: name) else { return nil }
            do throws(FolderError) { _ = try MailFolder.components(of: folder) } catch {
                return "\(origin):\(line): fileinto \"\(name)\": \(error.message)"
            }
            return nil
        }
    }

    struct TagProblem: Error { let reason: String }

    /// One word of a `tag` action: its sign must be the script's; the text
    /// from the message in it is cleaned as a rules substitution is (lower
    /// case; letters, digits and `._-+@`; anything else `_`), so it can
    /// hold no space, sign or separator that would make it more than one
    /// tag, and an empty value skips the word, as in the rules.
    static func tagOperation(_ word: SieveText) -> Result<Effect, TagProblem> {
        guard let first = word.pieces.first, !first.fromMessage,
              let sign = first.text.first, sign == "+" || sign == "-" else {
            return .failure(TagProblem(reason: "is not +TAG or -TAG written in the script"))
        }
        var name = ""
        for (index, piece) in word.pieces.enumerated() {
            if !piece.fromMessage {
                name += index == 0 ? String(piece.text.dropFirst()) : piece.text
            } else if let cleaned = Template.cleanedName(piece.text) {
                name += cleaned
            } else {
                return .failure(TagProblem(reason: "has a value from the message that is empty after cleaning"))
            }
        }
        guard !name.isEmpty, name.utf8.count <= Template.maximumTagLength else {
            return .failure(TagProblem(reason: "is not +TAG or -TAG of 1 to \(Template.maximumTagLength) bytes"))
        }
        return .success(sign == "+" ? .addTag(name) : .removeTag(name))
    }

    /// The maildir folder of a mailbox name, relative to the mail root;
    /// nil for the top level (`INBOX`, and names under it, lose that level).
    /// An absolute name keeps its leading `/`, for the folder gate to refuse.
    public func folder(for mailbox: String) -> String? { folder(for: SieveText(script: mailbox)) }

    /// As above; text from the message adds to one level and never makes
    /// another: the separator, `/` and control characters in it become `_`.
    public func folder(for mailbox: SieveText) -> String? {
        var text = ""
        for piece in mailbox.pieces {
            guard piece.fromMessage else { text += piece.text; continue }
            text += String(piece.text.map { $0 == separator || $0 == "/" || $0.isControlLike ? "_" : $0 })
        }
        var levels = text.split(separator: separator, omittingEmptySubsequences: true).map(String.init)
        if let first = levels.first, first.uppercased() == "INBOX" { levels.removeFirst() }
        if levels.isEmpty { return nil }
        return (text.hasPrefix("/") ? "/" : "") + levels.joined(separator: "/")
    }

    /// Whether a flag has a meaning beyond a keyword: a `\` system flag, or
    /// one of the keywords mapped onto notmuch's tags.
    static func isSystemFlag(_ flag: String) -> Bool {
        flag.hasPrefix("\\") || systemFlags[flag.lowercased()] != nil
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

    static func uniqueIgnoringCase(_ flags: [SieveText]) -> [SieveText] {
        var seen: Set<String> = []
        return flags.filter { seen.insert($0.plain.lowercased()).inserted }
    }
}

extension Character {
    /// A C0 or C1 control character, DEL, or a line or paragraph separator.
    var isControlLike: Bool {
        unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0.value == 0x2028 || $0.value == 0x2029 }
    }
}
