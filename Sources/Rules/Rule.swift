internal import MaildirKit

/// A rules file, parsed: rules in file order.
public struct RuleSet: Sendable {
    public let rules: [Rule]
    /// Where the rules came from, for messages.
    public let origin: String
    /// Runs before the rules, feeding the same tags (a Sieve script).
    public internal(set) var prelude: (any RulePrelude)?

    public init(rules: [Rule], origin: String) {
        self.rules = rules
        self.origin = origin
    }

    public static let empty = RuleSet(rules: [], origin: "")

    public var isEmpty: Bool { rules.isEmpty && prelude == nil }
}

/// One rule: `ACTIONS -- CONDITION`.
public struct Rule: Sendable {
    public let line: Int
    public let actions: [Action]
    public let condition: Condition
    /// The rule as written, for `explain`.
    public let text: String
}

public enum Action: Sendable, Equatable, CustomStringConvertible {
    case addTag(Template)
    case removeTag(Template)
    case folder(Template)
    case stop
    case discard

    /// Spelled as the effect it makes (`Effect`), with the template's
    /// `$1`… where the message's text will go.
    public var description: String {
        switch self {
        case .addTag(let tag): Effect.addTag(tag.description).description
        case .removeTag(let tag): Effect.removeTag(tag.description).description
        case .folder(let folder): Effect.folder(folder.description).description
        case .stop: "stop"
        case .discard: Effect.discard.description
        }
    }
}

/// A tag or folder name that may take parts of the message: `$1`…`$9`
/// (the captures of the rule's regular expression) and `$extension`.
public struct Template: Sendable, Equatable, CustomStringConvertible {
    public enum Part: Sendable, Equatable {
        case literal(String)
        case capture(Int)
        case recipientExtension
    }

    public let parts: [Part]

    public var isLiteral: Bool { parts.allSatisfy { if case .literal = $0 { true } else { false } } }

    /// The fixed text before the first substitution: what a sender cannot change.
    public var fixedPrefix: String {
        var prefix = ""
        for part in parts {
            guard case .literal(let text) = part else { break }
            prefix += text
        }
        return prefix
    }

    /// Why this can never be a folder, from what the rule itself writes:
    /// the folder gate (MailFolder) on the name with each substitution
    /// standing for a harmless word. Nil when it may be one; a delivery
    /// puts the name with its real substitutions through the same gate.
    public var folderProblem: String? {
        let sample = parts.map { part -> String in
            if case .literal(let text) = part { return text }
            return "x"
        }.joined()
        do { _ = try MailFolder.components(of: sample) } catch {
            return error.message.replacing("'\(sample)'", with: "'\(description)'")
        }
        return nil
    }

    public var description: String {
        parts.map { part -> String in
            switch part {
            case .literal(let text): return text
            case .capture(let n): return "$\(n)"
            case .recipientExtension: return "$extension"
            }
        }.joined()
    }
}

/// What a rule tests. Leaves the program evaluates itself (headers, the
/// envelope, size) mix with notmuch queries under and / or / not.
public indirect enum Condition: Sendable, CustomStringConvertible {
    case all([Condition])
    case any([Condition])
    case not(Condition)
    /// Matches every message (`*`).
    case always
    /// A notmuch query, evaluated against the message just indexed.
    case query(String)
    /// Some occurrence of the header (unfolded, RFC 2047-decoded) matches;
    /// with no pattern, the header is present.
    case header(name: String, pattern: Pattern?)
    case recipient(Pattern)
    case sender(Pattern)
    case recipientExtension(String)
    case size(SizeComparison, Int)

    public enum SizeComparison: String, Sendable { case larger = ">", smaller = "<" }

    public var description: String {
        switch self {
        case .all(let parts): return "(" + parts.map(\.description).joined(separator: " and ") + ")"
        case .any(let parts): return "(" + parts.map(\.description).joined(separator: " or ") + ")"
        case .not(let part): return "not \(part)"
        case .always: return "*"
        case .query(let query): return query
        case .header(let name, let pattern): return "header:\(name)" + (pattern.map { "~\($0)" } ?? "")
        case .recipient(let pattern): return "recipient:\(pattern)"
        case .sender(let pattern): return "sender:\(pattern)"
        case .recipientExtension(let value): return "extension:\(value)"
        case .size(let comparison, let bytes): return "size:\(comparison.rawValue)\(bytes)"
        }
    }
}

