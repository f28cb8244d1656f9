/// Reading input: commands line by line, message content in bulk, until the
/// input runs out or the engine pauses or closes.
extension LMTPEngine {
    mutating func process() {
        while mode != .closed {
            if closeIfShutdownDue() || isPaused { break }
            let unread = input[inputStart...]
            if unread.isEmpty { break }
            switch mode {
            case .command:
                let (event, consumed) = lineReader.take(from: unread)
                inputStart += consumed
                switch event {
                case .line(let line): handle(line)
                case .tooLong: refuse(.lineTooLong)
                case .bareLineFeed: refuse(.bareLineFeed)
                case nil: break
                }
            case .message:
                let (consumed, finished) = messageReader.take(from: unread, into: &output.content)
                inputStart += consumed
                if messageReader.overflowed && !abortedMessage {
                    output.content = []
                    abortedMessage = true
                    output.append(.abortMessage("message over \(limits.messageSize) bytes"))
                }
                if finished { finishMessage() }
            case .awaitingRecipient, .awaitingDelivery, .closed:
                break
            }
        }
        keepUnreadInput()
        guard mode != .closed, !isPaused, unreadCount == 0 else { return }
        if droppedInput {
            abortMessageInProgress("too much pipelined input")
            output.send(.tooMuchInput(configuration.hostname))
            close()
        } else if inputEnded {
            abortMessageInProgress("the client went away")
            lineReader.reset()
            mode = .closed
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
        if mode != .closed, isPaused, input.count > limits.pipelinedInputHardLimit {
            input.removeSubrange(limits.pipelinedInputHardLimit...)
            droppedInput = true
        }
    }

    /// The final dot: the message goes to the server, or, if it was too
    /// big, each recipient gets 552 here and the transaction ends.
    private mutating func finishMessage() {
        guard let envelope = transaction else { mode = .command; return }
        if abortedMessage {
            for _ in envelope.recipients { output.send(.messageTooBig) }
            transaction = nil
            mode = .command
        } else {
            output.append(.endMessage(envelope))
            mode = .awaitingDelivery
        }
    }

    /// `.abortMessage` if a message is being read and was not aborted yet.
    mutating func abortMessageInProgress(_ reason: String) {
        guard mode == .message, !abortedMessage else { return }
        output.content = []
        abortedMessage = true
        output.append(.abortMessage(reason))
    }

    mutating func close() {
        output.append(.close)
        mode = .closed
        transaction = nil
        pendingRecipient = nil
        input = []
        inputStart = 0
        lineReader.reset()
    }

    /// A shutdown waits for the transaction in progress; between
    /// transactions it closes.
    private mutating func closeIfShutdownDue() -> Bool {
        guard shutdownRequested, mode == .command, transaction == nil else { return false }
        output.send(.shuttingDown(configuration.hostname))
        close()
        return true
    }
}
