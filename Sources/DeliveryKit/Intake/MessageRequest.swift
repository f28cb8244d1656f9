import Notmuch

/// Where a message is filed and how it is tagged, as a front door's
/// command line says it: the same for every message of a process (a
/// server's, an import's), or for the one a `deliver` stores.
public struct Filing: Sendable, Equatable {
    public var folder: String?
    public var createFolder = false
    /// Keep the file even when indexing fails (`notmuch new` picks it up later).
    public var keep = false
    public var worldReadable = false
    public var decrypt: DecryptPolicy?
    /// Command-line tag changes, applied after `new.tags` and the rules.
    public var tagOperations: [TagOperation] = []

    public init() {}
}

/// One message to store, as asked for: immutable from the moment the front
/// door has the envelope. What the process was started with is in
/// `DeliveryOptions`; what the mailbox says, in its `Mailbox`.
public struct MessageRequest: Sendable {
    /// Why the message is stored: a user's mail, or the warning a quota
    /// threshold sends, which is counted but never refused, runs neither
    /// rules nor Sieve nor hooks, and warns of nothing itself.
    public enum Purpose: Sendable, Equatable {
        case mail
        case quotaWarning
    }

    public let envelope: Envelope
    public let filing: Filing
    public let purpose: Purpose

    public init(envelope: Envelope, filing: Filing, purpose: Purpose = .mail) {
        self.envelope = envelope
        self.filing = filing
        self.purpose = purpose
    }

    /// Whether the mailbox's rules and Sieve script run on this message.
    var appliesRules: Bool { purpose == .mail }
}
