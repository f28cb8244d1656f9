import Logging
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
}
