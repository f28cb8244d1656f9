import MaildirKit
import SystemPackage

/// The command line's entry points: one delivery, `explain`, `flush` and
/// the queue it shows. Each finds its mailbox once; only `deliver` may
/// create one.
public enum Delivery {
    /// One message, committed directly (`DirectCommit`): exit 0 only once it
    /// is durable, indexed or queued.
    public static func deliver(_ options: DeliveryOptions, envelope: Envelope,
                               input: FileDescriptor) throws(DeliveryError) -> DeliveryReport {
        var timer = PhaseTimer(path: options.timingsFile)
        defer { timer.write() }
        let path = DeliveryPath(Mailboxes(options), committer: DirectCommit())
        return try path.deliver(input, request: MessageRequest(envelope: envelope, filing: options.filing), timer: &timer)
    }

    /// Runs the whole delivery but stores nothing (`DryCommit`). For `explain`.
    public static func explain(_ options: DeliveryOptions, envelope: Envelope,
                               input: FileDescriptor) throws(DeliveryError) -> DeliveryReport {
        var timer = PhaseTimer(path: nil)
        let path = DeliveryPath(Mailboxes(options), committer: DryCommit())
        return try path.deliver(input, request: MessageRequest(envelope: envelope, filing: options.filing), timer: &timer)
    }

    /// Applies every queued delivery, in one transaction. For `flush` (and a
    /// post-new hook). Returns how many records were applied.
    public static func flush(_ options: DeliveryOptions, recipient: String? = nil) throws(DeliveryError) -> Int {
        let mailbox = try Mailboxes(options).find(recipient: recipient)
        LeftoverRemoval.run(settings: mailbox.settings)
        return try mailbox.applier.flushQueue()
    }

    /// The queue of the mailbox these options name: for `flush --list`,
    /// `--retry` and `--drop`, which act on set-aside records.
    public static func queue(_ options: DeliveryOptions, recipient: String? = nil) throws(DeliveryError) -> PendingQueue {
        try Mailboxes(options).find(recipient: recipient).queue
    }
}
