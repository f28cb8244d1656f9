/// sysexits(3) codes, the language MTAs speak: postfix defers on 75 and
/// bounces on every other non-zero status.
public enum ExitStatus: Int32, Sendable {
    case success = 0
    case usage = 64
    case dataError = 65
    /// EX_NOUSER: pipe(8) bounces it as "user unknown" (5.1.1).
    case noUser = 67
    case temporaryFailure = 75
    /// EX_NOPERM: a permanent over-quota refusal, as maildrop's
    /// deliverquota exits; pipe(8) bounces it.
    case noPermission = 77
}
