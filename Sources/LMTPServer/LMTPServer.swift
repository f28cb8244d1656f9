import Dispatch
import DeliveryKit
import LMTP
import NIOCore
import NIOPosix
import Synchronization
import Threads
import MaildirKit
import SystemPackage

/// What `notmuch-deliver lmtp` is asked for.
public struct LMTPServerConfiguration: Sendable {
    /// Empty: the sockets systemd passes (socket activation).
    public var listen: [ListenAddress] = []
    /// A unix socket's permissions once bound (postfix must be able to connect).
    public var socketMode: UInt32?
    /// One session on standard input and output (inetd, systemd Accept=yes, tests).
    public var stdio = false
    public var maxConnections = 64
    public var maxRecipients = 50
    public var maxMessageSize = 10 << 20
    /// Seconds a client may stay silent, in a command or in its data.
    public var timeout: Int64 = 300
    /// How long a reply waits for its commit before saying it is queued;
    /// nil: the mailbox's lock timeout.
    public var commitWait: Double?
    public var recipientDelimiters = "+"
    public var hostname: String

    public init(hostname: String) {
        self.hostname = hostname
    }
}

public struct LMTPServerError: Error, CustomStringConvertible {
    public let description: String
}

/// The long-lived LMTP server: listens, gives each connection its
/// handlers (timeouts, the session, the spool, the deliveries), and stops cleanly: on SIGTERM or SIGINT it stops
/// accepting, lets every transaction in flight end with its replies, waits
/// for the commits, and returns.
public final class LMTPServer: Sendable {
    private let configuration: LMTPServerConfiguration
    private let deliverer: Deliverer
    private let spoolDirectory: String
    private let connections = ConnectionRegistry()
    /// Deliveries per mailbox: with virtual mailboxes a quarter of the
    /// connections (at least 2) for one mailbox, so that one whose files
    /// hang its deliveries leaves threads for the others; a personal
    /// server has one mailbox, which may use them all.
    private let gate: MailboxGate

    public init(configuration: LMTPServerConfiguration, deliverer: Deliverer, spoolDirectory: String) {
        self.configuration = configuration
        self.deliverer = deliverer
        self.spoolDirectory = spoolDirectory
        gate = MailboxGate(limit: deliverer.servesVirtualMailboxes ? max(2, configuration.maxConnections / 4)
                                                                   : max(configuration.maxConnections, 2))
    }

