import Notmuch
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Virtual mailboxes (postfix `virtual_transport` through pipe(8), as
/// maildrop is used with courier-authlib): one maildir and notmuch database
/// per address, found from a template and the envelope recipient, created
/// on first delivery, by the unprivileged user the MTA runs us as.
public enum VirtualMailbox {
    /// `%d`: the recipient's domain, `%u`: its local part without the
    /// `+extension`, `%%`: a percent sign. Both are lower-cased, and must
    /// be plain names: no `/`, no leading `.`, not empty.
    public static func path(template: String, recipient: String) throws(DeliveryError) -> String {
        let parts = recipient.lowercased().split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw DeliveryError(.usage, "recipient '\(recipient)' is not of the form user@domain")
        }
        let user = String(parts[0].split(separator: "+", maxSplits: 1, omittingEmptySubsequences: false)[0])
        let domain = String(parts[1])
        for (what, value) in [("local part", user), ("domain", domain)] {
            if value.isEmpty || value.hasPrefix(".") || value.contains("/") || value.contains("\0") {
                throw DeliveryError(.usage, "recipient '\(recipient)': its \(what) '\(value)' cannot name a mailbox")
            }
        }
        var result = ""
        var escaped = false
        for character in template {
            if escaped {
                switch character {
                case "d": result += domain
                case "u": result += user
                case "%": result += "%"
                default:
                    throw DeliveryError(.usage, "--mail-root: unknown '%\(character)' (use %d, %u or %%)")
                }
                escaped = false
            } else if character == "%" {
                escaped = true
            } else {
                result.append(character)
            }
        }
        guard !escaped, result.hasPrefix("/") else {
            throw DeliveryError(.usage, "--mail-root must be an absolute path template, e.g. /srv/vmail/%d/%u")
        }
        return result
    }

    /// Creates what is missing: the directories down to the mailbox (the
    /// template's fixed part must exist), its tmp/new/cur, its database.
    static func prepare(root: String) throws(DeliveryError) {
        let path = FilePath(root)
        var missing: [FilePath] = []
        var current = path
        while FileSystem.kind(of: current) == .missing, !current.isEmpty, current != "/" {
            missing.insert(current, at: 0)
            current = current.directory
        }
        if missing.count > 2 {
            throw DeliveryError.config("'\(current)' has no folder for the domain and the user to go in: "
                                       + "only the last two levels of --mail-root are created")
        }
        do {
            for directory in missing { try FileSystem.makeDirectory(directory, mode: 0o700) }
            try Maildir(path).create()
        } catch {
            throw DeliveryError(.temporary, "cannot create the mailbox '\(root)': \(error)")
        }
        // .notmuch/ may exist already, holding the mailbox's rules.
        guard FileSystem.kind(of: path.appending(".notmuch").appending("xapian")) == .missing else { return }
        do {
            let database = try Database.create(config: .none, databasePath: root)
            try database.close()
        } catch let error where error.status == .databaseExists {
            // Another first delivery to the same mailbox made it: fine.
        } catch {
            throw DeliveryError(.temporary, "cannot create the notmuch database in '\(root)': \(error)")
        }
    }

    /// Points the options at the recipient's mailbox, creating it if needed.
    static func select(_ options: inout DeliveryOptions) throws(DeliveryError) {
        guard let template = options.mailRootTemplate else { return }
        guard let recipient = options.envelope.recipient else {
            throw DeliveryError(.usage, "--mail-root needs the recipient: pass --recipient ADDR (pipe's ${recipient}) or set RECIPIENT")
        }
        let root = try path(template: template, recipient: recipient)
        // pipe(8) passes no HOME, and libnotmuch derives default paths from
        // it even with no config file; the mailbox is the natural home.
        if getenv("HOME") == nil { setenv("HOME", root, 1) }
        try prepare(root: root)
        options.config = .none
        options.profile = nil
        options.databasePath = root
    }
}
