import DeliveryKit
import LMTP
import MaildirKit
import Threads

/// One LMTP transaction's message, delivered to each of its recipients:
/// all are written and queued first, then their commits waited for
/// together, so that several recipients in one database share a commit.
/// Blocking: runs on the server's thread pool, never on an event loop.
struct TransactionDelivery: Sendable {
    let deliverer: Deliverer
    /// How long a reply waits for its commit; past it the message is
    /// queued, which is as safe, and the reply goes. Nil: the mailbox's
    /// lock timeout (`deliver.lock_timeout`, else 5 s).
    let commitWait: Double?
    /// The characters that separate a local part from its extension
    /// (`user+ext@`), as postfix's recipient_delimiter: any one of them.
    let recipientDelimiters: String

    /// Deliveries per mailbox, shared by every connection.
    let gate: MailboxGate

    /// For each recipient, the earlier index of the same address, if any:
    /// a recipient repeated in the transaction is delivered once and
    /// answered as its first occurrence.
    static func repeats(_ envelope: LMTPEnvelope) -> [Int?] {
        var firstOccurrence: [String: Int] = [:]
        return envelope.recipients.enumerated().map { index, recipient in
            if let first = firstOccurrence[recipient.address] { return first }
            firstOccurrence[recipient.address] = index
            return nil
        }
    }

    /// One reply per recipient, in RCPT order; nil when `progress` says
    /// the deadline passed while recipients were being staged (the handler
    /// answers then, through `answerAfterDeadline`).
    func deliver(_ spool: SpoolFile, envelope: LMTPEnvelope, session: String,
                 progress: TransactionProgress) -> [LMTPReply]? {
        let started = Monotonic.milliseconds
        if let failure = spool.failure {
            let error = DeliveryError(.temporary, "cannot spool the message: \(failure)")
            return envelope.recipients.map { refusal(error, recipient: $0, session: session, started: started) }
        }
        var staged: [Result<Deliverer.Staged, DeliveryError>] = []
        let repeatOf = Self.repeats(envelope)
        // Written once, then hard-linked for the other recipients.
        var written: Deliverer.Staged?
        for (index, recipient) in envelope.recipients.enumerated() {
            if repeatOf[index] != nil {
                staged.append(.failure(DeliveryError(.temporary, "repeated recipient")))
                continue
            }
            let ticket: MailboxGate.Ticket
            switch gate.enter(deliverer.mailboxKey(recipient: recipient.address)) {
            case .success(let entered): ticket = entered
            case .failure(let refusal):
                staged.append(.failure(Self.error(for: refusal)))
                continue
            }
            defer { gate.leave(ticket) }
            guard progress.begin(ticket) else {
                staged.append(.failure(DeliveryError(.temporary, "given up: the transaction took too long")))
                continue
            }
            defer { progress.end() }
            do throws(DeliveryError) {
                do { try spool.rewind() } catch {
                    throw DeliveryError(.temporary, "cannot read the spooled message back: \(error)")
                }
                let done = try deliverer.stage(spool.descriptor, envelope: self.envelope(envelope, recipient), sameAs: written,
                                               wanted: { !progress.isAbandoned }, proceed: { progress.claim(index) })
                progress.store(index, .success(done))
                if written == nil { written = done }
                staged.append(.success(done))
            } catch {
                progress.store(index, .failure(error))
                staged.append(.failure(error))
            }
        }
        guard progress.finishStaging() else { return nil }
        let stagedAt = Monotonic.seconds
        var replies: [LMTPReply] = []
        var reports: [Int: DeliveryReport] = [:]
        for (index, (recipient, outcome)) in zip(envelope.recipients, staged).enumerated() {
            if let first = repeatOf[index] {
                if let report = reports[first] {
                    DeliveryLog.delivery(report, mailRoot: report.mailRoot, milliseconds: Monotonic.milliseconds - started,
                                         session: Self.logPrefix(session, recipient))
                }
                replies.append(replies[first])
                continue
            }
            let (reply, report) = answer(outcome, recipient: recipient, session: session, started: started,
                                         stagedAt: stagedAt)
            if let report { reports[index] = report }
            replies.append(reply)
        }
        return replies
    }

