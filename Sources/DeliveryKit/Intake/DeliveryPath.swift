import MailParsing
import MaildirKit
import Notmuch
import SystemPackage
import Threads

/// The way every message goes, whatever its front door: its mailbox found
/// (and, for a delivery, created), the intake, its committer, and the
/// after-care: a discarded message's quota line taken back, a quota warning
/// delivered through the same committer, the hooks. As Dovecot's
/// `mail_deliver()` serves dovecot-lda and lmtp alike.
final class DeliveryPath<C: Committer>: Sendable {
    let mailboxes: Mailboxes
    let committer: C

    init(_ mailboxes: Mailboxes, committer: C) {
        self.mailboxes = mailboxes
        self.committer = committer
    }

    /// A message taken in and handed to the committer, not yet reported on;
    /// or, for a file --keep kept although it is not mail, its report.
    struct Submitted: @unchecked Sendable {
        var message: AcceptedMessage
        let progress: Progress

        enum Progress {
            case handedOver(C.Ticket)
            case finished(DeliveryReport)
        }
    }

    /// The intake and the hand-over. Throws only when nothing is stored:
    /// the message must be refused or retried. `proceed` is asked once the
    /// message is durable, before it is handed over (from then on any
    /// process may commit it): false removes the file again and throws.
    func submit(_ input: FileDescriptor, request: MessageRequest, sameAs: FilePath? = nil,
                wanted: () -> Bool = { true }, proceed: () -> Bool = { true },
                timer: inout PhaseTimer) throws(DeliveryError) -> Submitted {
        // A scratch copy is never stored: its mailbox must exist already.
        let mailbox = committer.publishing == .scratch ? try mailboxes.find(recipient: request.envelope.recipient)
            : try mailboxes.findOrCreate(recipient: request.envelope.recipient)
        timer.mark("config")
        var (message, preparation) = try Intake.accept(input, request: request, mailbox: mailbox, committer: committer,
                                                       sameAs: sameAs, wanted: wanted, timer: &timer)
        guard proceed() else {
            committer.cancel(preparation, mailbox: mailbox)
            if !message.file.adopted { Maildir.discard(message.file.path) }
            message.takeBackQuota()
            throw DeliveryError(.temporary, "given up: the delivery did not finish in time")
        }
        if let keptNotMail = message.keptNotMail {
            committer.cancel(preparation, mailbox: mailbox)
            return Submitted(message: message, progress: .finished(try keepOrDiscard(keptNotMail, &message)))
        }
        do {
            let ticket = try committer.submit(message, preparation: preparation, timer: &timer)
            return Submitted(message: message, progress: .handedOver(ticket))
        } catch {
            return Submitted(message: message, progress: .finished(try keepOrDiscard(error, &message)))
        }
    }

    /// How the submitted message ended (waited for until `deadline`), and
    /// its after-care.
    func finish(_ submitted: Submitted, until deadline: Double, timer: inout PhaseTimer) throws(DeliveryError) -> DeliveryReport {
        var message = submitted.message
        var report: DeliveryReport
        switch submitted.progress {
        case .finished(let finished):
            return finished
        case .handedOver(let ticket):
            do {
                report = try committer.report(ticket, for: message, until: deadline)
            } catch {
                return try keepOrDiscard(error, &message)
            }
        }
        if report.from == nil, report.subject == nil, let headers = message.logHeaders {
            report.from = headers.values("From").first
            report.subject = headers.values("Subject").first
        }
        report.mailRoot = message.mailbox.mailRoot
        settle(report, &message)
        committer.afterCare(report, for: message)
        timer.mark("hook")
        return report
    }

    /// One message, start to end.
    func deliver(_ input: FileDescriptor, request: MessageRequest, until deadline: Double = .infinity,
                 timer: inout PhaseTimer) throws(DeliveryError) -> DeliveryReport {
        let submitted = try submit(input, request: request, timer: &timer)
        return try finish(submitted, until: deadline, timer: &timer)
    }

    /// A failed delivery's file: kept (--keep) only once its name is on
    /// disk; otherwise removed, unless it is not ours to remove.
    private func keepOrDiscard(_ failure: DeliveryError, _ message: inout AcceptedMessage) throws(DeliveryError) -> DeliveryReport {
        // A rule's folder may have taken it before the failure.
        let current = failure.location ?? message.file.path
        guard message.request.filing.keep, failure.kind != .usage,
              (try? FileSystem.fsyncDirectory(current.directory)) != nil else {
            if !message.file.adopted && !failure.fileIsNamedElsewhere {
                Maildir.discard(current)
                message.takeBackQuota()
            }
            throw failure
        }
        return DeliveryReport(path: current.string, messageID: nil, tags: [], outcome: .keptUnindexed,
                              warning: "\(failure.message); kept '\(current)' for a later 'notmuch new'",
                              traces: [])
    }

    /// What follows a delivery that succeeded: a discarded message's quota
    /// line goes; a stored one may cross a warning threshold.
    private func settle(_ report: DeliveryReport, _ message: inout AcceptedMessage) {
        if report.outcome == .discarded {
            DeliveryLog.logger.notice("discarded \(report.messageID ?? "(no Message-ID)") by rule")
            message.takeBackQuota()
        } else if let measured = message.measured, message.request.purpose == .mail {
            // Its line went in when it was admitted: a crash since leaves at
            // worst a figure too high, which the next recount corrects.
            let settings = message.mailbox.settings
            if let threshold = settings.quotaWarnings.claim(measured.after, limit: measured.limit,
                                                            databasePath: settings.databasePath) {
                warn(measured, threshold: threshold, cause: message)
            }
        }
        message.maildir.removeStaleTemporaryFiles()
    }

    /// Delivers the quota warning through this same path and committer,
    /// into the mailbox's top-level folder, tagged as configured; no rule,
    /// hook or quota refusal stands in its way. Its failure is logged,
    /// never the delivery's: the message that crossed the threshold is
    /// safe already.
    private func warn(_ measured: QuotaPolicy.Measured, threshold: Int64, cause: AcceptedMessage) {
        let settings = cause.mailbox.settings
        let text = settings.quotaWarnings.message(usage: measured.after, limit: measured.limit, threshold: threshold,
                                                  mailbox: settings.mailRoot, recipient: cause.request.envelope.recipient)
        // A template's placeholders could swell it past a pipe's buffer.
        guard text.utf8.count <= 60_000 else {
            DeliveryLog.logger.error("quota warning for \(threshold)% not delivered: the message would exceed 60000 bytes")
            return
        }
        var filing = Filing()
        filing.tagOperations = settings.quotaWarnings.tags
        var envelope = cause.request.envelope
        envelope.sender = "MAILER-DAEMON"
        let request = MessageRequest(envelope: envelope, filing: filing, purpose: .quotaWarning)
        do {
            // Through a pipe: the text is far below a pipe's buffer (the
            // template is capped at 32 KiB), so writing it all first cannot block.
            let (reading, writing) = try FileDescriptor.pipe()
            defer { try? reading.close() }
            _ = text.utf8.withContiguousStorageIfAvailable { try? writing.writeEverything(UnsafeRawBufferPointer($0)) }
            try? writing.close()
            var timer = PhaseTimer(path: nil)
            let report = try deliver(reading, request: request, until: Monotonic.seconds + settings.lockTimeout,
                                     timer: &timer)
            DeliveryLog.logger.notice("quota warning delivered: \(threshold)% reached, \(report.path)")
        } catch {
            DeliveryLog.logger.error("quota warning for \(threshold)% not delivered: \(error)")
        }
    }
}
