import Notmuch
import MaildirKit
import Synchronization
import Threads

/// A server's settings per mailbox, read again at most a second after the
/// last reading: loading the notmuch configuration opens the database
/// (twice, in libnotmuch 5.6), which cost a delivery more than its fsyncs.
/// An edit to the configuration or the rules applies within the second.
final class SettingsCache: Sendable {
    static let maximumAge = 1.0

    private struct Entry {
        let settings: DeliverySettings
        let loaded: Double
    }

    private let entries = Mutex<[String: Entry]>([:])

    func settings(for options: DeliveryOptions, rulesCache: RulesCache) throws(DeliveryError) -> DeliverySettings {
        let key = Self.key(options)
        let now = Monotonic.seconds
        if let entry = entries.withLock({ $0[key] }), now - entry.loaded < Self.maximumAge { return entry.settings }
        let settings = try DeliverySettings(options: options, rulesCache: rulesCache)
        entries.withLock { $0[key] = Entry(settings: settings, loaded: now) }
        return settings
    }

    /// Forgets every mailbox's settings (SIGHUP): the next delivery reads them.
    func clear() {
        entries.withLock { $0.removeAll() }
    }

    /// Everything the settings are read from: the mailbox a virtual
    /// recipient selected, and the rules and script a delivery asks for (a
    /// quota warning asks for none, the user's mail for the configured ones).
    private static func key(_ options: DeliveryOptions) -> String {
        let config: String
        switch options.config {
        case .search: config = "search"
        case .file(let path): config = "file:" + path
        case .none: config = "none"
        }
        return [config, options.profile ?? "", options.databasePath ?? "",
                describe(options.rules), describe(options.sieve)].joined(separator: "\0")
    }

    private static func describe(_ source: RulesSource) -> String {
        switch source {
        case .configured: "configured"
        case .file(let path): "file:" + path
        case .none: "none"
        }
    }
}