    /// Runs until the server is told to stop (or, with `stdio`, until the session ends).
    public func run() throws(LMTPServerError) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Deliveries block on fsyncs and on their commit: one thread each.
        let pool = NIOThreadPool(numberOfThreads: max(configuration.maxConnections, 2))
        pool.start()
        defer {
            // Not waited for beyond a moment: a thread stuck in a mailbox's
            // file would hold the stop for ever. Its delivery was answered
            // 451 at its deadline and never claimed, so the process may end
            // under it; what it wrote in tmp/ goes at the next start.
            let stopped = DispatchSemaphore(value: 0)
            pool.shutdownGracefully { _ in stopped.signal() }
            if stopped.wait(timeout: .now() + 2) == .timedOut {
                DeliveryLog.notice("stopping with \(gate.overdueCount) delivery thread(s) still stuck in a mailbox")
            }
            try? group.syncShutdownGracefully()
        }
        if configuration.stdio {
            try runStdio(group: group, pool: pool)
        } else {
            try runListening(group: group, pool: pool)
        }
        // Every reply is sent; the commits still running finish.
        deliverer.waitForCommits(until: Monotonic.seconds + (configuration.commitWait ?? 5) + 5)
    }

    private func runStdio(group: EventLoopGroup, pool: NIOThreadPool) throws(LMTPServerError) {
        if let problem = Self.stdioProblem() { throw LMTPServerError(description: problem) }
        do {
            let channel = try NIOPipeBootstrap(group: group)
                .channelOption(.autoRead, value: false)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try self.addHandlers(to: channel, pool: pool)
                    }
                }
                .takingOwnershipOfDescriptors(input: FileDescriptor.standardInput.rawValue,
                                              output: FileDescriptor.standardOutput.rawValue)
                .wait()
            try channel.closeFuture.wait()
        } catch {
            throw LMTPServerError(description: "cannot run an LMTP session on standard input: \(error)")
        }
    }

    private func runListening(group: EventLoopGroup, pool: NIOThreadPool) throws(LMTPServerError) {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard self.connections.admit(channel, limit: self.configuration.maxConnections) else {
                        try channel.pipeline.syncOperations.addHandler(Refusal())
                        return
                    }
                    try self.addHandlers(to: channel, pool: pool)
                }
            }
        var listeners: [Channel] = []
        do {
            let inherited = SocketActivation.descriptors()
            if configuration.listen.isEmpty {
                guard !inherited.isEmpty else {
                    throw LMTPServerError(description: "no --listen address, and no socket from systemd (LISTEN_FDS)")
                }
                for descriptor in inherited {
                    listeners.append(try bootstrap.withBoundSocket(descriptor).wait())
                }
            }
            for address in configuration.listen {
                switch address {
                case .unix(let path):
                    listeners.append(try bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).wait())
                    if let mode = configuration.socketMode {
                        do { try FileSystem.setMode(path, mode) } catch {
                            throw LMTPServerError(description: "cannot set the mode of '\(path)': \(error)")
                        }
                    }
                case .tcp(let host, let port):
                    listeners.append(try bootstrap.bind(host: host, port: port).wait())
                }
            }
        } catch let error as LMTPServerError {
            for listener in listeners { try? listener.close().wait() }
            throw error
        } catch {
            for listener in listeners { try? listener.close().wait() }
            throw LMTPServerError(description: "cannot listen: \(error)")
        }
        deliverer.removeLeftovers()
        deliverer.applyLeftoverQueue()
        DeliveryLog.notice("LMTP server listening on \(listeners.compactMap { $0.localAddress.map { "\($0)" } })")

        let stop = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        for stopSignal in [SignalPipe.Signal.terminate, .interrupt] {
            SignalPipe.ignore(stopSignal)
            let source = DispatchSource.makeSignalSource(signal: stopSignal.rawValue, queue: .global())
            source.setEventHandler { stop.signal() }
            source.resume()
            sources.append(source)
        }
        // The rules and the notmuch configuration are read again within a
        // second of a change; SIGHUP has them read at the next delivery.
        SignalPipe.ignore(.hangUp)
        let hangup = DispatchSource.makeSignalSource(signal: SignalPipe.Signal.hangUp.rawValue, queue: .global())
        let deliverer = deliverer
        hangup.setEventHandler {
            deliverer.reload()
            DeliveryLog.notice("SIGHUP: the configuration and the rules are read again from the next delivery")
        }
        hangup.resume()
        stop.wait()

        DeliveryLog.notice("stopping: no new connections; finishing the transactions in flight")
        for listener in listeners { try? listener.close().wait() }
        connections.requestShutdown()
        // A client that neither finishes nor leaves is cut off after its timeout.
        connections.waitUntilEmpty(until: Monotonic.seconds + Double(configuration.timeout) + 5)
        for source in sources { source.cancel() }
        hangup.cancel()
    }

    private func addHandlers(to channel: Channel, pool: NIOThreadPool) throws {
        let engine = LMTPEngine(configuration: LMTPConfiguration(
            hostname: configuration.hostname, maxMessageSize: configuration.maxMessageSize,
            maxRecipients: configuration.maxRecipients))
        let delivery = TransactionDelivery(deliverer: deliverer, commitWait: configuration.commitWait,
                                           recipientDelimiters: configuration.recipientDelimiters, gate: gate)
        let timeout = TimeAmount.seconds(configuration.timeout)
        // One job each, from the socket inwards (see PipelineMessages.swift).
        try channel.pipeline.syncOperations.addHandlers([
            ClientTimeoutHandler(commandTime: timeout, dataTime: timeout * 4),
            LMTPSessionHandler(engine: engine),
            SpoolHandler(directory: spoolDirectory),
            DeliveryHandler(delivery: delivery, pool: pool, session: Self.sessionID(), workTime: timeout),
        ])
    }

    /// Why standard input and output cannot carry a session, if they
    /// cannot: NIO polls them, and a regular file or /dev/null cannot be
    /// polled (NIO would stop the process rather than give an error).
    public static func stdioProblem() -> String? {
        for (descriptor, name) in [(FileDescriptor.standardInput, "input"), (FileDescriptor.standardOutput, "output")]
            where !FileSystem.isPollable(descriptor) {
            return "--stdio needs its standard \(name) to be a socket, a pipe or a terminal "
                + "(as inetd or systemd's Accept=yes give it), not a file"
        }
        return nil
    }

    /// Short, random, and the same in every log line of one connection.
    static func sessionID() -> String {
        var random = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijkmnpqrstuvwxyz23456789")
        return String((0..<12).map { _ in alphabet[Int(random.next(upperBound: UInt32(alphabet.count)))] })
    }
}

/// A connection over the limit: told so, and closed.
private final class Refusal: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelActive(context: ChannelHandlerContext) {
        let text = "421 4.3.2 too many connections, try again later\r\n"
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: text))).whenComplete { _ in
            bound.value.close(promise: nil)
        }
    }
}

/// The open connections: counted for the limit, and told when the server stops.
final class ConnectionRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: Channel]>([:])
    private let emptied = Wakeup()

    /// Registers `channel` unless `limit` connections are open.
    func admit(_ channel: Channel, limit: Int) -> Bool {
        let key = ObjectIdentifier(channel)
        let admitted = channels.withLock { open in
            guard open.count < limit else { return false }
            open[key] = channel
            return true
        }
        if admitted {
            channel.closeFuture.whenComplete { _ in
                self.channels.withLock { _ = $0.removeValue(forKey: key) }
                self.emptied.signal()
            }
        }
        return admitted
    }

    func requestShutdown() {
        for channel in channels.withLock({ Array($0.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(ShutdownRequest())
        }
    }

    func waitUntilEmpty(until deadline: Double) {
        while !channels.withLock({ $0.isEmpty }), Monotonic.seconds < deadline {
            emptied.wait(upTo: 0.1)
        }
        for channel in channels.withLock({ Array($0.values) }) { try? channel.close().wait() }
    }
}

/// Wakes `waitUntilEmpty` when a connection closes.
private final class Wakeup: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    func signal() { semaphore.signal() }
    func wait(upTo seconds: Double) { _ = semaphore.wait(timeout: .now() + seconds) }
}
