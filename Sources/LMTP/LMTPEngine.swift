/// The server side of LMTP (RFC 2033) without I/O: the server feeds what
/// the client sends and carries out the outputs (writing replies, checking
/// recipients, spooling and delivering the message), in order.
///
/// The engine pauses twice per transaction, at `.checkRecipient` and at
/// `.endMessage`, until the server answers with a `resume`; input arriving
/// meanwhile (a pipelining client sends on) is kept, up to
/// `maxPipelinedInput`, and read once the engine resumes.
///
/// Nothing the client sends stops the engine: any byte sequence, in any
/// chunking, gives replies; memory stays within the configured limits.
public struct LMTPEngine: Sendable {
    enum Mode {
        case command
        /// `.checkRecipient` is out, `pendingRecipient` holds it.
        case awaitingRecipient
        /// Between 354 and the final dot.
        case message
        /// `.endMessage` is out.
        case awaitingDelivery
        case closed
    }

    let configuration: LMTPConfiguration
    let limits: LMTPConfiguration.Limits
    var mode = Mode.command
    var output = OutputQueue()

    var started = false
    var greeted = false
    var errors = 0
    /// MAIL FROM has been taken; the envelope so far.
    var transaction: LMTPEnvelope?
    var pendingRecipient: LMTPRecipient?

    var lineReader: CommandLineReader
    var messageReader: MessageReceiver
    /// `.abortMessage` went out for the message being read (too big).
    var abortedMessage = false

    /// Input not read yet: kept while paused. `inputStart` saves moving the
    /// bytes on every command.
    var input: [UInt8] = []
    var inputStart = 0
    /// Input came beyond the hard limit and was dropped: once what was kept
    /// has been answered, the session ends.
    var droppedInput = false
    var inputEnded = false
    var shutdownRequested = false

    public init(configuration: LMTPConfiguration) {
        self.configuration = configuration
        limits = LMTPConfiguration.Limits(configuration)
        lineReader = CommandLineReader(limit: limits.commandLength)
        messageReader = MessageReceiver(limit: limits.messageSize)
    }

    /// Waiting for a `resume`: input is only kept.
    public var isPaused: Bool { mode == .awaitingRecipient || mode == .awaitingDelivery }

    /// False when the server should stop reading from the client: the
    /// session is over, or a paused engine holds `maxPipelinedInput`.
    public var wantsInput: Bool {
        mode != .closed && !inputEnded && !droppedInput && unreadCount < limits.pipelinedInput
    }

    /// Client bytes the engine holds: input kept while paused, and the
    /// unfinished command line. Never more than twice `maxPipelinedInput`
    /// plus `maxCommandLength`.
    public var bufferedByteCount: Int { unreadCount + lineReader.heldCount }

    var unreadCount: Int { input.count - inputStart }

    /// The greeting.
    public mutating func start() -> [LMTPOutput] {
        guard !started, mode != .closed else { return [] }
        started = true
        output.send(.greeting(configuration.hostname))
        return output.take()
    }

    /// Client bytes, in any chunking.
    public mutating func receive(_ bytes: some Collection<UInt8>) -> [LMTPOutput] {
        guard mode != .closed, !inputEnded, !droppedInput else { return [] }
        if !started {
            started = true
            output.send(.greeting(configuration.hostname))
        }
        if isPaused {
            let room = max(limits.pipelinedInputHardLimit - unreadCount, 0)
            input += bytes.prefix(room)
            if bytes.count > room { droppedInput = true }
        } else {
            input += bytes
            process()
        }
        return output.take()
    }

    /// The answer to the pending `.checkRecipient`: 250 2.1.5, or the
    /// refusal; then the input kept meanwhile is read.
    public mutating func resume(recipient verdict: RecipientVerdict) -> [LMTPOutput] {
        guard mode == .awaitingRecipient, let recipient = pendingRecipient else { return [] }
        pendingRecipient = nil
        mode = .command
        switch verdict {
        case .accept:
            transaction?.recipients.append(recipient)
            output.send(.recipientOK)
        case .refuse(let reply):
            output.send(reply.normalized(allowing: [4, 5], fallback: .badVerdict))
        }
        process()
        return output.take()
    }

    /// One reply per accepted recipient, in order, for the message of the
    /// last `.endMessage`. Missing ones are sent as 451 4.3.0 (the client
    /// tries again later), extra ones dropped: the client counts on exactly
    /// one each. Then the input kept meanwhile is read.
    public mutating func resume(delivered replies: [LMTPReply]) -> [LMTPOutput] {
        guard mode == .awaitingDelivery, let envelope = transaction else { return [] }
        for index in envelope.recipients.indices {
            let reply = index < replies.count ? replies[index] : .missingReply
            output.send(reply.normalized(allowing: [2, 4, 5], fallback: .missingReply))
        }
        transaction = nil
        mode = .command
        process()
        return output.take()
    }

    /// The client closed its side. A message being read is aborted; input
    /// kept while paused is still answered on resume (a client may send
    /// QUIT and close at once).
    public mutating func endOfInput() -> [LMTPOutput] {
        guard mode != .closed, !inputEnded else { return [] }
        inputEnded = true
        process()
        return output.take()
    }

    /// The server's idle or DATA timer: 421 4.4.2 and close; a message
    /// being read is aborted first. A message handed over with
    /// `.endMessage` stays the server's: it is not aborted.
    public mutating func timedOut() -> [LMTPOutput] {
        guard mode != .closed else { return [] }
        abortMessageInProgress("timeout")
        output.send(.timeout(configuration.hostname))
        close()
        return output.take()
    }

    /// The server is stopping: 421 4.3.2 and close at once between
    /// transactions, else as soon as the transaction in progress has had its
    /// replies (or was reset).
    public mutating func shuttingDown() -> [LMTPOutput] {
        guard mode != .closed else { return [] }
        shutdownRequested = true
        process()
        return output.take()
    }
}
