/// A recipient as RCPT TO gave it.
public struct LMTPRecipient: Sendable, Equatable {
    /// The mailbox inside the angle brackets, source route removed, a quoted
    /// local part without its quotes. Printable ASCII, and valid UTF-8 when
    /// MAIL FROM said SMTPUTF8; never a control character (C0, DEL, C1,
    /// U+2028, U+2029): anything else is refused when the command is read.
    public var address: String
    /// The RCPT parameters taken (ORCPT, NOTIFY), keys in upper case.
    public var parameters: [String: String]
    /// Its place among the transaction's accepted recipients, from 0. LMTP
    /// answers a message once per accepted recipient, in this order, and the
    /// same address may be accepted twice: replies go by index, never by
    /// address.
    public var index: Int

    public init(address: String, parameters: [String: String] = [:], index: Int) {
        self.address = address
        self.parameters = parameters
        self.index = index
    }
}

/// A transaction's envelope: MAIL FROM and the accepted RCPT TOs.
public struct LMTPEnvelope: Sendable, Equatable {
    /// The reverse path; "" for the null sender `<>`.
    public var sender: String
    /// The accepted recipients, in RCPT order, repeats included.
    public var recipients: [LMTPRecipient]
    /// What MAIL FROM's SIZE= announced, if it did.
    public var declaredSize: Int?
    /// MAIL FROM said BODY=8BITMIME.
    public var eightBit: Bool
    /// MAIL FROM said SMTPUTF8: addresses (and the message's headers) may be UTF-8.
    public var smtputf8: Bool

    public init(sender: String, recipients: [LMTPRecipient] = [], declaredSize: Int? = nil, eightBit: Bool = false,
                smtputf8: Bool = false) {
        self.sender = sender
        self.recipients = recipients
        self.declaredSize = declaredSize
        self.eightBit = eightBit
        self.smtputf8 = smtputf8
    }
}
