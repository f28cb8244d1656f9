import NIOCore

/// The client's deadlines, nearest the socket: for each command, from the
/// moment it may send it to its end of line (trickling bytes does not
/// extend it: no slowloris); for a whole message, 354 to the final dot,
/// with no silence within it longer than a command's time. None runs while
/// the server works. When one passes, `ClientTimedOut` goes inwards and the
/// session answers 421 and closes.
final class ClientTimeoutHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Clock {
        /// Not connected yet, or the server's turn.
        case stopped
        /// The client's next command is due by this deadline.
        case command(Scheduled<Void>)
        /// A message: due whole by `whole`, its next bytes by `silence`.
        case message(whole: Scheduled<Void>, silence: Scheduled<Void>)
        /// A message over the limit, read to its dot: due by `whole`.
        case discarding(whole: Scheduled<Void>)
        /// A deadline passed, or the connection is gone: nothing is timed again.
        case expired
    }

    private var clock = Clock.stopped
    private let commandTime: TimeAmount
    private let dataTime: TimeAmount

    init(commandTime: TimeAmount, dataTime: TimeAmount) {
        self.commandTime = commandTime
        self.dataTime = dataTime
    }

    func channelActive(context: ChannelHandlerContext) {
        startCommand(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .message(let whole, let silence) = clock {
            silence.cancel()
            clock = .message(whole: whole, silence: schedule(commandTime, context))
        }
        context.fireChannelRead(data)
    }

    /// A reply: the command was answered, the next one's time starts (in a
    /// message, its own time runs on).
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch clock {
        case .stopped, .command, .discarding: startCommand(context)
        case .message, .expired: break
        }
        context.write(data, promise: promise)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let turn = event as? ClientClock else {
            return context.triggerUserOutboundEvent(event, promise: promise)
        }
        promise?.succeed(())
        if case .expired = clock { return }
        switch turn {
        case .messageStarted:
            cancelAll()
            clock = .message(whole: schedule(dataTime, context), silence: schedule(commandTime, context))
        case .messageDiscarded:
            if case .message(let whole, let silence) = clock {
                silence.cancel()
                clock = .discarding(whole: whole)
            }
        case .serverWorking:
            cancelAll()
            clock = .stopped
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelAll()
        clock = .expired
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelAll()
        clock = .expired
    }

    private func startCommand(_ context: ChannelHandlerContext) {
        if case .expired = clock { return }
        cancelAll()
        clock = .command(schedule(commandTime, context))
    }

    private func schedule(_ time: TimeAmount, _ context: ChannelHandlerContext) -> Scheduled<Void> {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        return context.eventLoop.scheduleTask(in: time) {
            let (handler, context) = bound.value
            handler.expire(context)
        }
    }

    private func expire(_ context: ChannelHandlerContext) {
        switch clock {
        case .stopped, .expired:
            // A deadline cancelled in the same turn of the loop it came due.
            return
        case .command, .message, .discarding:
            cancelAll()
            clock = .expired
            context.fireUserInboundEventTriggered(ClientTimedOut())
        }
    }

    private func cancelAll() {
        switch clock {
        case .command(let deadline), .discarding(let deadline):
            deadline.cancel()
        case .message(let whole, let silence):
            whole.cancel()
            silence.cancel()
        case .stopped, .expired:
            break
        }
    }
}
