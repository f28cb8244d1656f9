import Notmuch
import SystemPackage
import MaildirKit

/// How a message the intake accepted reaches the database: one kind per
/// front door (`DirectCommit` for one command-line delivery, `GroupCommit`
/// for a server, `DryCommit` for `explain`). The intake and the after-care
/// are the same for all of them (`DeliveryPath`).
protocol Committer: Sendable {
    /// What the committer starts before the message's syncs, to overlap them.
    associatedtype Preparation
    /// A message handed over and not yet reported on.
    associatedtype Ticket

    /// How the intake leaves the message.
    var publishing: Publishing { get }
    /// Called once the message is read and accepted, before it is made durable.
    func prepare(mailbox: Mailbox, request: MessageRequest) -> Preparation
    /// The message could not be made durable after `prepare`.
    func cancel(_ preparation: Preparation, mailbox: Mailbox)
    /// Indexes the message, or queues it durably, or hands it to a commit
    /// to come. Throws only when the message can be neither indexed nor
    /// queued; the error's `fileIsNamedElsewhere` then says the file stays.
    func submit(_ message: AcceptedMessage, preparation: Preparation,
                timer: inout PhaseTimer) throws(DeliveryError) -> Ticket
    /// How the message ended, waited for until `deadline` (Monotonic seconds).
    func report(_ ticket: Ticket, for message: AcceptedMessage, until deadline: Double) throws(DeliveryError) -> DeliveryReport
    /// What follows a stored message: the hooks this committer runs.
    func afterCare(_ report: DeliveryReport, for message: AcceptedMessage)
}

/// How the intake leaves an accepted message.
enum Publishing {
    /// Synced and linked into new/; its committer syncs new/ together with
    /// its queue record.
    case linked
    /// A copy in tmp/ that is never stored (`explain`).
    case scratch
}

/// One command-line delivery: a bounded wait for the write lock, its own
/// message and every queued one in one transaction; else a durable record
/// in the queue (`DeliverySession`).
struct DirectCommit: Committer {
    var publishing: Publishing { .linked }

    /// The quiet case opens the database while the message is synced.
    func prepare(mailbox: Mailbox, request: MessageRequest) -> DeliverySession.Plan {
        DeliverySession(mailbox: mailbox, request: request).plan()
    }

    func cancel(_ plan: DeliverySession.Plan, mailbox: Mailbox) {
        plan.cancel(in: mailbox)
    }

    func submit(_ message: AcceptedMessage, preparation plan: DeliverySession.Plan,
                timer: inout PhaseTimer) throws(DeliveryError) -> DeliveryReport {
        try DeliverySession(mailbox: message.mailbox, request: message.request)
            .deliver(message.file, plan: plan, preevaluated: message.preevaluated, timer: &timer)
    }

    func report(_ report: DeliveryReport, for message: AcceptedMessage, until deadline: Double) -> DeliveryReport {
        report
    }

    /// Not while a thread waits in libnotmuch for the lock: it could get
    /// it and hold it, and a hook running notmuch would wait for ever.
    func afterCare(_ report: DeliveryReport, for message: AcceptedMessage) {
        let wentThroughTheIndex = report.outcome != .queued && report.outcome != .keptUnindexed
        guard wentThroughTheIndex, !report.abandonedLockWait, message.request.purpose == .mail,
              let hooks = message.mailbox.settings.hookDirectory else { return }
        Hook.run("post-insert", in: hooks)
    }
}

/// A server's deliveries into each database, committed together by one
/// thread per database (`GroupCommitter`); post-insert runs after each commit.
struct GroupCommit: Committer {
    let commits = GroupCommits()

    struct Ticket {
        let record: String
        let committer: GroupCommitter
    }

    var publishing: Publishing { .linked }
    func prepare(mailbox: Mailbox, request: MessageRequest) {}
    func cancel(_ preparation: Void, mailbox: Mailbox) {}

    /// The message's name in new/ is made durable and the message queued
    /// (its record not synced: see `DeliverySession.stage`).
    func submit(_ message: AcceptedMessage, preparation: Void, timer: inout PhaseTimer) throws(DeliveryError) -> Ticket {
        let session = DeliverySession(mailbox: message.mailbox, request: message.request)
        let record = try session.stage(message.file)
        let committer = commits.committer(for: session.applier)
        committer.submit(record, preevaluated: message.preevaluated, isMail: message.keptNotMail == nil,
                         applier: session.applier)
        return Ticket(record: record, committer: committer)
    }

    /// The message is safe either way: past the deadline its record is
    /// made durable, it is committed later, and the report says `queued`.
    /// Throws only when that record cannot be made durable: the file stays,
    /// and the MTA's retry adopts it.
    func report(_ ticket: Ticket, for message: AcceptedMessage, until deadline: Double) throws(DeliveryError) -> DeliveryReport {
        let path = message.file.path
        switch ticket.committer.wait(for: ticket.record, until: deadline) {
        case .committed(let report) where report.outcome != .queued:
            return report
        case .appliedElsewhere:
            return DeliveryReport(path: path.string, messageID: nil, tags: [], outcome: .indexed, warning: nil, traces: [])
        case .committed, .leftQueued, nil:
            // Not committed yet (or set aside): the reply says queued, once
            // the record is durable.
            try DeliverySession(mailbox: message.mailbox, request: message.request).makeRecordDurable(ticket.record)
            return DeliveryReport.queuedReport(path, abandoned: false)
        }
    }

    func afterCare(_ report: DeliveryReport, for message: AcceptedMessage) {}

    /// Applies what a killed server left queued, without waiting for a delivery.
    func applyLeftovers(of mailbox: Mailbox) {
        guard !mailbox.queue.names().isEmpty else { return }
        commits.committer(for: mailbox.applier).kick(applier: mailbox.applier)
    }
}

/// `explain`: the whole delivery in an atomic section that is never
/// committed, on a scratch copy that is then removed.
struct DryCommit: Committer {
    var publishing: Publishing { .scratch }
    func prepare(mailbox: Mailbox, request: MessageRequest) {}
    func cancel(_ preparation: Void, mailbox: Mailbox) {}

    func submit(_ message: AcceptedMessage, preparation: Void, timer: inout PhaseTimer) throws(DeliveryError) -> DeliveryReport {
        let file = message.file.path
        defer { Maildir.discard(file) }
        let database: Database
        do {
            database = try message.mailbox.openDatabase()
        } catch {
            throw DeliveryError(.temporary, "cannot open the notmuch database: \(error)")
        }
        var moves: [FilePath] = []
        var location = file
        do {
            return try database.atomicSection {
                var job = IndexJob(.explanation, request: message.request, settings: message.mailbox.settings)
                job.preevaluated = message.preevaluated
                return .abort(try job.run(in: database, location: &location, moves: &moves))
            }
        } catch {
            throw IndexOutcome.classify(error, file: file)
        }
    }

    func report(_ report: DeliveryReport, for message: AcceptedMessage, until deadline: Double) -> DeliveryReport {
        report
    }

    func afterCare(_ report: DeliveryReport, for message: AcceptedMessage) {}
}
