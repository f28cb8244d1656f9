import MailParsing
import MaildirKit
import Rules
import SystemPackage

/// A message taken in: copied into its maildir, found to be mail, within
/// the quota, its rules' conditions that need no index evaluated, and
/// made durable as its committer asks. What the intake learnt travels with
/// it to the committer, which reads nothing back.
/// Sendable by hand: it goes from thread to thread in a server, used by
/// one at a time.
struct AcceptedMessage: @unchecked Sendable {
    let request: MessageRequest
    let mailbox: Mailbox
    let maildir: Maildir
    let file: Maildir.Delivered
    /// The rules' conditions that need no index, evaluated before the
    /// database is asked for: a slow rule never holds the write lock.
    let preevaluated: PreevaluatedLeaves?
    /// Counted in maildirsize when admitted.
    var measured: QuotaPolicy.Measured?
    /// A file that is not mail, which --keep keeps, as notmuch insert does.
    let keptNotMail: DeliveryError?
    /// From and Subject, read by the email check, for a log line whose
    /// report did not come from the index.
    let logHeaders: MessageHeaders?

    /// The message is not stored after all: its line in maildirsize goes.
    mutating func takeBackQuota() {
        if let counted = measured { mailbox.quota.add(bytes: -counted.size, messages: -1) }
        measured = nil
    }
}

/// The one way into a maildir: every front door that stores a message
/// goes through `accept`. Everything that can refuse a message (the email
/// check and the size limits, the quota) happens on the copy in tmp/
/// before the syncs, so a refused message never reaches new/ and nothing
/// of it is left.
enum Intake {
    /// `committer` decides how the message is left (linked into new/, or a
    /// scratch copy) and may start work that overlaps the syncs.
    /// `wanted` false, asked before the file is synced and linked into
    /// new/, drops it (a server that gave up on this delivery).
    /// `sameAs`: the same message taken in for another recipient.
    static func accept<C: Committer>(_ input: FileDescriptor, request: MessageRequest, mailbox: Mailbox,
                                     committer: C, sameAs: FilePath? = nil, wanted: () -> Bool = { true },
                                     timer: inout PhaseTimer) throws(DeliveryError) -> (AcceptedMessage, C.Preparation) {
        let scratch = committer.publishing == .scratch
        // A scratch copy is never stored: it goes to the mail root, whatever
        // the folder, and creates nothing.
        let maildir = scratch ? try mailbox.settings.maildir(nil, create: false) : try mailbox.maildir(for: request.filing)
        let permissions: FilePermissions = request.filing.worldReadable
            ? [.ownerReadWrite, .groupRead, .otherRead] : .ownerReadWrite
        let temporary: Maildir.TemporaryMessage
        do {
            temporary = try maildir.write(from: input, permissions: permissions, sameAs: sameAs)
        } catch {
            throw describe(error)
        }
        var logHeaders: MessageHeaders?
        var keptNotMail: DeliveryError?
        if let rejection = MailCheck.rejection(temporary.path, headers: &logHeaders) {
            guard request.filing.keep, !scratch, rejection.kind == .notAMessage else {
                maildir.abandon(temporary)
                throw rejection
            }
            keptNotMail = rejection
        }
        var measured: QuotaPolicy.Measured?
        if !scratch {
            switch mailbox.settings.quota.check(mailbox: mailbox.quota, enforcing: request.purpose != .quotaWarning,
                                                lockWait: mailbox.settings.lockTimeout,
                                                size: { (try? Stat(temporary.path))?.size }) {
            case .refused(let refusal):
                maildir.abandon(temporary)
                throw refusal
            case .admitted(let figures):
                measured = figures
            }
        }
        func giveBack() {
            if let counted = measured { mailbox.quota.add(bytes: -counted.size, messages: -1) }
        }
        var preevaluated: PreevaluatedLeaves?
        if request.appliesRules, !mailbox.settings.rules.isEmpty {
            preevaluated = mailbox.settings.rules.preevaluate(DeliveryFacts(path: temporary.path.string,
                                                                            envelope: request.envelope,
                                                                            database: nil, messageID: nil))
        }
        guard wanted() else {
            maildir.abandon(temporary)
            giveBack()
            throw DeliveryError(.temporary, "given up: the delivery did not finish in time")
        }
        let preparation = committer.prepare(mailbox: mailbox, request: request)
        let file: Maildir.Delivered
        do {
            // The committer syncs new/ with its queue record.
            file = try maildir.publish(temporary, scratch: scratch, syncingDirectory: false)
        } catch {
            committer.cancel(preparation, mailbox: mailbox)
            giveBack()
            throw describe(error)
        }
        var message = AcceptedMessage(request: request, mailbox: mailbox, maildir: maildir, file: file,
                                      preevaluated: preevaluated, measured: measured, keptNotMail: keptNotMail,
                                      logHeaders: logHeaders)
        // The same bytes were there already, and counted then.
        if file.adopted { message.takeBackQuota() }
        timer.mark("write")
        return (message, preparation)
    }

    private static func describe(_ error: Maildir.WriteError) -> DeliveryError {
        switch error {
        case .emptyInput:
            DeliveryError(.notAMessage, "empty input: no message on standard input")
        case .read(let errno):
            DeliveryError(.temporary, "cannot read the message from standard input: \(errno)")
        case .write(let errno, let path):
            DeliveryError(.temporary, "cannot write '\(path)': \(errno)")
        }
    }
}
