import Notmuch
import SystemPackage
import Threads
import Synchronization
import MaildirKit

/// Finds the mailbox of a message: the one the notmuch configuration
/// describes, or, with a mail-root template, the recipient's virtual one.
/// Finding has no side effect; only a delivery creates a virtual mailbox,
/// through `findOrCreate`. A long-lived front door keeps one `Mailboxes`
/// and its cache: each mailbox's settings are read again at most a second
/// after the last reading (loading libnotmuch's configuration opens the
/// database, which cost a delivery more than its fsyncs), so an edit to
/// the configuration or the rules applies within the second.
public final class Mailboxes: Sendable {
    public let options: DeliveryOptions
    /// Rules files parsed once, read again only when they change.
    private let rulesCache = RulesCache()
    /// Off: every lookup reads the settings (a process that delivers once).
    private let caching: Bool
    private let cache = Mutex<[String: Cached]>([:])

    private struct Cached {
        let mailbox: Mailbox
        let loaded: Double
    }

    static let maximumAge = 1.0

    public init(_ options: DeliveryOptions, caching: Bool = false) {
        self.options = options
        self.caching = caching
    }

    /// Whether each recipient has its own mailbox (a mail-root template).
    public var servesVirtualMailboxes: Bool { options.mailRootTemplate != nil }

    /// The mailbox for `recipient` (which only a template needs), if it
    /// exists: a virtual one not made yet is `noSuchMailbox`.
    public func find(recipient: String?) throws(DeliveryError) -> Mailbox {
        let (location, virtual) = try locate(recipient: recipient)
        if let virtual, !VirtualMailbox.exists(root: virtual.root) {
            throw DeliveryError(.noSuchMailbox, "recipient '\(VirtualMailbox.shortened(recipient ?? ""))' has no "
                                + "mailbox yet ('\(virtual.root)'): its first delivery makes it")
        }
        return try mailbox(at: location)
    }

    /// The mailbox for `recipient`, a virtual one made first if need be:
    /// for a delivery, and nothing else.
    public func findOrCreate(recipient: String?) throws(DeliveryError) -> Mailbox {
        let (location, virtual) = try locate(recipient: recipient)
        if let virtual { try VirtualMailbox.prepare(root: virtual.root, base: virtual.base) }
        return try mailbox(at: location)
    }

    /// A mailbox named by its folder, with no notmuch configuration (the
    /// mail root of a virtual mailbox, say).
    func mailbox(root: String) throws(DeliveryError) -> Mailbox {
        try mailbox(at: MailboxLocation(config: .none, profile: nil, root: root))
    }

    /// Every mailbox that exists now: the configured one, or every virtual
    /// mailbox the template has made.
    func existing() -> [Mailbox] {
        guard let template = options.mailRootTemplate else {
            return (try? mailbox(at: locate(recipient: nil).location)).map { [$0] } ?? []
        }
        return VirtualMailbox.existing(template: template).compactMap { try? mailbox(root: $0) }
    }

    /// What a server counts deliveries per mailbox by: a virtual mailbox's
    /// directory, or "" for the one mailbox a personal server has.
    public func key(recipient: String) -> String {
        guard let template = options.mailRootTemplate else { return "" }
        return (try? VirtualMailbox.path(template: template, recipient: recipient)) ?? recipient.lowercased()
    }

    /// Forgets every mailbox (SIGHUP): the next delivery reads them again.
    public func reload() {
        cache.withLock { $0.removeAll() }
    }

    private func locate(recipient: String?) throws(DeliveryError)
        -> (location: MailboxLocation, virtual: (root: String, base: String)?) {
        guard let template = options.mailRootTemplate else {
            return (MailboxLocation(config: options.config, profile: options.profile, root: nil), nil)
        }
        guard let recipient else {
            throw DeliveryError(.usage, "--mail-root needs the recipient: pass --recipient ADDR (pipe's ${recipient}) or set RECIPIENT")
        }
        let (root, base) = try VirtualMailbox.expand(template: template, recipient: recipient)
        VirtualMailbox.becomeHome(root)
        return (MailboxLocation(config: .none, profile: nil, root: root), (root, base))
    }

    private func mailbox(at location: MailboxLocation) throws(DeliveryError) -> Mailbox {
        guard caching else { return try load(location) }
        let key = location.key
        let now = Monotonic.seconds
        if let cached = cache.withLock({ $0[key] }), now - cached.loaded < Self.maximumAge { return cached.mailbox }
        let mailbox = try load(location)
        cache.withLock { $0[key] = Cached(mailbox: mailbox, loaded: now) }
        return mailbox
    }

    private func load(_ location: MailboxLocation) throws(DeliveryError) -> Mailbox {
        Mailbox(location: location, settings: try DeliverySettings(location: location, options: options,
                                                                   rulesCache: rulesCache))
    }
}
