/// The limits and names of one LMTP service. Values the protocol cannot work
/// with (a recipient limit of 0, a negative size) are raised to the smallest
/// workable value by the engine rather than refused, so that a bad setting
/// degrades a service instead of stopping it.
public struct LMTPConfiguration: Sendable {
    /// Named in the greeting, the LHLO reply and the closing replies.
    public var hostname: String
    /// The largest message taken, counted as delivered (dot-unstuffed, lines
    /// ending in LF); advertised as `SIZE N`.
    public var maxMessageSize: Int
    /// Accepted recipients per transaction; a further RCPT gets 452 4.5.3.
    public var maxRecipients: Int
    /// The longest command line, CRLF included; a longer one gets 500 5.5.2
    /// and is skipped through its LF without being kept.
    public var maxCommandLength: Int
    /// Bad commands (syntax, unknown verbs, bad sequence) a session may send
    /// before it gets 421 4.7.0 and is closed.
    public var maxErrors: Int
    /// Input a paused engine keeps while it waits for the server (pipelined
    /// commands, the next message); at this much `wantsInput` turns false.
    /// A server that reads on anyway may add as much again; what comes
    /// beyond that is dropped and the session ends with 421 once the kept
    /// input has been answered.
    public var maxPipelinedInput: Int

    public init(hostname: String, maxMessageSize: Int = 10 << 20, maxRecipients: Int = 50,
                maxCommandLength: Int = 4096, maxErrors: Int = 10, maxPipelinedInput: Int = 1 << 20) {
        self.hostname = hostname
        self.maxMessageSize = maxMessageSize
        self.maxRecipients = maxRecipients
        self.maxCommandLength = maxCommandLength
        self.maxErrors = maxErrors
        self.maxPipelinedInput = maxPipelinedInput
    }
}

extension LMTPConfiguration {
    /// The limits as the engine applies them: every one at least large enough
    /// for a session to get anywhere (a command line must hold `QUIT` and
    /// CRLF, SIZE 0 would mean "no limit" to a client).
    struct Limits {
        let messageSize: Int
        let recipients: Int
        let commandLength: Int
        let errors: Int
        let pipelinedInput: Int
        /// Where a server that ignored `wantsInput` gets cut off.
        let pipelinedInputHardLimit: Int

        init(_ configuration: LMTPConfiguration) {
            messageSize = max(configuration.maxMessageSize, 1)
            recipients = max(configuration.maxRecipients, 1)
            commandLength = max(configuration.maxCommandLength, 16)
            errors = max(configuration.maxErrors, 1)
            pipelinedInput = max(configuration.maxPipelinedInput, commandLength)
            let (doubled, overflow) = pipelinedInput.multipliedReportingOverflow(by: 2)
            pipelinedInputHardLimit = overflow ? Int.max : doubled
        }
    }
}
