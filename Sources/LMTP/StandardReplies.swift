/// The replies the engine makes up itself. Of what the client sent, only a
/// parameter keyword comes back (letters, digits and hyphens, checked), so
/// nothing a client sends reaches it or a log unchecked.
extension LMTPReply {
    static func greeting(_ host: String) -> LMTPReply { LMTPReply(220, nil, "\(host) LMTP ready") }

    /// RFC 2033 4.1: the extensions this engine implements, and no others.
    static func lhlo(_ host: String, maxMessageSize: Int) -> LMTPReply {
        LMTPReply(250, nil, host, "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8", "SIZE \(maxMessageSize)")
    }

    static let ok = LMTPReply(250, "2.0.0", "OK")
    static let senderOK = LMTPReply(250, "2.1.0", "sender OK")
    static let recipientOK = LMTPReply(250, "2.1.5", "recipient OK")
    static let startMessage = LMTPReply(354, nil, "send the message, end with <CRLF>.<CRLF>")
    static func bye(_ host: String) -> LMTPReply { LMTPReply(221, "2.0.0", "\(host) closing connection") }
    static let cannotVerify = LMTPReply(252, "2.5.0", "cannot VRFY, but will take the message and try")
    static let help = LMTPReply(214, "2.0.0", "commands: LHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP")

    static let unknownCommand = LMTPReply(500, "5.5.1", "command not recognized")
    static let notLMTP = LMTPReply(500, "5.5.1", "this is LMTP: greet with LHLO")
    static let lineTooLong = LMTPReply(500, "5.5.2", "line too long")
    static let bareLineFeed = LMTPReply(500, "5.5.2", "bare LF in command: lines end in CRLF")
    static let controlCharacter = LMTPReply(500, "5.5.2", "control character in command")
    static let emptyCommand = LMTPReply(500, "5.5.2", "empty command")

    static let greetFirst = LMTPReply(503, "5.5.1", "send LHLO first")
    static let nestedMail = LMTPReply(503, "5.5.1", "sender already given")
    static let mailFirst = LMTPReply(503, "5.5.1", "send MAIL FROM first")
    static let noRecipients = LMTPReply(503, "5.5.1", "no valid recipients")

    static func syntax(_ usage: String) -> LMTPReply { LMTPReply(501, "5.5.4", "syntax: \(usage)") }
    static let badSender = LMTPReply(501, "5.1.7", "bad sender address syntax")
    static let badRecipient = LMTPReply(501, "5.1.3", "bad recipient address syntax")
    static func notUTF8(_ which: String, _ enhanced: String) -> LMTPReply {
        LMTPReply(501, enhanced, "\(which) address is not valid UTF-8")
    }
    static func controlInAddress(_ which: String, _ enhanced: String) -> LMTPReply {
        LMTPReply(501, enhanced, "control character in \(which) address")
    }
    /// RFC 6531 3.7.4.1's code for a UTF-8 address in a transaction without SMTPUTF8.
    static let needsSMTPUTF8 = LMTPReply(553, "5.6.7", "non-ASCII address without SMTPUTF8 on MAIL FROM")
    static let badParameters = LMTPReply(501, "5.5.4", "malformed parameters")
    static func badValue(_ keyword: String) -> LMTPReply { LMTPReply(501, "5.5.4", "bad \(keyword) value") }
    static func unknownParameter(_ keyword: String) -> LMTPReply {
        LMTPReply(555, "5.5.4", "parameter \(keyword) not supported")
    }

    static func declaredTooBig(_ limit: Int) -> LMTPReply {
        LMTPReply(552, "5.3.4", "message size exceeds the limit of \(limit) bytes")
    }
    static let tooManyRecipients = LMTPReply(452, "4.5.3", "too many recipients")
    static let messageTooBig = LMTPReply(552, "5.3.4", "message too big")
    static let missingReply = LMTPReply(451, "4.3.0", "internal error: no delivery status")
    static let badVerdict = LMTPReply(451, "4.3.0", "internal error: recipient not checked")

    static func tooManyErrors(_ host: String) -> LMTPReply { LMTPReply(421, "4.7.0", "\(host) too many errors") }
    static func tooMuchInput(_ host: String) -> LMTPReply { LMTPReply(421, "4.7.0", "\(host) too much pipelined input") }
    static func timeout(_ host: String) -> LMTPReply { LMTPReply(421, "4.4.2", "\(host) timeout") }
    static func shuttingDown(_ host: String) -> LMTPReply { LMTPReply(421, "4.3.2", "\(host) shutting down") }
}

extension LMTPReply {
    /// A reply the server made, fit for the client: a code of an allowed
    /// class (else `fallback`), an enhanced code of the reply's class.
    func normalized(allowing classes: Set<Int>, fallback: LMTPReply) -> LMTPReply {
        let replyClass = code / 100
        guard (100...599).contains(code), classes.contains(replyClass) else { return fallback }
        var reply = self
        let matchesClass = enhanced.map {
            Self.isWellFormedEnhancedCode($0) && $0.utf8.first == UInt8(ascii: "0") + UInt8(replyClass)
        } ?? false
        if !matchesClass { reply.enhanced = "\(replyClass).0.0" }
        return reply
    }
}
