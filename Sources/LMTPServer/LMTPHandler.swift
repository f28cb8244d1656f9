import Dispatch
import DeliveryKit
import MaildirKit
import LMTP
import NIOCore
import NIOPosix

/// Asks a connection to end once its transaction in flight is answered
/// (the server is stopping).
struct ShutdownRequest: Sendable {}

/// One LMTP connection: socket bytes into the protocol engine, its replies
/// back out, its message into a spool, and the blocking work (a RCPT's
/// check, the deliveries) on the thread pool. Reading is paused while the
/// engine waits for that work, so a client cannot make it buffer without
/// bound. Every method runs on the channel's event loop.
final class LMTPHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var engine: LMTPEngine
    private let delivery: TransactionDelivery
    private let pool: NIOThreadPool
    private let spoolDirectory: String
    private let session: String
    private var spool: SpoolFile?
    private var closed = false
    /// Work on the pool whose answer the engine waits for.
    private var waiting = false
    /// The client shut its sending side (it may still read our replies).
    private var inputClosed = false
    /// Between 354 and the final dot (or the abort of a message too big).
    private var inMessage = false

    /// The client's time for one command, from the moment it may send it
    /// to its end of line: trickling bytes does not extend it (no slowloris).
    private let commandTime: TimeAmount
    /// The client's time for a whole message, 354 to the final dot; and
    /// within it, no silence longer than `commandTime`.
    private let dataTime: TimeAmount
    private var deadline: Scheduled<Void>?
    /// Within a message, silence is also limited to `commandTime`.
    private var silenceDeadline: Scheduled<Void>?
    /// The server's own time for one piece of work on the pool (a RCPT's
    /// check, a transaction's deliveries): past it the recipients still
    /// waiting get 451 and the connection goes on, even if the thread
    /// doing the work is stuck (in a file or lock of a mailbox).
    private let workTime: TimeAmount
    private var workDeadline: Scheduled<Void>?
    private var workSeconds: Int64 { workTime.nanoseconds / 1_000_000_000 }
    /// Which piece of work the engine waits for: an answer that comes back
    /// after its deadline answered in its place is dropped.
    private var workNumber = 0

    init(engine: LMTPEngine, delivery: TransactionDelivery, pool: NIOThreadPool, spoolDirectory: String,
         session: String, timeout: TimeAmount) {
        self.engine = engine
        commandTime = timeout
        dataTime = timeout * 4
        workTime = timeout
        self.delivery = delivery
        self.pool = pool
        self.spoolDirectory = spoolDirectory
        self.session = session
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(commandTime, context: context)
        handle(engine.start(), context: context)
        context.flush()
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        if inMessage { armSilence(context: context) }
        let buffer = unwrapInboundIn(data)
        handle(engine.receive(buffer.readableBytesView), context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        readIfWanted(context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !closed { handle(engine.endOfInput(), context: context) }
        closed = true
        disarm()
        // A delivery in flight keeps its spool until it is done.
        if !waiting { discardSpool() }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // A client may pipeline its last commands, QUIT included, and
            // shut its side at once: they are still answered.
            inputClosed = true
            if !closed { handle(engine.endOfInput(), context: context) }
            context.flush()
            closeIfDone(context)
        } else if event is ShutdownRequest {
            if !closed { handle(engine.shuttingDown(), context: context) }
            context.flush()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    /// The client has `time` to do its part; the engine times it out after.
    private func arm(_ time: TimeAmount, context: ChannelHandlerContext) {
        deadline?.cancel()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: time) {
            let (handler, context) = bound.value
            handler.deadline = nil
            guard !handler.closed, !handler.waiting else { return }
            handler.handle(handler.engine.timedOut(), context: context)
            context.flush()
        }
    }

    private func armSilence(context: ChannelHandlerContext) {
        silenceDeadline?.cancel()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        silenceDeadline = context.eventLoop.scheduleTask(in: commandTime) {
            let (handler, context) = bound.value
            handler.silenceDeadline = nil
            guard !handler.closed, !handler.waiting, handler.inMessage else { return }
            handler.handle(handler.engine.timedOut(), context: context)
            context.flush()
        }
    }

    /// The server's turn (a check, the deliveries): no client deadline runs.
    private func disarm() {
        deadline?.cancel()
        deadline = nil
        silenceDeadline?.cancel()
        silenceDeadline = nil
    }

    /// Reads on while the engine wants input and the client takes its
    /// replies: one that pipelines commands without reading the answers
    /// must not make them pile up here.
    private func readIfWanted(_ context: ChannelHandlerContext) {
        if !closed && !waiting && engine.wantsInput && context.channel.isWritable { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        readIfWanted(context)
        context.fireChannelWritabilityChanged()
    }

    /// Input has ended and everything sent before is answered: the
    /// session is over.
    private func closeIfDone(_ context: ChannelHandlerContext) {
        guard inputClosed, !closed, !waiting, !engine.isPaused else { return }
        closed = true
        context.close(promise: nil)
    }

    private func handle(_ outputs: [LMTPOutput], context: ChannelHandlerContext) {
        for output in outputs {
            switch output {
            case .send(let bytes):
                context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
                // A command was answered: the next one's time starts.
                if !inMessage { arm(commandTime, context: context) }
            case .checkRecipient(let recipient):
                check(recipient, context: context)
            case .beginMessage(let envelope):
                inMessage = true
                arm(dataTime, context: context)
                armSilence(context: context)
                discardSpool()
                do {
                    spool = try SpoolFile(in: spoolDirectory, fallbackPrefix: ".lmtp-spool.")
                    spool?.append(Self.traceHeaders(envelope))
                } catch {
                    // The engine reads the data all the same; each
                    // recipient then gets a temporary failure.
                    spool = nil
                }
            case .messageBytes(let bytes):
                spool?.append(bytes)
            case .endMessage(let envelope):
                inMessage = false
                disarm()
                deliver(envelope, context: context)
            case .abortMessage:
                // Too big: the rest is read and dropped, still within the
                // message's time; the replies after its dot start the next.
                inMessage = false
                silenceDeadline?.cancel()
                silenceDeadline = nil
                discardSpool()
            case .close:
                closed = true
                context.flush()
                context.close(promise: nil)
            }
        }
    }

    /// RCPT: whether the recipient can have mail at all, and room for it.
    private func check(_ recipient: LMTPRecipient, context: ChannelHandlerContext) {
        context.flush()
        disarm()
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
            arm(commandTime, context: context)
            handle(engine.resume(recipient: .refuse(TransactionDelivery.reply(for: error, recipient: recipient.address))),
                   context: context)
            context.flush()
            return
        }
        waiting = true
        let size = engine.declaredSize ?? 0
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let number = startWork(context: context) { handler, context in
            // The check is stuck: the recipient is deferred, the mailbox
            // takes nothing more until the check comes back.
            gate.markOverdue(ticket)
            let error = DeliveryError(.temporary, "its mailbox did not answer within \(handler.workSeconds) s; try again later")
            DeliveryLog.failure(error, milliseconds: Double(handler.workSeconds) * 1000,
                                session: "session=\(handler.session) rcpt=<\(recipient.address)>")
            handler.resumeCheck(.refuse(TransactionDelivery.reply(for: error, recipient: recipient.address)), context: context)
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
            handler.resumeCheck(verdict, context: context)
        }
    }

    /// Starts timing a piece of work on the pool; `overrun` runs on the
    /// event loop if it is still not back after `workTime`. Its number,
    /// for `endWork`.
    private func startWork(context: ChannelHandlerContext,
                           overrun: @escaping (LMTPHandler, ChannelHandlerContext) -> Void) -> Int {
        waiting = true
        workNumber += 1
        let number = workNumber
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        workDeadline?.cancel()
        workDeadline = context.eventLoop.scheduleTask(in: workTime) {
            let (handler, context) = bound.value
            guard handler.workNumber == number, handler.waiting else { return }
            handler.workDeadline = nil
            overrun(handler, context)
        }
        return number
    }

    /// The work numbered `number` came back: true when the engine still
    /// waits for it (its deadline has not answered in its place).
    private func endWork(_ number: Int) -> Bool {
        guard workNumber == number, waiting else { return false }
        workDeadline?.cancel()
        workDeadline = nil
        waiting = false
        return true
    }

    /// The deadline answers for the work: whatever comes back later is dropped.
    private func giveUpWork() {
        workNumber += 1
        workDeadline = nil
        waiting = false
    }

    private func resumeCheck(_ verdict: RecipientVerdict, context: ChannelHandlerContext) {
        if waiting { giveUpWork() }
        resumeSession(context) { $0.resume(recipient: verdict) }
    }

    /// The final dot: the deliveries, then one reply per recipient.
    private func deliver(_ envelope: LMTPEnvelope, context: ChannelHandlerContext) {
        context.flush()
        let delivery = delivery
        let session = session
        guard let spool else {
            let replies = envelope.recipients.map { LMTPReply(451, "4.3.0", "<\($0.address)> cannot spool the message") }
            handle(engine.resume(delivered: replies), context: context)
            return
        }
        self.spool = nil
        let job = SpoolJob(spool: spool)
        let progress = TransactionProgress()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let number = startWork(context: context) { handler, context in
            // Recipients still being staged: no further one is claimed;
            // the claimed ones are answered from their outcome, the others
            // 451. Nil: the worker is past staging and answers soon.
            guard let (claimed, stuck) = progress.abandon() else { return }
            if let stuck { delivery.gate.markOverdue(stuck) }
            handler.giveUpWork()
            handler.waiting = true
            let seconds = handler.workSeconds
            let eventLoop = context.eventLoop
            DispatchQueue.global().async {
                let replies = delivery.answerAfterDeadline(envelope: envelope, session: session, claimed: claimed,
                                                           progress: progress, seconds: seconds)
                eventLoop.execute {
                    let (handler, context) = bound.value
                    handler.waiting = false
                    handler.resumeDelivered(replies, context: context)
                }
            }
        }
        pool.runIfActive(eventLoop: context.eventLoop) { () -> [LMTPReply]? in
            defer { job.spool.close() }
            return delivery.deliver(job.spool, envelope: envelope, session: session, progress: progress)
        }.whenComplete { result in
            let (handler, context) = bound.value
            guard handler.endWork(number) else { return }
            let replies: [LMTPReply]
            switch result {
            case .success(let value?): replies = value
            case .success(nil):
                // Answered by the deadline already (not reached: its number changed).
                return
            case .failure:
                // The pool did not run it: the spool is still open.
                job.spool.close()
                replies = envelope.recipients.map { LMTPReply(451, "4.3.0", "<\($0.address)> server busy, try again later") }
            }
            handler.resumeDelivered(replies, context: context)
        }
    }

    private func resumeDelivered(_ replies: [LMTPReply], context: ChannelHandlerContext) {
        resumeSession(context) { $0.resume(delivered: replies) }
    }

    /// The engine goes on after work done off the event loop: the command
    /// timer again, its replies sent, reading resumed if it wants input.
    private func resumeSession(_ context: ChannelHandlerContext, _ resume: (inout LMTPEngine) -> [LMTPOutput]) {
        guard !closed else { return }
        arm(commandTime, context: context)
        handle(resume(&engine), context: context)
        context.flush()
        readIfWanted(context)
        closeIfDone(context)
    }

    /// What local delivery prepends, as postfix's local(8) and Dovecot's
    /// LMTP do: the envelope sender, and the recipient when there is only
    /// one (with several, the same bytes serve them all, as in Dovecot).
    static func traceHeaders(_ envelope: LMTPEnvelope) -> [UInt8] {
        var text = "Return-Path: <\(envelope.sender)>\n"
        if envelope.recipients.count == 1, let recipient = envelope.recipients.first {
            text += "Delivered-To: \(recipient.address)\n"
        }
        return Array(text.utf8)
    }

    private func discardSpool() {
        spool?.close()
        spool = nil
    }
}

/// Hands a spool to the pool's thread: only that thread touches it until
/// the replies are back on the event loop.
private final class SpoolJob: @unchecked Sendable {
    let spool: SpoolFile
    init(spool: SpoolFile) { self.spool = spool }
}
