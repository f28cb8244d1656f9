import LMTP
import NIOCore

/// One LMTP session: socket bytes into the protocol engine, its replies
/// back out as bytes, and the server's part of the session (recipient
/// checks, the message, its delivery) handed inwards as `SessionRequest`s,
/// whose `SessionAnswer`s come back as writes. Reading is paused while the
/// engine waits for an answer, so a client cannot make it buffer without
/// bound. Every method runs on the channel's event loop.
final class LMTPSessionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = SessionRequest
    typealias OutboundIn = SessionAnswer
    typealias OutboundOut = ByteBuffer

    private enum Connection {
        case open
        /// The client shut its sending side; it may still read our replies.
        case inputClosed
        /// The session is over; whatever comes is dropped.
        case closed
    }

    private var engine: LMTPEngine
    private var connection = Connection.open

    init(engine: LMTPEngine) {
        self.engine = engine
    }

    func channelActive(context: ChannelHandlerContext) {
        handle(engine.start(), context: context)
        context.flush()
        context.read()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .closed = connection { return }
        let buffer = unwrapInboundIn(data)
        handle(engine.receive(buffer.readableBytesView), context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        readIfWanted(context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !isClosed { handle(engine.endOfInput(), context: context) }
        connection = .closed
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // A client may pipeline its last commands, QUIT included, and
            // shut its side at once: they are still answered.
            if case .open = connection { connection = .inputClosed }
            if !isClosed { handle(engine.endOfInput(), context: context) }
            context.flush()
            closeIfDone(context)
        } else if event is ShutdownRequest {
            if !isClosed { handle(engine.shuttingDown(), context: context) }
            context.flush()
        } else if event is ClientTimedOut {
            if !isClosed { handle(engine.timedOut(), context: context) }
            context.flush()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    /// The server's answer: the engine goes on, its replies are sent, and
    /// reading resumes if it wants input.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        promise?.succeed(())
        if isClosed { return }
        switch unwrapOutboundIn(data) {
        case .recipient(let verdict): handle(engine.resume(recipient: verdict), context: context)
        case .delivered(let replies): handle(engine.resume(delivered: replies), context: context)
        }
        context.flush()
        readIfWanted(context)
        closeIfDone(context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        readIfWanted(context)
        context.fireChannelWritabilityChanged()
    }

    private var isClosed: Bool {
        if case .closed = connection { true } else { false }
    }

    /// Reads on while the engine wants input and the client takes its
    /// replies: one that pipelines commands without reading the answers
    /// must not make them pile up here.
    private func readIfWanted(_ context: ChannelHandlerContext) {
        if !isClosed && !engine.isPaused && engine.wantsInput && context.channel.isWritable { context.read() }
    }

    /// Input has ended and everything sent before is answered: the
    /// session is over.
    private func closeIfDone(_ context: ChannelHandlerContext) {
        guard case .inputClosed = connection, !engine.isPaused else { return }
        connection = .closed
        context.close(promise: nil)
    }

    /// Carries out the engine's outputs in order. A pause (a recipient to
    /// check, a message to deliver) is always the last of them; its answer
    /// may come back before `fireChannelRead` returns.
    private func handle(_ outputs: [LMTPOutput], context: ChannelHandlerContext) {
        for output in outputs {
            switch output {
            case .send(let bytes):
                context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
            case .checkRecipient(let recipient):
                context.flush()
                context.triggerUserOutboundEvent(ClientClock.serverWorking, promise: nil)
                let request = SessionRequest.checkRecipient(recipient, declaredSize: engine.declaredSize ?? 0)
                context.fireChannelRead(wrapInboundOut(request))
            case .beginMessage(let envelope):
                context.triggerUserOutboundEvent(ClientClock.messageStarted, promise: nil)
                context.fireChannelRead(wrapInboundOut(.beginMessage(envelope)))
            case .messageBytes(let bytes):
                context.fireChannelRead(wrapInboundOut(.messageBytes(bytes)))
            case .endMessage(let envelope):
                context.flush()
                context.triggerUserOutboundEvent(ClientClock.serverWorking, promise: nil)
                context.fireChannelRead(wrapInboundOut(.endMessage(envelope)))
            case .abortMessage:
                // Too big: the rest is read and dropped, still within the
                // message's time; the replies after its dot start the next.
                context.triggerUserOutboundEvent(ClientClock.messageDiscarded, promise: nil)
                context.fireChannelRead(wrapInboundOut(.abortMessage))
            case .close:
                connection = .closed
                context.flush()
                context.close(promise: nil)
            }
        }
    }
}
