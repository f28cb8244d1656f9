import MaildirKit
import Notmuch
import SystemPackage
import Threads

/// A server's deliveries (the LMTP server's): many messages, for one
/// mailbox or many, each staged through the delivery path and committed in
/// groups (`GroupCommit`). Mailboxes are found once and kept (`Mailboxes`'
/// cache), refreshed within a second of a change or at `reload`.
public final class Deliverer: Sendable {
    private let path: DeliveryPath<GroupCommit>
    private let options: DeliveryOptions

    public init(_ options: DeliveryOptions) {
        self.options = options
        path = DeliveryPath(Mailboxes(options, caching: true), committer: GroupCommit())
    }

    var mailboxes: Mailboxes { path.mailboxes }

    /// A message durable in its maildir and handed to its mailbox's group
    /// commit: `finish` waits for the commit, or syncs its queue record,
    /// before the server may promise anything.
    public struct Staged: Sendable {
        fileprivate let submitted: DeliveryPath<GroupCommit>.Submitted
        public var path: String { submitted.message.file.path.string }
        /// The mailbox's lock timeout: how long its commit is worth waiting for.
        public var lockTimeout: Double { submitted.message.mailbox.settings.lockTimeout }
    }

    /// Writes and syncs the message for `envelope`'s recipient and hands it
    /// to a group commit. Throws only when nothing is stored: the message
    /// must be refused or retried. `sameAs`: the same message staged for
    /// another recipient, hard-linked rather than written again if it can be.
    /// `proceed` is asked once the message is written, before it is queued
    /// (from then on any process may commit it): false (the server gave up
    /// waiting and answered 451) removes the file again and throws, so a
    /// delivery that was stuck never stores a message its sender will retry.
    /// `wanted`, asked earlier (before the file reaches new/), lets a
    /// delivery given up already stop without making its file visible.
    public func stage(_ input: FileDescriptor, envelope: Envelope, sameAs: Staged? = nil,
                      wanted: () -> Bool = { true }, proceed: () -> Bool = { true }) throws(DeliveryError) -> Staged {
        var timer = PhaseTimer(path: nil)
        let request = MessageRequest(envelope: envelope, filing: options.filing)
        return Staged(submitted: try path.submit(input, request: request, sameAs: sameAs?.submitted.message.file.path,
                                                 wanted: wanted, proceed: proceed, timer: &timer))
    }

    /// Waits until `deadline` (Monotonic seconds) for the staged message's
    /// commit. The message is safe either way: past the deadline its record
    /// is made durable, it is committed later, and the report says
    /// `queued`. Throws only when that record cannot be made durable: the
    /// file stays, and the MTA's retry adopts it.
    public func finish(_ staged: Staged, until deadline: Double) throws(DeliveryError) -> DeliveryReport {
        var timer = PhaseTimer(path: nil)
        return try path.finish(staged.submitted, until: deadline, timer: &timer)
    }

    /// Whether a message for `recipient` (of `size` bytes, 0 when not
    /// known) would be refused before its data is even sent: a recipient
    /// that can never have a mailbox, or a full one. Nil: send it. A
    /// mailbox not created yet has nothing to be full of.
    public func precheck(recipient: String, size: Int) -> DeliveryError? {
        if let template = options.mailRootTemplate {
            let root: String
            do { root = try VirtualMailbox.path(template: template, recipient: recipient) } catch { return error }
            guard VirtualMailbox.exists(root: root) else { return nil }
        }
        // The delivery will say what is wrong, or defer; the data may come.
        guard let mailbox = try? mailboxes.find(recipient: recipient) else { return nil }
        return mailbox.settings.quota.precheck(mailbox: mailbox.quota, size: Int64(size))
    }

    /// Whether each recipient has its own mailbox (a mail-root template).
    public var servesVirtualMailboxes: Bool { mailboxes.servesVirtualMailboxes }

    /// What a server counts deliveries per mailbox by.
    public func mailboxKey(recipient: String) -> String { mailboxes.key(recipient: recipient) }

    /// Where a server spools a message while it arrives: the mail root's
    /// tmp/ (the maildirs' file system, ignored by their readers); for
    /// virtual mailboxes, the folder the mailboxes are made in.
    public func spoolDirectory() throws(DeliveryError) -> String {
        if let template = options.mailRootTemplate {
            // Any address shows the template's fixed part.
            return try VirtualMailbox.expand(template: template, recipient: "spool@spool").base
        }
        let root = try mailboxes.find(recipient: nil).mailRoot
        let tmp = FilePath(root).appending("tmp")
        return FileSystem.kind(of: tmp) == .directory ? tmp.string : root
    }

    /// A server starting: the deliveries a killed server queued and never
    /// committed are applied now, not at the next message: the mailbox's,
    /// or every virtual mailbox's the template has made so far.
    public func applyLeftoverQueue() {
        for mailbox in mailboxes.existing() { path.committer.applyLeftovers(of: mailbox) }
    }

    /// Reads the configuration and the rules again from the next delivery
    /// on (a server's SIGHUP); without it they are read again within a
    /// second of a change.
    public func reload() {
        mailboxes.reload()
    }

    /// Waits, up to `deadline` (Monotonic seconds), until no group commit
    /// is running: a server that stops lets its last commits finish.
    public func waitForCommits(until deadline: Double) {
        path.committer.commits.waitUntilIdle(until: deadline)
    }
}
