/// sysexits(3) codes, the language MTAs speak: postfix defers on 75 and
/// bounces on every other non-zero status.
public enum ExitStatus: Int32, Sendable {
    case success = 0
    case usage = 64
    case dataError = 65
    case temporaryFailure = 75
}
