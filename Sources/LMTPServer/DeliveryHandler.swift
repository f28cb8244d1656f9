import Dispatch
import DeliveryKit
import LMTP
import MaildirKit
import NIOCore
import NIOPosix

/// The blocking work of a session, on the server's thread pool: a RCPT's
/// check (can the recipient have mail, is there room) and a message's
/// deliveries through `TransactionDelivery`; each answered with a
/// `SessionAnswer` written back to the session. The server's own time for
/// a piece of work is limited: past it, the recipients still waiting get
/// 451 and the session goes on, even if the thread doing the work is stuck
/// (in a file or lock of a mailbox).
final class DeliveryHandler: ChannelInboundHandler {
    typealias InboundIn = ServerWork
    typealias OutboundOut = SessionAnswer

    private enum State {
        /// No work out: the session is the client's.
        case idle
        /// Work numbered `number` is on the pool and its answer is wanted.
        /// `deadline` answers in its place if it is late; nil once it has
        /// passed and left the work to answer (a delivery past staging,
        /// whose wait for its commit is bounded) or for work that answers
        /// for late work.
        case working(number: Int, deadline: Scheduled<Void>?)
    }

    private var state = State.idle
    /// The last work's number: an answer that comes back after its
    /// deadline answered in its place has an older one, and is dropped.
    private var lastNumber = 0
    private let delivery: TransactionDelivery
    private let pool: NIOThreadPool
    private let session: String
    private let workTime: TimeAmount
    private var workSeconds: Int64 { workTime.nanoseconds / 1_000_000_000 }

    init(delivery: TransactionDelivery, pool: NIOThreadPool, session: String, workTime: TimeAmount) {
        self.delivery = delivery
        self.pool = pool
        self.session = session
        self.workTime = workTime
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .checkRecipient(let recipient, let declaredSize):
            check(recipient, size: declaredSize, context: context)
        case .deliver(let envelope, let spool):
            deliver(envelope, spool: spool, context: context)
        }
    }

    /// RCPT: whether the recipient can have mail at all, and room for it.
    private func check(_ recipient: LMTPRecipient, size: Int, context: ChannelHandlerContext) {
        let deliverer = delivery.deliverer
        let gate = delivery.gate
        let ticket: MailboxGate.Ticket
        switch gate.enter(deliverer.mailboxKey(recipient: recipient.address)) {
        case .success(let entered): ticket = entered
        case .failure(let refusal):
            // A mailbox that is stuck or full of deliveries: said at once,
            // without a thread.
            let error = TransactionDelivery.error(for: refusal)
            DeliveryLog.failure(error, milliseconds: 0, session: "session=\(session) rcpt=<\(recipient.address)>")
            answer(.recipient(.refuse(TransactionDelivery.reply(for: error, recipient: recipient.address))), context)
            return
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let number = startWork(context: context) { handler, context in
            // The check is stuck: the recipient is deferred, the mailbox
            // takes nothing more until the check comes back.
            gate.markOverdue(ticket)
            let error = DeliveryError(.temporary, "its mailbox did not answer within \(handler.workSeconds) s; try again later")
            DeliveryLog.failure(error, milliseconds: Double(handler.workSeconds) * 1000,
                                session: "session=\(handler.session) rcpt=<\(recipient.address)>")
            handler.state = .idle
            handler.answer(.recipient(.refuse(TransactionDelivery.reply(for: error, recipient: recipient.address))), context)
        }
        pool.runIfActive(eventLoop: context.eventLoop) { () -> RecipientVerdict in
            defer { gate.leave(ticket) }
            guard let refusal = deliverer.precheck(recipient: recipient.address, size: size) else { return .accept }
            return .refuse(TransactionDelivery.reply(for: refusal, recipient: recipient.address))
        }.whenComplete { result in
            // Not run at all (the pool is stopping): its place is given back here.
            if case .failure = result { gate.leave(ticket) }
            let (handler, context) = bound.value
            guard handler.endWork(number) else { return }
            let verdict: RecipientVerdict
            switch result {
            case .success(let value): verdict = value
            case .failure: verdict = .refuse(LMTPReply(451, "4.3.0", "<\(recipient.address)> server busy, try again later"))
            }
            handler.answer(.recipient(verdict), context)
        }
    }

    /// The final dot: the deliveries, then one reply per recipient.
    private func deliver(_ envelope: LMTPEnvelope, spool: SpoolFile, context: ChannelHandlerContext) {
        let delivery = delivery
        let session = session
        let job = SpoolJob(spool: spool)
        let progress = TransactionProgress()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let number = startWork(context: context) { handler, context in
            // Recipients still being staged: no further one is claimed;
            // the claimed ones are answered from their outcome, the others
            // 451. Nil: the worker is past staging and answers soon.
            guard let (claimed, stuck) = progress.abandon() else { return }
            if let stuck { delivery.gate.markOverdue(stuck) }
            // The late work's answer is dropped from here on; this one is wanted.
            let answering = handler.startWork(context: context, overrun: nil)
            let seconds = handler.workSeconds
            let eventLoop = context.eventLoop
            DispatchQueue.global().async {
                let replies = delivery.answerAfterDeadline(envelope: envelope, session: session, claimed: claimed,
                                                           progress: progress, seconds: seconds)
                eventLoop.execute {
                    let (handler, context) = bound.value
                    guard handler.endWork(answering) else { return }
                    handler.answer(.delivered(replies), context)
                }
            }
        }
        pool.runIfActive(eventLoop: context.eventLoop) { () -> [LMTPReply]? in
            defer { job.spool.close() }
            return delivery.deliver(job.spool, envelope: envelope, session: session, progress: progress)
        }.whenComplete { result in
            // The pool did not run it: the spool is still open.
            if case .failure = result { job.spool.close() }
            let (handler, context) = bound.value
            guard handler.endWork(number) else { return }
            let replies: [LMTPReply]
            switch result {
            case .success(let value?): replies = value
            case .success(nil):
                // Answered by the deadline already (not reached: its number changed).
                return
            case .failure:
                replies = envelope.recipients.map { LMTPReply(451, "4.3.0", "<\($0.address)> server busy, try again later") }
            }
            handler.answer(.delivered(replies), context)
        }
    }

    /// Starts a piece of work: its number, for `endWork`. `overrun` runs on
    /// the event loop if the work is still out after `workTime`.
    private func startWork(context: ChannelHandlerContext,
                           overrun: ((DeliveryHandler, ChannelHandlerContext) -> Void)?) -> Int {
        if case .working(_, let deadline?) = state { deadline.cancel() }
        lastNumber += 1
        let number = lastNumber
        var deadline: Scheduled<Void>?
        if let overrun {
            let bound = NIOLoopBound((self, context, overrun), eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: workTime) {
                let (handler, context, overrun) = bound.value
                guard case .working(number, _) = handler.state else { return }
                handler.state = .working(number: number, deadline: nil)
                overrun(handler, context)
            }
        }
        state = .working(number: number, deadline: deadline)
        return number
    }

    /// The work numbered `number` came back: true when its answer is still
    /// wanted (no deadline has answered in its place).
    private func endWork(_ number: Int) -> Bool {
        guard case .working(number, let deadline) = state else { return false }
        deadline?.cancel()
        state = .idle
        return true
    }

    private func answer(_ answer: SessionAnswer, _ context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(answer), promise: nil)
    }
}

/// Hands a spool to the pool's thread: only that thread touches it until
/// the replies are back on the event loop.
private final class SpoolJob: @unchecked Sendable {
    let spool: SpoolFile
    init(spool: SpoolFile) { self.spool = spool }
}
