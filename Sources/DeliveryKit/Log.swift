import Logging
import MailParsing
#if canImport(Glibc)
import Glibc
#endif

/// Sends swift-log records to syslog (facility mail), where an MTA's
/// administrator looks; an MDA's stderr is not a place to leave notes on success.
public struct SyslogLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info

    public init() {
        Self.opened
    }

    // openlog keeps the ident pointer, so it must never be freed.
    private static let opened: Void = { openlog(strdup("notmuch-deliver"), LOG_PID, LOG_MAIL) }()

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let priority: Int32
        switch event.level {
        case .trace, .debug: priority = LOG_DEBUG
        case .info: priority = LOG_INFO
        case .notice: priority = LOG_NOTICE
        case .warning: priority = LOG_WARNING
        case .error: priority = LOG_ERR
        case .critical: priority = LOG_CRIT
        }
        let text = "\(event.message)"
        text.withCString { cText in withVaList([cText]) { vsyslog(priority, "%s", $0) } }
    }
}

public enum DeliveryLog {
    /// Syslog always; stderr too when `verbose`.
    public static func bootstrap(verbose: Bool) {
        LoggingSystem.bootstrap { label in
            var handlers: [LogHandler] = [SyslogLogHandler()]
            if verbose { handlers.append(StreamLogHandler.standardError(label: label)) }
            return MultiplexLogHandler(handlers)
        }
    }

    static let logger = Logger(label: "notmuch-deliver")

    /// The one line every delivery leaves: what, from whom, where, which
    /// tags, how it ended, how long it took.
    public static func delivery(_ report: DeliveryReport, mailRoot: String?, milliseconds: Double) {
        var from = report.from, subject = report.subject
        if from == nil && subject == nil && !report.discarded {
            let headers = MessageHeaders.read(fromFile: report.path)
            from = headers.values("From").first
            subject = headers.values("Subject").first
        }
        var folder = String(report.path.split(separator: "/").dropLast(2).joined(separator: "/"))
        if let root = mailRoot, ("/" + folder).hasPrefix(root) {
            folder = String(("/" + folder).dropFirst(root.count).drop { $0 == "/" })
        }
        let outcome = report.discarded ? "discarded" : report.queued ? "queued"
            : !report.indexed ? "kept-unindexed" : report.duplicate ? "duplicate" : "indexed"
        logger.info("""
            delivered id=<\(report.messageID ?? "?")> from=\(quoted(from)) subject=\(quoted(subject)) \
            folder=\(folder.isEmpty ? "/" : folder) tags=\(report.tags.joined(separator: ",")) \
            outcome=\(outcome) ms=\(Int(milliseconds.rounded()))
            """)
    }

    public static func failure(_ error: DeliveryError, milliseconds: Double) {
        let outcome = error.exitStatus == .temporaryFailure ? "deferred" : "refused"
        logger.error("failed outcome=\(outcome) status=\(error.exitStatus.rawValue) ms=\(Int(milliseconds.rounded())) reason=\(error.message)")
    }

    private static func quoted(_ value: String?) -> String {
        guard let value else { return "-" }
        return "\"" + String(value.prefix(120)).replacingAll("\"", with: "'") + "\""
    }
}
