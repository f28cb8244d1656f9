import LMTP
import MaildirKit

// What the handlers of one connection say to each other. The channel
// pipeline, from the socket inwards:
//
//   ClientTimeoutHandler ⇄ LMTPSessionHandler ⇄ SpoolHandler ⇄ DeliveryHandler
//
// Client bytes go in as far as the session handler, which runs the protocol
// engine and hands the server's part on as `SessionRequest`s; the spool
// handler turns a message's requests into one `ServerWork.deliver`; the
// delivery handler answers each piece of work with a `SessionAnswer`, written
// back outwards to the session handler, which resumes the engine and writes
// its replies out as bytes.

/// The server's part of the session, as the engine asks for it.
enum SessionRequest: Sendable {
    /// RCPT TO: may this recipient have mail, with room for `declaredSize`
    /// bytes (MAIL FROM's SIZE=, else 0)?
    case checkRecipient(LMTPRecipient, declaredSize: Int)
    /// 354 went out: the message content follows.
    case beginMessage(LMTPEnvelope)
    case messageBytes([UInt8])
    /// The message will not be delivered (too big, the client went away or
    /// timed out): whatever was kept of it goes.
    case abortMessage
    /// The final dot: the message is complete.
    case endMessage(LMTPEnvelope)
}

/// The blocking work, for the delivery handler.
enum ServerWork {
    case checkRecipient(LMTPRecipient, declaredSize: Int)
    /// A complete message, spooled, for each of the envelope's recipients.
    /// The spool is the delivery's from here on: it closes it when done.
    case deliver(LMTPEnvelope, SpoolFile)
}

/// The server's answer to a piece of work, written back to the session
/// handler; each `SessionRequest` that pauses the engine
/// (`.checkRecipient`, `.endMessage`) gets exactly one.
enum SessionAnswer: Sendable {
    case recipient(RecipientVerdict)
    /// One reply per recipient, in RCPT order.
    case delivered([LMTPReply])
}

/// Whose time runs, as the session handler tells the timeout handler (an
/// outbound user event). A reply written outside a message starts the
/// client's time for its next command without being told.
enum ClientClock {
    /// 354 went out: the client's time for the whole message starts, and
    /// silence within it is timed.
    case messageStarted
    /// The message is over the limit and read to its dot only: its time
    /// runs on, silence is no longer timed.
    case messageDiscarded
    /// The server checks a recipient or delivers: no client time runs.
    case serverWorking
}

/// The client's time is up (an inbound user event from the timeout handler).
struct ClientTimedOut {}

/// Asks a connection to end once its transaction in flight is answered
/// (the server is stopping).
struct ShutdownRequest: Sendable {}
