import MailParsing
import MaildirKit
import SystemPackage

/// "Is this mail?", asked once of every message a front door stores: the
/// size limits (`MessageLimits`), then GMime's verdict, with From and
/// Subject for the log line from the same parse.
enum MailCheck {
    /// Refuses a file libnotmuch would not index, before anything is
    /// reported: the answer must not depend on whether the database was
    /// free (a queued non-email would otherwise get 0, and the same message
    /// 65 a moment later).
    static func rejection(_ file: FilePath) -> DeliveryError? {
        var unused: MessageHeaders?
        return rejection(file, headers: &unused)
    }

    /// `headers`: set to the message's From and Subject, for the log line.
    static func rejection(_ file: FilePath, headers: inout MessageHeaders?) -> DeliveryError? {
        let (verdict, found) = inspection(file, logHeaders: true)
        headers = found
        switch verdict {
        case .email:
            return nil
        case .notEmail:
            return DeliveryError(.notAMessage, "the input is not an email message (no From, Subject or To header)")
        case .overLimit(let excess):
            return tooBig(excess)
        case .unreadable(let code):
            return DeliveryError(.temporary, "cannot read back '\(file)': \(Errno(rawValue: code))")
        }
    }

    /// GMime's verdict, once the message is known to be within
    /// `MessageLimits`; parsing a costly one waits its turn.
    static func verdict(_ file: FilePath) -> EmailCheck.Verdict {
        inspection(file, logHeaders: false).verdict
    }

    /// The same, and for mail, when `logHeaders`, its From and Subject
    /// for the log line (from the same parse).
    static func inspection(_ file: FilePath, logHeaders: Bool) -> (verdict: EmailCheck.Verdict, headers: MessageHeaders?) {
        func check(limits: Bool) -> (verdict: EmailCheck.Verdict, headers: MessageHeaders?) {
            logHeaders ? EmailCheck.verdictAndLogHeaders(forFile: file.string, checkingLimits: limits)
                : (EmailCheck.verdict(forFile: file.string, checkingLimits: limits), nil)
        }
        guard let scan = MessageLimits.scan(ofFile: file.string) else { return check(limits: true) }
        if let excess = scan.excess { return (.overLimit(excess), nil) }
        return CostlyMessageGate.shared.admitting(cost: scan.parsingCost) { check(limits: false) }
    }

    /// A permanent refusal (exit 65, LMTP 552 5.3.4): the same message
    /// would be refused again.
    static func tooBig(_ excess: MessageLimits.Excess) -> DeliveryError {
        var error = DeliveryError(.notAMessage, "\(excess) (a limit that bounds the memory a message may cost)")
        error.isTooBig = true
        return error
    }
}
