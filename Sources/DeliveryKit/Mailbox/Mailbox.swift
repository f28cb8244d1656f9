import Notmuch
import SystemPackage
import MaildirKit

/// Where a mailbox's configuration and database are: the notmuch config
/// (and profile) of the user, or a virtual mailbox's own database with no
/// config file at all.
struct MailboxLocation: Sendable, Equatable {
    let config: ConfigSource
    let profile: String?
    /// A virtual mailbox's root, which is also its database path; nil: the
    /// config's.
    let root: String?

    /// What a server counts and caches mailboxes by.
    var key: String {
        let config: String
        switch self.config {
        case .search: config = "search"
        case .file(let path): config = "file:" + path
        case .none: config = "none"
        }
        return [config, profile ?? "", root ?? ""].joined(separator: "\0")
    }

    func openDatabase() throws(NotmuchError) -> Database {
        try Database.open(mode: .readWrite, config: config, profile: profile, databasePath: root)
    }
}

/// One mailbox, found once: its settings (read from its configuration),
/// its rules and Sieve script, its quota, its queue and its database's
/// location. A front door that serves many messages keeps it (see
/// `Mailboxes`); nothing else reads settings.
public final class Mailbox: Sendable {
    let location: MailboxLocation
    let settings: DeliverySettings
    let queue: PendingQueue

    init(location: MailboxLocation, settings: DeliverySettings) {
        self.location = location
        self.settings = settings
        queue = PendingQueue(databasePath: settings.databasePath)
    }

    public var mailRoot: String { settings.mailRoot }

    /// The whole mail root is the mailbox a quota covers.
    var quota: MaildirQuota { MaildirQuota(root: FilePath(settings.mailRoot)) }

    /// Applies this mailbox's queue.
    var applier: QueueApplier { QueueApplier(mailbox: self) }

    func openDatabase() throws(NotmuchError) -> Database {
        try location.openDatabase()
    }

    /// The folder a message's filing names, through the one gate for
    /// folder names (see `DeliverySettings.maildir`).
    func maildir(for filing: Filing) throws(DeliveryError) -> Maildir {
        try settings.maildir(filing.folder, create: filing.createFolder, worldReadable: filing.worldReadable)
    }
}