    /// A staged recipient's reply, once its commit is waited for.
    private func answer(_ outcome: Result<Deliverer.Staged, DeliveryError>, recipient: LMTPRecipient, session: String,
                        started: Double, stagedAt: Double) -> (LMTPReply, DeliveryReport?) {
        switch outcome {
        case .success(let staged):
            // The server's --lock-timeout, else the mailbox's own.
            let report: DeliveryReport
            do throws(DeliveryError) {
                report = try deliverer.finish(staged, until: stagedAt + (commitWait ?? staged.lockTimeout))
            } catch {
                return (refusal(error, recipient: recipient, session: session, started: started), nil)
            }
            DeliveryLog.delivery(report, mailRoot: report.mailRoot, milliseconds: Monotonic.milliseconds - started,
                                 session: Self.logPrefix(session, recipient))
            return (LMTPReply(250, "2.0.0", "<\(recipient.address)> \(session) Saved (\(report.outcome.rawValue))"), report)
        case .failure(let error):
            return (refusal(error, recipient: recipient, session: session, started: started), nil)
        }
    }

    /// The replies once the deadline has passed with the worker still
    /// staging: the recipients it had claimed are answered from their own
    /// outcome (their commit waited for as usual), every other one 451.
    func answerAfterDeadline(envelope: LMTPEnvelope, session: String, claimed: Set<Int>,
                             progress: TransactionProgress, seconds: Int64) -> [LMTPReply] {
        let started = Monotonic.milliseconds
        let outcomes = progress.outcomes(of: claimed, until: Monotonic.seconds + 5)
        let stagedAt = Monotonic.seconds
        let repeatOf = Self.repeats(envelope)
        var replies: [LMTPReply] = []
        for (index, recipient) in envelope.recipients.enumerated() {
            if let first = repeatOf[index] {
                replies.append(replies[first])
                continue
            }
            if let outcome = outcomes[index] {
                replies.append(answer(outcome, recipient: recipient, session: session, started: started,
                                      stagedAt: stagedAt).0)
                continue
            }
            let error = DeliveryError(.temporary, "the delivery did not finish within \(seconds) s; try again later")
            replies.append(refusal(error, recipient: recipient, session: session, started: started))
        }
        return replies
    }

    /// What a mailbox that takes no delivery now is told.
    static func error(for refusal: MailboxGate.Refusal) -> DeliveryError {
        switch refusal {
        case .busy(let limit):
            DeliveryError(.temporary, "its mailbox has \(limit) deliveries under way already; try again later")
        case .stuck:
            DeliveryError(.temporary, "its mailbox is not answering: an earlier delivery to it is stuck; try again later")
        }
    }

    private func refusal(_ error: DeliveryError, recipient: LMTPRecipient, session: String, started: Double) -> LMTPReply {
        DeliveryLog.failure(error, milliseconds: Monotonic.milliseconds - started, session: Self.logPrefix(session, recipient))
        return Self.reply(for: error, recipient: recipient.address)
    }

    /// The envelope the rules see: as a pipe delivery's.
    private func envelope(_ transaction: LMTPEnvelope, _ recipient: LMTPRecipient) -> Envelope {
        var extensionPart: String?
        if let at = recipient.address.lastIndex(of: "@"),
           let delimiter = recipient.address[..<at].firstIndex(where: { recipientDelimiters.contains($0) }) {
            extensionPart = String(recipient.address[recipient.address.index(after: delimiter)..<at])
        }
        return Envelope(recipient: recipient.address, sender: transaction.sender.isEmpty ? nil : transaction.sender,
                        recipientExtension: extensionPart)
    }

    static func logPrefix(_ session: String, _ recipient: LMTPRecipient) -> String {
        "session=\(session) rcpt=<\(recipient.address)>"
    }

    /// The reply for a delivery that did not happen, in the codes Dovecot's
    /// LMTP uses, so that postfix defers and bounces as it would there.
    static func reply(for error: DeliveryError, recipient: String) -> LMTPReply {
        let text = "<\(recipient)> \(error.message)"
        switch error.kind {
        case .notAMessage: return error.isTooBig ? LMTPReply(552, "5.3.4", text) : LMTPReply(554, "5.6.0", text)
        case .noSuchMailbox, .usage: return LMTPReply(550, "5.1.1", text)
        case .overQuota(let permanent): return permanent ? LMTPReply(552, "5.2.2", text) : LMTPReply(452, "4.2.2", text)
        case .temporary: return LMTPReply(451, "4.3.0", text)
        }
    }
}
