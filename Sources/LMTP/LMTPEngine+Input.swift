/// Reading input: commands line by line, message content in bulk, until the
/// input runs out or the engine pauses or closes.
extension LMTPEngine {
    mutating func process() {
        while !isClosed {
            if closeIfShutdownDue() || isPaused { break }
            let unread = input[inputStart...]
            if unread.isEmpty { break }
            switch state {
            case .connected, .greeted, .ready, .transaction:
                let (event, consumed) = lineReader.take(from: unread)
                inputStart += consumed
                switch event {
                case .line(let line): handle(line)
                case .tooLong: refuse(.lineTooLong)
                case .bareLineFeed: refuse(.bareLineFeed)
                case nil: break
                }
            case .receiving(let envelope, var receiver):
                let (consumed, finished) = receiver.take(from: unread, into: &output.content)
                inputStart += consumed
                if receiver.overflowed {
                    output.content = []
                    output.append(.abortMessage("message over \(limits.messageSize) bytes"))
                    state = .discarding(envelope, receiver)
                } else {
                    state = .receiving(envelope, receiver)
                }
                if finished { finishMessage() }
            case .discarding(let envelope, var receiver):
                let (consumed, finished) = receiver.take(from: unread, into: &output.content)
                inputStart += consumed
                state = .discarding(envelope, receiver)
                if finished { finishMessage() }
            case .checkingRecipient, .delivering, .closed:
                // Not reached: the loop stops for a pause or the end first.
                return keepUnreadInput()
            }
        }
        keepUnreadInput()
        guard !isClosed, !isPaused, unreadCount == 0 else { return }
        switch clientInput {
        case .open:
            break
        case .cutOff:
            abortMessageInProgress("too much pipelined input")
            output.send(.tooMuchInput(configuration.hostname))
            close()
        case .ended:
            abortMessageInProgress("the client went away")
            lineReader.reset()
            state = .closed
        }
    }

    /// Drops what has been read; while paused, holds the rest to the hard
    /// limit (a single huge chunk could pass it: the server only gets to
    /// look at `wantsInput` between chunks).
    private mutating func keepUnreadInput() {
        if inputStart == input.count {
            input.removeAll(keepingCapacity: input.capacity <= 1 << 16)
        } else if inputStart > 0 {
            input.removeSubrange(0..<inputStart)
        }
        inputStart = 0
        if !isClosed, isPaused, input.count > limits.pipelinedInputHardLimit {
            input.removeSubrange(limits.pipelinedInputHardLimit...)
            clientInput = .cutOff
        }
    }

    /// The final dot: the message goes to the server, or, if it was too
    /// big, each recipient gets 552 here and the transaction ends.
    private mutating func finishMessage() {
        switch state {
        case .receiving(let envelope, _):
            output.append(.endMessage(envelope))
            state = .delivering(envelope)
        case .discarding(let envelope, _):
            for _ in envelope.recipients { output.send(.messageTooBig) }
            state = .ready
        case .connected, .greeted, .ready, .transaction, .checkingRecipient, .delivering, .closed:
            break
        }
    }

    /// `.abortMessage` if a message is being read and was not aborted yet.
    mutating func abortMessageInProgress(_ reason: String) {
        guard case .receiving(let envelope, let receiver) = state else { return }
        output.content = []
        output.append(.abortMessage(reason))
        state = .discarding(envelope, receiver)
    }

    mutating func close() {
        output.append(.close)
        state = .closed
        input = []
        inputStart = 0
        lineReader.reset()
    }

    /// A shutdown waits for the transaction in progress; between
    /// transactions it closes.
    private mutating func closeIfShutdownDue() -> Bool {
        guard shutdownRequested else { return false }
        switch state {
        case .connected, .greeted, .ready:
            output.send(.shuttingDown(configuration.hostname))
            close()
            return true
        case .transaction, .checkingRecipient, .receiving, .discarding, .delivering, .closed:
            return false
        }
    }
}
