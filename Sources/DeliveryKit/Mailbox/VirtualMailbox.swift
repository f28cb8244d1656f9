import Notmuch
import SystemPackage
import MaildirKit

/// Virtual mailboxes (postfix `virtual_transport` through pipe(8), as
/// maildrop is used with courier-authlib): one maildir and notmuch database
/// per address, found from a template and the envelope recipient, created
/// on first delivery, by the unprivileged user the MTA runs us as.
enum VirtualMailbox {
    /// `%d`: the recipient's domain, `%u`: its local part without the
    /// `+extension`, `%%`: a percent sign. Both are lower-cased (and, when
    /// UTF-8, in NFC: `AddressText.directoryName`), and must be plain names:
    /// no `/`, no leading `.`, not empty, no control character, valid UTF-8,
    /// at most NAME_MAX bytes in the directory name they go into, and the
    /// whole path short enough for the files a mailbox holds.
    static func path(template: String, recipient: String) throws(DeliveryError) -> String {
        try expand(template: template, recipient: recipient).path
    }

    /// The mailbox's path, and the template's fixed part: the directory
    /// above the first substitution, which everything created must stay in.
    static func expand(template: String, recipient: String) throws(DeliveryError) -> (path: String, base: String) {
        let parts = recipient.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw DeliveryError(.usage, "recipient '\(recipient)' is not of the form user@domain")
        }
        if let problem = AddressText.problem(recipient) {
            throw DeliveryError(.usage, "recipient '\(LogText.oneLine(recipient))' \(problem): it cannot name a mailbox")
        }
        let user = AddressText.directoryName(parts[0].split(separator: "+", maxSplits: 1, omittingEmptySubsequences: false)[0])
        let domain = AddressText.directoryName(parts[1])
        for (what, value) in [("local part", user), ("domain", domain)] {
            if value.isEmpty || value.hasPrefix(".") || value.contains("/") || value.contains("\0") {
                throw DeliveryError(.usage, "recipient '\(recipient)': its \(what) '\(value)' cannot name a mailbox")
            }
        }
        var result = ""
        var base: String?
        // Whether the directory name being built holds a part of the address.
        var substituted = false
        var escaped = false
        for character in template {
            if escaped {
                switch character {
                case "d", "u":
                    if base == nil {
                        let fixed = String(result[..<(result.lastIndex(of: "/") ?? result.startIndex)])
                        base = fixed.isEmpty ? "/" : fixed
                    }
                    result += character == "d" ? domain : user
                    substituted = true
                case "%": result += "%"
                default:
                    throw DeliveryError(.usage, "--mail-root: unknown '%\(character)' (use %d, %u or %%)")
                }
                escaped = false
            } else if character == "%" {
                escaped = true
            } else {
                if character == "/" {
                    try checkLength(of: result, substituted: substituted, recipient: recipient)
                    substituted = false
                }
                result.append(character)
            }
        }
        guard !escaped, result.hasPrefix("/") else {
            throw DeliveryError(.usage, "--mail-root must be an absolute path template, e.g. /srv/vmail/%d/%u")
        }
        try checkLength(of: result, substituted: substituted, recipient: recipient)
        // Room below the mailbox for the longest names written there: a
        // queue entry's (NAME_MAX) in the database folder's queue directory.
        let longestInside = "/\(Database.folderName)/\(PendingQueue.directoryName)/".utf8.count + FileSystem.longestName
        if result.utf8.count + longestInside >= FileSystem.longestPath {
            throw DeliveryError(.noSuchMailbox, "recipient '\(shortened(recipient))': its mailbox path is "
                                + "\(result.utf8.count) bytes; with the files inside it, that exceeds PATH_MAX "
                                + "(\(FileSystem.longestPath) bytes), so it can never be created")
        }
        return (result, base ?? result)
    }

    /// The last directory name of `path` must fit in NAME_MAX: when a part
    /// of the address made it too long, no retry can help (the recipient
    /// is unknown here); when the template alone did, it is a setting to fix.
    private static func checkLength(of path: String, substituted: Bool, recipient: String) throws(DeliveryError) {
        let name = path[(path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex)...]
        guard name.utf8.count > FileSystem.longestName else { return }
        if substituted {
            throw DeliveryError(.noSuchMailbox, "recipient '\(shortened(recipient))' cannot name a mailbox: "
                                + "its directory name would be \(name.utf8.count) bytes, over NAME_MAX (\(FileSystem.longestName))")
        }
        throw DeliveryError.config("--mail-root: the directory name '\(shortened(String(name)))' is over NAME_MAX (\(FileSystem.longestName) bytes)")
    }

    /// Enough of a long value to recognise it in a one-line message.
    static func shortened(_ value: String) -> String {
        value.count > 64 ? value.prefix(64) + "…" : value
    }

    /// Creates what is missing: the directories down to the mailbox (the
    /// template's fixed part must exist), its tmp/new/cur, its database.
    /// Everything is created below `base` without following a symlink that
    /// leads out of it.
    static func prepare(root: String, base: String) throws(DeliveryError) {
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
        let basePath = FilePath(base)
        var below: [String] = []
        var walked = path
        while walked != basePath, walked.starts(with: basePath), let last = walked.lastComponent {
            below.insert(last.string, at: 0)
            walked = walked.directory
        }
        if below.contains("..") || below.contains(".") {
            throw DeliveryError.config("--mail-root: '.' and '..' are not allowed below '\(base)'")
        }
        do {
            var contained = try ContainedDirectories(root: basePath)
            defer { contained.close() }
            let mailbox = try contained.open(below, create: true)
            defer { try? mailbox.close() }
            _ = try Maildir.open(mailbox, at: path, within: &contained, create: true)
        } catch {
            throw DeliveryError(.temporary, "cannot create the mailbox '\(root)': \(error)")
        }
        // The database folder may exist already, holding the mailbox's rules.
        guard !Database.exists(databasePath: root) else { return }
        do {
            let database = try Database.create(config: .none, databasePath: root)
            try database.close()
        } catch Status.databaseExists {
            // Another first delivery to the same mailbox made it: fine.
        } catch {
            throw DeliveryError(.temporary, "cannot create the notmuch database in '\(root)': \(error)")
        }
    }

    /// The mailboxes `template` has made so far: every directory its `%d`
    /// and `%u` can name that holds a notmuch database.
    static func existing(template: String) -> [String] {
        var pattern = ""
        var escaped = false
        for character in template {
            if escaped {
                pattern += character == "%" ? "%" : "*"
                escaped = false
            } else if character == "%" {
                escaped = true
            } else {
                if "*?[\\".contains(character) { pattern += "\\" }
                pattern.append(character)
            }
        }
        return FileSystem.directories(matching: pattern).filter { Database.exists(databasePath: $0) }
    }

    /// Whether the mailbox at `root` has been made (its folder and database).
    static func exists(root: String) -> Bool {
        FileSystem.kind(of: FilePath(root)) == .directory && Database.exists(databasePath: root)
    }

    /// pipe(8) passes no HOME, and libnotmuch derives default paths from
    /// it even with no config file; the mailbox is the natural home.
    static func becomeHome(_ root: String) {
        if ProcessEnvironment.value(of: "HOME") == nil { ProcessEnvironment.set("HOME", to: root) }
    }
}
