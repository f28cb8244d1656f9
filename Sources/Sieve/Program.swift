/// A checked script, ready to run: every command and test known, every
/// argument of the right kind, every extension used also required.

/// A string as written in the script. When the script requires
/// `variables`, `${…}` references in it are expanded when it is used.
struct ScriptString: Sendable {
    let text: String
    /// Whether it holds a `${`, so that expansion can skip most strings.
    let mayExpand: Bool

    init(_ text: String, variables: Bool) {
        self.text = text
        mayExpand = variables && Substring(text).referenceStart != nil
    }
}

enum Comparator: String, Sendable {
    case octet = "i;octet"
    case asciiCasemap = "i;ascii-casemap"
    case asciiNumeric = "i;ascii-numeric"
}

/// RFC 5231's relations.
enum Relation: String, Sendable {
    case greater = "gt", greaterOrEqual = "ge", less = "lt", lessOrEqual = "le", equal = "eq", notEqual = "ne"
}

enum MatchType: Sendable {
    case `is`, contains, matches, regex
    case count(Relation)
    case value(Relation)
}

struct MatchSpec: Sendable {
    var type: MatchType = .is
    var comparator: Comparator = .asciiCasemap
}

/// Which part of an address the address and envelope tests compare.
enum AddressPart: String, Sendable {
    case all, localpart, domain
    /// RFC 5233: the local part before the first `+`, and what follows it.
    case user, detail
}

struct Condition: Sendable {
    indirect enum Kind: Sendable {
        case constant(Bool)
        case not(Condition)
        case allOf([Condition])
        case anyOf([Condition])
        case header(names: [ScriptString], keys: [Key], match: MatchSpec)
        case address(part: AddressPart, headers: [ScriptString], keys: [Key], match: MatchSpec)
        case envelope(part: AddressPart, fields: [ScriptString], keys: [Key], match: MatchSpec)
        case exists([ScriptString])
        case size(over: Bool, limit: Int)
        /// imap4flags: the flags of the named variables, or the internal ones.
        case hasFlag(variables: [ScriptString], keys: [Key], match: MatchSpec)
        /// variables' `string` test.
        case string(sources: [ScriptString], keys: [Key], match: MatchSpec)
        /// vnd.notmuch: the message matches a notmuch query.
        case notmuch(ScriptString)
    }

    let kind: Kind
    let location: SieveLocation
    let name: String
}

/// A key of a test; a `:regex` key without variables is compiled once,
/// when the script is checked.
struct Key: Sendable {
    let string: ScriptString
    let compiled: RegexKey?
}

enum FlagOperation: String, Sendable { case add = "addflag", set = "setflag", remove = "removeflag" }

/// RFC 5229's modifiers, in the order they apply (highest precedence first).
enum Modifier: String, Sendable, Comparable {
    case lower, upper, lowerfirst, upperfirst, quotewildcard, quoteregex, length

    /// RFC 5229 section 4: 40 for case, 30 for the first letter, 20 for
    /// quoting, 10 for the length. Two of one level may not be combined.
    var precedence: Int {
        switch self {
        case .lower, .upper: return 40
        case .lowerfirst, .upperfirst: return 30
        case .quotewildcard, .quoteregex: return 20
        case .length: return 10
        }
    }

    static func < (a: Modifier, b: Modifier) -> Bool { a.precedence > b.precedence }
}

struct Statement: Sendable {
    indirect enum Kind: Sendable {
        case conditional(branches: [(Condition, [Statement])], otherwise: [Statement]?)
        case keep(flags: [ScriptString]?)
        case discard
        case stop
        case fileinto(mailbox: ScriptString, create: Bool, copy: Bool, flags: [ScriptString]?)
        case flags(FlagOperation, variable: ScriptString?, flags: [ScriptString])
        case set(name: String, value: ScriptString, modifiers: [Modifier])
        /// vnd.notmuch: `tag "+a -b"`.
        case tag(ScriptString)
    }

    let kind: Kind
    let location: SieveLocation
}

/// A Sieve script, checked. Immutable and safe to share between deliveries.
public struct SieveScript: Sendable {
    /// Where it came from, for messages.
    public let origin: String
    let statements: [Statement]
    /// The capabilities the script requires.
    public let capabilities: Set<String>

    /// Whether running it asks the database (the vnd.notmuch test).
    public var needsDatabase: Bool { usesNotmuchTest }
    let usesNotmuchTest: Bool

    /// Every `fileinto` whose mailbox name the script writes whole (no
    /// variable in it), with its line: what `check-rules` can judge.
    public var literalMailboxes: [(line: Int, name: String)] {
        func walk(_ statements: [Statement]) -> [(line: Int, name: String)] {
            statements.flatMap { statement -> [(line: Int, name: String)] in
                switch statement.kind {
                case .fileinto(let mailbox, _, _, _) where !mailbox.mayExpand:
                    return [(statement.location.line, mailbox.text)]
                case .conditional(let branches, let otherwise):
                    return branches.flatMap { walk($0.1) } + walk(otherwise ?? [])
                default:
                    return []
                }
            }
        }
        return walk(statements)
    }
}
