import Logging
import Threads
import MailParsing
import MaildirKit
import SystemPackage

/// Sends swift-log records to syslog (facility mail), where an MTA's
/// administrator looks; an MDA's stderr is not a place to leave notes on success.
struct SyslogLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    init() {}

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let priority: SystemLog.Priority
        switch event.level {
        case .trace, .debug: priority = .debug
        case .info: priority = .info
        case .notice: priority = .notice
        case .warning: priority = .warning
        case .error: priority = .error
        case .critical: priority = .critical
        }
        SystemLog.write(priority, LogText.oneLine("\(event.message)"))
    }
}

/// Appends each record as one line to a file (`--log FILE`), opened once
/// with O_APPEND so concurrent deliveries never interleave within a line.
struct FileLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    private let fd: FileDescriptor

    init?(path: String) {
        guard let fd = FileSystem.openForAppending(path) else { return nil }
        self.fd = fd
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let stamp = Timestamp.iso8601(WallClock.seconds)
        let line = "\(stamp) notmuch-deliver[\(ProcessEnvironment.processID)] \(event.level): \(LogText.oneLine("\(event.message)"))\n"
        FileSystem.append(line, to: fd)
    }
}

/// Log text is read by people and by scripts that split on newlines, and
/// much of it comes from mail (a Subject, an address, a Message-ID): a
/// sender must not be able to end a record and start a forged one, or send
/// escape sequences to the terminal of whoever reads the log. Every handler
/// passes its text through here, so no call site has to remember to.
public enum LogText {
    /// The text with every control character (C0 incl. CR and LF, DEL, C1
    /// incl. NEL, and the Unicode line and paragraph separators) written as
    /// `\xHH` or `\u{HHHH}`. Invalid UTF-8 cannot reach here: a Swift String
    /// holds U+FFFD in its place. Backslashes stay as they are, so ordinary
    /// text reads as before; an escape only ever makes a line, not breaks one.
    public static func oneLine(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var result = ""
        for scalar in text.unicodeScalars {
            if needsEscape(scalar) {
                result += scalar.value < 0x100 ? "\\x" + hex(scalar.value, width: 2) : "\\u{" + hex(scalar.value, width: 4) + "}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        return value < 0x20 || (0x7F...0x9F).contains(value) || value == 0x2028 || value == 0x2029
    }

    private static func hex(_ value: UInt32, width: Int) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

/// swift-log's stderr handler writes the message as it is: this one hands
/// it the escaped text, and escaped metadata, so `-v` output is one line
/// per record like the log itself.
struct OneLineLogHandler: LogHandler {
    private var inner: any LogHandler

    init(_ inner: any LogHandler) { self.inner = inner }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        event.message = "\(LogText.oneLine("\(event.message)"))"
        event.metadata = event.metadata?.mapValues { .string(LogText.oneLine("\($0)")) }
        inner.log(event: event)
    }
}

enum Timestamp {
    /// `seconds` since the epoch in ISO 8601, UTC (`2026-01-01T00:00:00Z`), without Foundation.
    static func iso8601(_ seconds: Int) -> String {
        WallClock.utc(seconds, format: "%Y-%m-%dT%H:%M:%SZ")
    }
}

public enum DeliveryLog {
    /// Syslog, or the file `logFile`; stderr too when `verbose`.
    public static func bootstrap(verbose: Bool, logFile: String? = nil) {
        LoggingSystem.bootstrap { label in
            var handlers: [LogHandler] = []
            if let logFile, let file = FileLogHandler(path: logFile) {
                handlers.append(file)
            } else {
                handlers.append(SyslogLogHandler())
            }
            if verbose { handlers.append(OneLineLogHandler(StreamLogHandler.standardError(label: label))) }
            return MultiplexLogHandler(handlers)
        }
    }

    static let logger = Logger(label: "notmuch-deliver")

    /// A server's own events: started, stopping.
    public static func notice(_ text: String) {
        logger.notice("\(text)")
    }

    /// The one line every delivery leaves: what, from whom, where, which
    /// tags, how it ended, how long it took.
    /// `session`: the server's session and recipient, before the rest.
    public static func delivery(_ report: DeliveryReport, mailRoot: String?, milliseconds: Double,
                                session: String? = nil) {
        var from = report.from, subject = report.subject
        if from == nil && subject == nil && report.outcome != .discarded {
            let headers = MessageHeaders.read(fromFile: report.path)
            from = headers.values("From").first
            subject = headers.values("Subject").first
        }
        // The maildir folder: the path less "/new/NAME" or "/cur/NAME".
        var folder = Substring(report.path)
        for _ in 0..<2 { folder = folder[..<(folder.lastIndex(of: "/") ?? folder.startIndex)] }
        if let root = mailRoot, folder.hasPrefix(root) {
            folder = folder.dropFirst(root.count).drop { $0 == "/" }
        }
        logger.info("""
            \(session.map { $0 + " " } ?? "")delivered id=<\(report.messageID ?? "?")> from=\(quoted(from)) subject=\(quoted(subject)) \
            folder=\(folder.isEmpty ? "/" : String(folder)) tags=\(commaSeparated(report.tags)) \
            outcome=\(report.outcome.rawValue) ms=\(Int(milliseconds.rounded()))
            """)
    }

    public static func failure(_ error: DeliveryError, milliseconds: Double, session: String? = nil) {
        let outcome = error.exitStatus == .temporaryFailure ? "deferred" : "refused"
        logger.error("\(session.map { $0 + " " } ?? "")failed outcome=\(outcome) status=\(error.exitStatus.rawValue) ms=\(Int(milliseconds.rounded())) reason=\(error.message)")
    }

    /// `joined(separator:)`, whose unspecialized first call costs a process
    /// a runtime conformance lookup.
    private static func commaSeparated(_ items: [String]) -> String {
        var text = ""
        for item in items {
            if !text.isEmpty { text += "," }
            text += item
        }
        return text
    }

    private static func quoted(_ value: String?) -> String {
        guard let value else { return "-" }
        return "\"" + String(value.prefix(120)).replacingAll("\"", with: "'") + "\""
    }
}
