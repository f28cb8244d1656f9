/// The server's answer to a `.checkRecipient`.
public enum RecipientVerdict: Sendable {
    /// Taken: the client gets 250 2.1.5.
    case accept
    /// Refused with this reply (4xx or 5xx; anything else is sent as 451 4.3.0,
    /// since the client would count a 2xx as an accepted recipient).
    case refuse(LMTPReply)
}

/// What the engine asks of the server, in the order it must happen.
public enum LMTPOutput: Sendable, Equatable {
    /// Bytes for the client, in order; replies to consecutive commands may
    /// come together in one.
    case send([UInt8])
    /// RCPT TO named this recipient: the engine keeps further input until
    /// `resume(recipient:)`.
    case checkRecipient(LMTPRecipient)
    /// DATA was answered with 354: the message content follows.
    case beginMessage(LMTPEnvelope)
    /// A piece of the message, dot-unstuffed, CRLF turned into LF (a bare
    /// CR or LF kept as it came); never more in all than `maxMessageSize`.
    case messageBytes([UInt8])
    /// The message is complete: the engine keeps further input until
    /// `resume(delivered:)` brings one reply per recipient.
    case endMessage(LMTPEnvelope)
    /// The message will not be delivered (too big, or the client went away
    /// in the middle): whatever was kept of it goes.
    case abortMessage(String)
    /// Close the connection; the engine reads nothing more.
    case close
}
