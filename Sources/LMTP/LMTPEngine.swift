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
    /// Where the session is. Each case holds what is known in it, and the
    /// transitions (in the `LMTPEngine+` files) switch over it: a
    /// transaction exists only after LHLO, a recipient waits for its check
    /// only inside one, a message is read only with accepted recipients.
    enum State {
        /// Nothing sent yet: the greeting comes first.
        case connected
        /// The greeting went out; LHLO has not come (only LHLO, NOOP, RSET
        /// and QUIT are taken).
        case greeted
        /// LHLO was answered; no transaction.
        case ready
        /// MAIL FROM was taken: the envelope so far, its accepted
        /// recipients in RCPT order (none yet, at first).
        case transaction(LMTPEnvelope)
        /// RCPT TO named `recipient` and `.checkRecipient` went out; input
        /// is kept until `resume(recipient:)`.
        case checkingRecipient(LMTPEnvelope, LMTPRecipient)
        /// Between 354 and the final dot: the content goes out as it comes.
        case receiving(LMTPEnvelope, MessageReceiver)
        /// Over the size limit (`.abortMessage` went out): read on to the
        /// final dot and dropped; each recipient then gets 552.
        case discarding(LMTPEnvelope, MessageReceiver)
        /// The final dot went out as `.endMessage`; input is kept until
        /// `resume(delivered:)`.
        case delivering(LMTPEnvelope)
        /// The session is over: nothing more is read or sent.
        case closed
    }

    /// What the client's side of the connection has come to. Independent of
    /// `State`: a client may close its side while the server delivers.
    enum ClientInput {
        case open
        /// The client closed its side: what it sent before is answered,
        /// then the session ends.
        case ended
        /// It sent beyond the hard limit while the engine was paused and the
        /// rest was dropped: what was kept is answered, then 421.
        case cutOff
    }

    let configuration: LMTPConfiguration
    let limits: LMTPConfiguration.Limits
    var state = State.connected
    var clientInput = ClientInput.open
    /// The server is stopping: the session closes once no transaction is
    /// under way (any state may see it come, so it is not one of them).
    var shutdownRequested = false
    /// Bad commands so far in the session.
    var errors = 0
    var output = OutputQueue()
    /// Command framing: the line being read, carried between chunks.
    var lineReader: CommandLineReader

    /// Input not read yet: kept while paused. `inputStart` saves moving the
    /// bytes on every command.
    var input: [UInt8] = []
    var inputStart = 0

    public init(configuration: LMTPConfiguration) {
        self.configuration = configuration
        limits = LMTPConfiguration.Limits(configuration)
        lineReader = CommandLineReader(limit: limits.commandLength)
    }

    /// Waiting for a `resume`: input is only kept.
    public var isPaused: Bool {
        switch state {
        case .checkingRecipient, .delivering: true
        default: false
        }
    }

    var isClosed: Bool {
        if case .closed = state { true } else { false }
    }

    /// False when the server should stop reading from the client: the
    /// session is over, or a paused engine holds `maxPipelinedInput`.
    public var wantsInput: Bool {
        !isClosed && clientInput == .open && unreadCount < limits.pipelinedInput
    }

    /// Client bytes the engine holds: input kept while paused, and the
    /// unfinished command line. Never more than twice `maxPipelinedInput`
    /// plus `maxCommandLength`.
    public var bufferedByteCount: Int { unreadCount + lineReader.heldCount }

    var unreadCount: Int { input.count - inputStart }

    /// The transaction under way, from MAIL FROM to its replies.
    var envelope: LMTPEnvelope? {
        switch state {
        case .transaction(let envelope), .checkingRecipient(let envelope, _), .receiving(let envelope, _),
             .discarding(let envelope, _), .delivering(let envelope):
            envelope
        case .connected, .greeted, .ready, .closed:
            nil
        }
    }

    /// MAIL FROM's SIZE= in the transaction under way: a server checks a
    /// recipient's room for it at RCPT time.
    public var declaredSize: Int? { envelope?.declaredSize }

    /// The greeting.
    public mutating func start() -> [LMTPOutput] {
        guard case .connected = state else { return [] }
        greet()
        return output.take()
    }

    private mutating func greet() {
        output.send(.greeting(configuration.hostname))
        state = .greeted
    }

    /// Client bytes, in any chunking.
    public mutating func receive(_ bytes: some Collection<UInt8>) -> [LMTPOutput] {
        guard !isClosed, clientInput == .open else { return [] }
        if case .connected = state { greet() }
        if isPaused {
            let room = max(limits.pipelinedInputHardLimit - unreadCount, 0)
            input += bytes.prefix(room)
            if bytes.count > room { clientInput = .cutOff }
        } else {
            input += bytes
            process()
        }
        return output.take()
    }

    /// The answer to the pending `.checkRecipient`: 250 2.1.5, or the
    /// refusal; then the input kept meanwhile is read.
    public mutating func resume(recipient verdict: RecipientVerdict) -> [LMTPOutput] {
        guard case .checkingRecipient(var envelope, let recipient) = state else { return [] }
        switch verdict {
        case .accept:
            envelope.recipients.append(recipient)
            output.send(.recipientOK)
        case .refuse(let reply):
            output.send(reply.normalized(allowing: [4, 5], fallback: .badVerdict))
        }
        state = .transaction(envelope)
        process()
        return output.take()
    }

    /// One reply per accepted recipient, in order, for the message of the
    /// last `.endMessage`. Missing ones are sent as 451 4.3.0 (the client
    /// tries again later), extra ones dropped: the client counts on exactly
    /// one each. Then the input kept meanwhile is read.
    public mutating func resume(delivered replies: [LMTPReply]) -> [LMTPOutput] {
        guard case .delivering(let envelope) = state else { return [] }
        for index in envelope.recipients.indices {
            let reply = index < replies.count ? replies[index] : .missingReply
            output.send(reply.normalized(allowing: [2, 4, 5], fallback: .missingReply))
        }
        state = .ready
        process()
        return output.take()
    }

    /// The client closed its side. A message being read is aborted; input
    /// kept while paused is still answered on resume (a client may send
    /// QUIT and close at once).
    public mutating func endOfInput() -> [LMTPOutput] {
        guard !isClosed, clientInput == .open else { return [] }
        clientInput = .ended
        process()
        return output.take()
    }

    /// The server's idle or DATA timer: 421 4.4.2 and close; a message
    /// being read is aborted first. A message handed over with
    /// `.endMessage` stays the server's: it is not aborted.
    public mutating func timedOut() -> [LMTPOutput] {
        guard !isClosed else { return [] }
        abortMessageInProgress("timeout")
        output.send(.timeout(configuration.hostname))
        close()
        return output.take()
    }

    /// The server is stopping: 421 4.3.2 and close at once between
    /// transactions, else as soon as the transaction in progress has had its
    /// replies (or was reset).
    public mutating func shuttingDown() -> [LMTPOutput] {
        guard !isClosed else { return [] }
        shutdownRequested = true
        process()
        return output.take()
    }
}
