/// The commands, one line each.
extension LMTPEngine {
    mutating func handle(_ line: [UInt8]) {
        let command: CommandText
        do {
            command = try CommandText(line)
        } catch {
            switch error {
            case .controlCharacter: refuse(.controlCharacter)
            case .empty: refuse(.emptyCommand)
            }
            return
        }
        guard let verb = Verb(command.word) else { return refuse(.unknownCommand) }
        if verb == .helo || verb == .ehlo { return refuse(.notLMTP) }
        if !hasGreeted && !verb.allowedBeforeGreeting { return refuse(.greetFirst) }

        switch verb {
        case .lhlo: lhlo(command)
        case .mail: mail(command)
        case .rcpt: rcpt(command)
        case .data: data(command)
        case .rset:
            if case .transaction = state { state = .ready }
            output.send(.ok)
        case .noop:
            output.send(.ok)
        case .quit:
            output.send(.bye(configuration.hostname))
            close()
        case .vrfy:
            if command.argument.isEmpty { return refuse(.syntax("VRFY address")) }
            output.send(.cannotVerify)
        case .help:
            output.send(.help)
        case .helo, .ehlo:
            refuse(.notLMTP)
        }
    }

    /// LHLO has been answered (the client greeted us).
    private var hasGreeted: Bool {
        switch state {
        case .connected, .greeted, .closed: false
        case .ready, .transaction, .checkingRecipient, .receiving, .discarding, .delivering: true
        }
    }

    /// A bad command: its reply, and the session ends when there have been
    /// too many (a client that is lost, or probing).
    mutating func refuse(_ reply: LMTPReply) {
        output.send(reply)
        errors += 1
        if errors >= limits.errors {
            output.send(.tooManyErrors(configuration.hostname))
            close()
        }
    }

    private mutating func lhlo(_ command: CommandText) {
        if command.argument.isEmpty { return refuse(.syntax("LHLO domain")) }
        state = .ready
        output.send(.lhlo(configuration.hostname, maxMessageSize: limits.messageSize))
    }

    private mutating func mail(_ command: CommandText) {
        if case .transaction = state { return refuse(.nestedMail) }
        guard let argument = command.argument(after: "FROM") else { return refuse(.syntax("MAIL FROM:<address>")) }
        let path: MailPath
        do { path = try MailPath.parse(argument, allowsNull: true) } catch {
            return refuse(Self.reply(for: error, sender: true))
        }
        let options: MailOptions
        do {
            options = try MailOptions(MailParameters.parse(path.rest))
        } catch {
            return refuse(Self.reply(for: error))
        }
        if path.isInternational && !options.smtputf8 { return refuse(.needsSMTPUTF8) }
        if let size = options.declaredSize, size > limits.messageSize {
            // A limit, not a mistake: not counted as an error.
            return output.send(.declaredTooBig(limits.messageSize))
        }
        state = .transaction(LMTPEnvelope(sender: path.address, declaredSize: options.declaredSize,
                                          eightBit: options.eightBit, smtputf8: options.smtputf8))
        output.send(.senderOK)
    }

    private mutating func rcpt(_ command: CommandText) {
        guard case .transaction(let envelope) = state else { return refuse(.mailFirst) }
        guard let argument = command.argument(after: "TO") else { return refuse(.syntax("RCPT TO:<address>")) }
        let path: MailPath
        do { path = try MailPath.parse(argument, allowsNull: false) } catch {
            return refuse(Self.reply(for: error, sender: false))
        }
        if path.isInternational && !envelope.smtputf8 { return refuse(.needsSMTPUTF8) }
        let options: RecipientOptions
        do {
            options = try RecipientOptions(MailParameters.parse(path.rest))
        } catch {
            return refuse(Self.reply(for: error))
        }
        if envelope.recipients.count >= limits.recipients {
            // RFC 5321 4.5.3.1.8: a temporary refusal, the client sends the
            // rest in another transaction; not counted as an error.
            return output.send(.tooManyRecipients)
        }
        let recipient = LMTPRecipient(address: path.address, parameters: options.parameters,
                                      index: envelope.recipients.count)
        state = .checkingRecipient(envelope, recipient)
        output.append(.checkRecipient(recipient))
    }

    private mutating func data(_ command: CommandText) {
        if !command.argument.isEmpty { return refuse(.syntax("DATA")) }
        guard case .transaction(let envelope) = state else { return refuse(.mailFirst) }
        if envelope.recipients.isEmpty { return refuse(.noRecipients) }
        output.send(.startMessage)
        output.append(.beginMessage(envelope))
        state = .receiving(envelope, MessageReceiver(limit: limits.messageSize))
    }

    /// Invalid UTF-8 and control characters get replies of their own, so
    /// that a client's log says what was wrong; the rest is a syntax error.
    private static func reply(for error: PathError, sender: Bool) -> LMTPReply {
        let which = sender ? "sender" : "recipient"
        let enhanced = sender ? "5.1.7" : "5.1.3"
        switch error {
        case .invalidUTF8: return .notUTF8(which, enhanced)
        case .controlCharacter: return .controlInAddress(which, enhanced)
        default: return sender ? .badSender : .badRecipient
        }
    }

    private static func reply(for error: ParameterError) -> LMTPReply {
        switch error {
        case .malformed: .badParameters
        case .unknown(let keyword): .unknownParameter(keyword)
        case .badValue(let keyword): .badValue(keyword)
        }
    }
}
