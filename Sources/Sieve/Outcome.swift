/// One place a run stores the message: `keep` (the default mailbox) or a
/// `fileinto`, with the IMAP flags it sets there.
public struct SieveStore: Sendable, Equatable {
    /// nil: the default mailbox (keep, or fileinto "INBOX"); with what in
    /// it came from the message.
    public let name: SieveText?
    /// The flags it sets, each with what in it came from the message.
    public internal(set) var flagTexts: [SieveText]

    public var mailbox: String? { name?.plain }
    public var flags: [String] { flagTexts.map(\.plain) }
    /// fileinto :create: the mailbox is created when missing.
    public let create: Bool
    /// The line of the action, 0 for the implicit keep.
    public let line: Int
}

/// What a run of a script decided.
public struct SieveOutcome: Sendable {
    /// keep and fileinto, in the order they ran, one per mailbox.
    public internal(set) var stores: [SieveStore] = []
    /// The implicit keep, with the flags at the end of the run; nil when
    /// an action cancelled it.
    public internal(set) var implicitKeep: SieveStore?
    /// Whether `discard` ran.
    public internal(set) var discardRan = false
    /// vnd.notmuch `tag` operations, expanded, in order (`+a -b`), with
    /// what in them came from the message.
    public internal(set) var tagTexts: [SieveText] = []
    public var tagOperations: [String] { tagTexts.map(\.plain) }
    /// What ran, line by line, for `explain`.
    public internal(set) var trace: [String] = []
    /// Limits met on the way (a regular expression cut off), taken as
    /// not matching; each starts with FILE:LINE.
    public internal(set) var notes: [String] = []

    /// Every store, the implicit keep last.
    public var allStores: [SieveStore] { stores + (implicitKeep.map { [$0] } ?? []) }

    /// Stored nowhere: discarded.
    public var isDiscarded: Bool { allStores.isEmpty }

    /// The actions in the normalised form the differential test compares
    /// with Pigeonhole's `sieve-test`: one line per store, sorted,
    /// `store MAILBOX [flags in lower case, sorted]`, or `discard`.
    public var normalised: [String] {
        let stores = allStores
        if stores.isEmpty { return ["discard"] }
        return stores.map { store in
            let flags = Set(store.flags.map { $0.lowercased() }).sorted()
            return (["store", store.mailbox ?? "INBOX"] + flags).joined(separator: " ")
        }.sorted()
    }
}
