internal import CPosix
#if canImport(Glibc)
import Glibc
#endif

/// syslog(3), facility mail, each line tagged with the program's name and pid.
package enum SystemLog {
    package enum Priority {
        case debug, info, notice, warning, error, critical

        var value: Int32 {
            switch self {
            case .debug: return LOG_DEBUG
            case .info: return LOG_INFO
            case .notice: return LOG_NOTICE
            case .warning: return LOG_WARNING
            case .error: return LOG_ERR
            case .critical: return LOG_CRIT
            }
        }
    }

    // openlog keeps the ident pointer, so it must never be freed.
    private static let opened: Void = { openlog(strdup("notmuch-deliver"), LOG_PID, LOG_MAIL) }()

    package static func write(_ priority: Priority, _ text: String) {
        opened
        text.withCString { cposix_syslog(priority.value, $0) }
    }
}

/// What glibc's allocator keeps of this process's memory.
package enum ProcessMemory {
    /// Gives the free pages of every arena back to the system (malloc_trim).
    package static func giveBackFreePages() {
        cposix_malloc_trim()
    }
}
