import MaildirKit
import SystemPackage

/// What killed deliveries left in a mailbox, removed when a server starts
/// and at each `flush` (a delivery removes its own maildir's, a bounded
/// number at a time): files in every maildir's tmp/ whose writer is gone
/// or that are 36 hours old, and the temporary files of queue records.
/// Nothing a live delivery is writing is touched (see `Leftovers`).
enum LeftoverRemoval {
    @discardableResult
    static func run(settings: DeliverySettings) -> Int {
        var removed = Leftovers.sweepTree(FilePath(settings.mailRoot))
        // A record is written as `.tmp-PID-NAME`, then renamed.
        removed += Leftovers.sweep(PendingQueue(databasePath: settings.databasePath).directory, prefix: ".tmp-")
        if removed > 0 {
            DeliveryLog.notice("removed \(removed) file(s) that killed deliveries left in '\(settings.mailRoot)'")
        }
        return removed
    }
}

extension Deliverer {
    /// A server starting: removes what killed deliveries (its own
    /// predecessor's included) left in its mailbox, or in every virtual
    /// mailbox the template has made, and in its spool directory.
    public func removeLeftovers() {
        for mailbox in mailboxes.existing() { LeftoverRemoval.run(settings: mailbox.settings) }
        // A spool is named `.lmtp-spool.PID.RANDOM` only for an instant,
        // and only where O_TMPFILE is missing.
        if let spool = try? spoolDirectory() { Leftovers.sweep(FilePath(spool), prefix: ".lmtp-spool.") }
    }
}
