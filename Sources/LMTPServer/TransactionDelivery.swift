import DeliveryKit
import LMTP
import MaildirKit

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

    /// One reply per recipient, in RCPT order.
    func deliver(_ spool: Spool, envelope: LMTPEnvelope, session: String) -> [LMTPReply] {
        let started = Monotonic.milliseconds
        if let failure = spool.failure {
            let error = DeliveryError(.temporary, "cannot spool the message: \(failure)")
            return envelope.recipients.map { refusal(error, recipient: $0, session: session, started: started) }
        }
        var staged: [Result<Deliverer.Staged, DeliveryError>] = []
        // A recipient repeated in the transaction is delivered once and
        // answered as its first occurrence.
        var firstOccurrence: [String: Int] = [:]
        var repeatOf: [Int?] = []
        // Written once, then hard-linked for the other recipients.
        var written: Deliverer.Staged?
        for recipient in envelope.recipients {
            if let first = firstOccurrence[recipient.address] {
                repeatOf.append(first)
                staged.append(.failure(DeliveryError(.temporary, "repeated recipient")))
                continue
            }
            firstOccurrence[recipient.address] = staged.count
            repeatOf.append(nil)
            do throws(DeliveryError) {
                do { try spool.rewind() } catch {
                    throw DeliveryError(.temporary, "cannot read the spooled message back: \(error)")
                }
                let done = try deliverer.stage(spool.descriptor, envelope: self.envelope(envelope, recipient), sameAs: written)
                if written == nil { written = done }
                staged.append(.success(done))
            } catch {
                staged.append(.failure(error))
            }
        }
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
            switch outcome {
            case .success(let staged):
                // The server's --lock-timeout, else the mailbox's own.
                let report: DeliveryReport
                do throws(DeliveryError) {
                    report = try deliverer.finish(staged, until: stagedAt + (commitWait ?? staged.lockTimeout))
                } catch {
                    replies.append(refusal(error, recipient: recipient, session: session, started: started))
                    continue
                }
                reports[index] = report
                DeliveryLog.delivery(report, mailRoot: report.mailRoot, milliseconds: Monotonic.milliseconds - started,
                                     session: Self.logPrefix(session, recipient))
                replies.append(LMTPReply(250, "2.0.0", "<\(recipient.address)> \(session) Saved (\(report.outcome.rawValue))"))
            case .failure(let error):
                replies.append(refusal(error, recipient: recipient, session: session, started: started))
            }
        }
        return replies
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
        case .overQuota: return LMTPReply(552, "5.2.2", text)
        case .temporary: return error.isOverQuota ? LMTPReply(452, "4.2.2", text) : LMTPReply(451, "4.3.0", text)
        }
    }
}
