import Foundation
import LMTP
@testable import LMTPServer
import NIOCore
import NIOEmbedded
import Testing

/// Stands in for `DeliveryHandler` at the pipeline's delivery seam (the
/// `ServerWork` it is handed, the `SessionAnswer` it writes back): records
/// the work, reads each spooled message back from its file, and answers at
/// once or when a test says so.
final class DeliveryStub: ChannelInboundHandler {
    typealias InboundIn = ServerWork
    typealias OutboundOut = SessionAnswer

    var verdict: (LMTPRecipient) -> RecipientVerdict = { _ in .accept }
    var replies: (LMTPEnvelope) -> [LMTPReply] = { envelope in
        envelope.recipients.map { LMTPReply(250, "2.0.0", "<\($0.address)> saved as \($0.index)") }
    }
    /// False: work waits in `held` until `answerHeld()`.
    var answersAtOnce = true
    private(set) var checked: [LMTPRecipient] = []
    private(set) var declaredSizes: [Int] = []
    /// Each delivered message: its envelope and the spool's bytes.
    private(set) var messages: [(envelope: LMTPEnvelope, content: String)] = []
    private(set) var held: [ServerWork] = []
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let work = unwrapInboundIn(data)
        if case .checkRecipient(let recipient, let size) = work {
            checked.append(recipient)
            declaredSizes.append(size)
        }
        if answersAtOnce { answer(work) } else { held.append(work) }
    }

    func answerHeld() {
        let work = held
        held = []
        for item in work { answer(item) }
    }

    private func answer(_ work: ServerWork) {
        switch work {
        case .checkRecipient(let recipient, _):
            context?.writeAndFlush(wrapOutboundOut(.recipient(verdict(recipient))), promise: nil)
        case .deliver(let envelope, let spool):
            let content = FileManager.default.contents(atPath: spool.path) ?? Data()
            spool.close()
            messages.append((envelope, String(decoding: content, as: UTF8.self)))
            context?.writeAndFlush(wrapOutboundOut(.delivered(replies(envelope))), promise: nil)
        }
    }
}

/// One connection through the server's handlers on an `EmbeddedChannel`:
/// client bytes in, reply lines out, time advanced by hand.
final class Connection {
    let channel = EmbeddedChannel()
    let delivery = DeliveryStub()
    /// Seconds: a command's time; a message's is four times it (as the server sets them).
    static let timeout: Int64 = 10

    init(maxMessageSize: Int = 1 << 20, spoolDirectory: String = NSTemporaryDirectory()) throws {
        let engine = LMTPEngine(configuration: LMTPConfiguration(hostname: "mx.test", maxMessageSize: maxMessageSize))
        try channel.pipeline.syncOperations.addHandlers([
            ClientTimeoutHandler(commandTime: .seconds(Self.timeout), dataTime: .seconds(Self.timeout * 4)),
            LMTPSessionHandler(engine: engine),
            SpoolHandler(directory: spoolDirectory),
            delivery,
        ])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 24)).wait()
    }

    deinit { _ = try? channel.finish() }

    func send(_ text: String) throws {
        try channel.writeInbound(channel.allocator.buffer(string: text))
    }

    /// The client shuts its sending side.
    func shutInput() {
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
    }

    func wait(seconds: Int64) {
        channel.embeddedEventLoop.advanceTime(by: .seconds(seconds))
    }

    /// The reply lines written since the last call, without CRLF.
    func lines() throws -> [String] {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: buffer)
        }
        #expect(text.isEmpty || text.hasSuffix("\r\n"), "a reply cut in the middle: \(text)")
        return text.split(separator: "\r\n").map(String.init)
    }

    /// The last line of each reply since the last call, cut to code and
    /// enhanced code ("250 2.1.5", "354", "220").
    func replies() throws -> [String] {
        try lines().filter { $0.dropFirst(3).first != "-" }.map { line in
            let words = line.split(separator: " ")
            if words.count > 1, words[1].first?.isNumber == true, words[1].contains(".") {
                return "\(words[0]) \(words[1])"
            }
            return String(words.first ?? "")
        }
    }

    var isOpen: Bool { channel.isActive }
}
