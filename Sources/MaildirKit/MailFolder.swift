import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Turns a folder name into a maildir under the mail root, and refuses
/// anything that would put mail elsewhere. The one gate for every folder a
/// delivery writes to, whatever named it: the command line, a rule, a
/// Sieve script, an import.
package enum MailFolder {
    /// Names that are never a folder at any level: the database's own
    /// directory (which `notmuch new` skips, and where the queue and the
    /// quota warning's state live), and a maildir's own subdirectories
    /// (mail under tmp/ is invisible, and a maildir inside new/ or cur/
    /// would be read as messages). The quota skips the same names, so what
    /// it counts is what a delivery may write.
    package static let reservedNames: Set<String> = [databaseFolderName, "tmp", "new", "cur"]

    /// The notmuch database's folder in a mail root. Notmuch owns the name
    /// (`Database.folderName`); this target keeps its own copy because a
    /// maildir library must not depend on the database, and a test
    /// (DatabaseFolderNameTests) holds the two equal.
    package static let databaseFolderName = ".notmuch"

    /// The most levels a folder may have: as deep as the quota counts
    /// (MaildirQuota), so that no folder holds mail it does not see.
    package static let maximumDepth = 63

    /// Checks the name alone: relative, no `..`, no empty or NUL parts, no
    /// reserved part, and not the database's folder (`database`: its path
    /// relative to the mail root, as components, when it is inside it).
    /// Returns the normalised components ("" or nil: the root itself).
    package static func components(of name: String?, database: [String] = []) throws(FolderError) -> [String] {
        let parts = try checkedComponents(of: name)
        if let reserved = parts.first(where: { reservedNames.contains($0) }) {
            throw FolderError(.refusedName, "folder '\(name ?? "")' has a part '\(reserved)', which is reserved "
                                + "(the database's \(databaseFolderName), or a maildir's tmp, new or cur); choose another folder")
        }
        if !database.isEmpty, parts.starts(with: database) {
            throw FolderError(.refusedName, "folder '\(name ?? "")' is inside the notmuch database's folder "
                                + "'\(database.joined(separator: "/"))'; choose another folder")
        }
        return parts
    }

    /// The database's folder relative to the mail root, as components, when
    /// it is inside it (e.g. `database.path = ~/mail/db` with the mail root
    /// `~/mail`: `["db"]`); empty otherwise. Compared after resolving
    /// symlinks, as the file system would.
    package static func databaseComponents(root: String, databaseFolder: String) -> [String] {
        func real(_ path: String) -> String? { FileSystem.realPath(FilePath(path))?.string }
        // A database not made yet: its nearest existing parent, resolved, and the rest as written.
        func realOrNearest(_ path: String) -> String? {
            var head = FilePath(path).lexicallyNormalized()
            var tail: [String] = []
            while true {
                if let resolved = real(head.string) {
                    return ([resolved == "/" ? "" : resolved] + tail.reversed()).joined(separator: "/")
                }
                guard let last = head.lastComponent, head.removeLastComponent() else { return nil }
                tail.append(last.string)
            }
        }
        guard let root = real(root), let folder = realOrNearest(databaseFolder) else { return [] }
        let prefix = root.hasSuffix("/") ? root : root + "/"
        guard folder.hasPrefix(prefix) else { return [] }
        return folder.dropFirst(prefix.count).split(separator: "/").map(String.init)
    }

    private static func checkedComponents(of name: String?) throws(FolderError) -> [String] {
        guard let name, !name.isEmpty else { return [] }
        if name.hasPrefix("/") {
            throw FolderError(.refusedName, "folder '\(name)' is absolute; give a folder relative to the mail root")
        }
        var parts: [String] = []
        for part in name.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                throw FolderError(.refusedName, "folder '\(name)' contains '..'; give a folder inside the mail root")
            }
            if part.contains("\0") {
                throw FolderError(.refusedName, "folder '\(name)' contains a NUL byte")
            }
            if part.utf8.count > Int(NAME_MAX) {
                throw FolderError(.refusedName, "folder '\(name.prefix(64))…' has a component of \(part.utf8.count) bytes, "
                                    + "over NAME_MAX (\(NAME_MAX)); no directory can have that name")
            }
            parts.append(String(part))
        }
        if parts.count > maximumDepth {
            throw FolderError(.refusedName, "folder '\(name.prefix(64))…' has \(parts.count) levels, more than \(maximumDepth)")
        }
        return parts
    }

    /// Where the folder really is, once the symlinks inside the root that
    /// the opening followed are resolved, through the same check: a link
    /// (`box` into the database's folder, say) must not lead a delivery into the
    /// database or a maildir's tmp/.
    private static func checkWhereItLeads(_ folder: FileDescriptor, named name: String, root: FilePath,
                                          database: [String]) throws(FolderError) {
        guard let realRoot = FileSystem.realPath(root),
              let realFolder = FileSystem.realPath(FilePath("/proc/self/fd/\(folder.rawValue)")),
              realFolder.starts(with: realRoot), realFolder != realRoot else { return }
        let relative = realFolder.components.dropFirst(realRoot.components.count).map(\.string).joined(separator: "/")
        do { _ = try components(of: relative, database: database) } catch {
            throw FolderError(.refusedName, "folder '\(name)' leads to '\(relative)': \(error.message)")
        }
    }

    /// The maildir for `name` under `root`, created when `create` is set.
    /// The root's own tmp/new/cur are created when missing: it is where the
    /// user's configuration says mail goes.
    ///
    /// Every directory on the way, tmp/, new/ and cur/ included, is opened
    /// below the one before without following symlinks, unless the link
    /// resolves inside the root; the Maildir keeps tmp/, new/ and cur/ open.
    /// The root itself may be a symlink.
    /// `worldReadable`: directories it creates are 0755 (less the umask)
    /// instead of 0700, as with `notmuch insert --world-readable`.
    /// `databaseFolder`: `database.path` (the database's own folder, or the
    /// one holding its `.notmuch`), which no folder may be or be inside
    /// unless it is the root itself; nil when it is not known.
    package static func resolve(root: String, name: String?, create: Bool, databaseFolder: String?,
                                worldReadable: Bool = false) throws(FolderError) -> Maildir {
        let database = databaseFolder.map { databaseComponents(root: root, databaseFolder: $0) } ?? []
        let parts = try components(of: name, database: database)
        let rootPath = FilePath(root)
        var contained: ContainedDirectories
        do { contained = try ContainedDirectories(root: rootPath) } catch {
            throw FolderError(.badMailRoot, "mail root '\(root)' (database.mail_root) is not a directory (\(error))")
        }
        defer { contained.close() }
        if worldReadable { contained.creationMode = 0o755 }
        var path = rootPath
        for part in parts { path.append(part) }
        // Room for the longest name written below: tmp/, new/ or cur/, and
        // a file name of up to NAME_MAX.
        if !parts.isEmpty, path.string.utf8.count + 5 + Int(NAME_MAX) >= Int(PATH_MAX) {
            throw FolderError(.refusedName, "folder '\(name?.prefix(64) ?? "")…' makes a path of \(path.string.utf8.count) "
                                + "bytes; with the files inside it, that exceeds PATH_MAX (\(PATH_MAX))")
        }

        let folder: FileDescriptor
        do {
            folder = parts.isEmpty ? contained.rootDescriptor : try contained.open(parts, create: create)
        } catch {
            switch error {
            case .outside(_, let resolved, let realRoot):
                throw FolderError(.refusedName, "folder '\(name ?? "")' resolves to '\(resolved)', outside the mail root '\(realRoot)'")
            case .missing:
                throw FolderError(.unavailable, "folder '\(name ?? "")' does not exist under '\(root)'; create it or pass --create-folder")
            case .notADirectory:
                throw FolderError(.unavailable, "folder '\(path)' is not a maildir (no tmp/, new/ and cur/); create them or pass --create-folder")
            case .failed, .symlink:
                throw FolderError(.unavailable, "cannot create maildir '\(path)': \(error)")
            }
        }
        defer { if !parts.isEmpty { try? folder.close() } }
        if !parts.isEmpty { try checkWhereItLeads(folder, named: name ?? "", root: rootPath, database: database) }
        do {
            return try Maildir.open(folder, at: path, within: &contained, create: create || parts.isEmpty)
        } catch {
            switch error {
            case .outside, .symlink:
                throw FolderError(.unavailable, "maildir '\(path)' cannot take mail: \(error)")
            case .missing, .notADirectory:
                throw FolderError(.unavailable, "folder '\(path)' is not a maildir (no tmp/, new/ and cur/); create them or pass --create-folder")
            case .failed:
                throw FolderError(.unavailable, "cannot create maildir '\(path)': \(error)")
            }
        }
    }
}

/// Why the folder gate refused a folder, in one line, and whether trying
/// again can help: MaildirKit's own outcome, which a delivery maps to its
/// (DeliveryKit's DeliveryError).
package struct FolderError: Error, CustomStringConvertible, Sendable {
    package enum Kind: Sendable {
        /// The name itself is refused (absolute, `..`, reserved, too long,
        /// leading outside the root): retrying cannot help.
        case refusedName
        /// The mail root is not a directory: the configuration is wrong.
        case badMailRoot
        /// The folder is missing, or cannot be opened or made now: may pass.
        case unavailable
    }

    package let kind: Kind
    package let message: String

    package init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    package var description: String { message }
}
