import LMTP
import MaildirKit
import NIOCore

/// A message's content, as it arrives, into a spool file (MaildirKit's
/// `SpoolFile`, in the mail root's tmp/), so that the message is never held
/// whole in memory; at the final dot the spool goes on to delivery. A
/// message that could not be spooled is read all the same and each of its
/// recipients gets 451.
final class SpoolHandler: ChannelInboundHandler {
    typealias InboundIn = SessionRequest
    typealias InboundOut = ServerWork
    typealias OutboundOut = SessionAnswer

    private enum State {
        /// Between messages.
        case idle
        /// A message is arriving into `spool`.
        case spooling(SpoolFile)
        /// A message is arriving and there is no spool for it.
        case unspooled
    }

    /// What names a spool file for an instant where O_TMPFILE is missing;
    /// swept by `Deliverer.removeLeftovers` after a crash in that instant.
    static let namePrefix = "lmtp-spool"

    private var state = State.idle
    private let directory: String

    init(directory: String) {
        self.directory = directory
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .checkRecipient(let recipient, let declaredSize):
            context.fireChannelRead(wrapInboundOut(.checkRecipient(recipient, declaredSize: declaredSize)))
        case .beginMessage(let envelope):
            discard()
            do {
                let spool = try SpoolFile(in: directory, prefix: Self.namePrefix)
                spool.append(Self.traceHeaders(envelope))
                state = .spooling(spool)
            } catch {
                state = .unspooled
            }
        case .messageBytes(let bytes):
            if case .spooling(let spool) = state { spool.append(bytes) }
        case .abortMessage:
            discard()
        case .endMessage(let envelope):
            let ending = state
            state = .idle
            if case .spooling(let spool) = ending {
                context.fireChannelRead(wrapInboundOut(.deliver(envelope, spool)))
            } else {
                let replies = envelope.recipients.map { LMTPReply(451, "4.3.0", "<\($0.address)> cannot spool the message") }
                context.writeAndFlush(wrapOutboundOut(.delivered(replies)), promise: nil)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        discard()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        discard()
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

    private func discard() {
        if case .spooling(let spool) = state { spool.close() }
        state = .idle
    }
}
