import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Turns a `--folder` argument into a maildir under the mail root, and
/// refuses anything that would put mail elsewhere.
package enum MailFolder {
    /// Checks the name alone: relative, no `..`, no empty or NUL parts.
    /// Returns the normalised components ("" or nil: the root itself).
    package static func components(of name: String?) throws(DeliveryError) -> [String] {
        guard let name, !name.isEmpty else { return [] }
        if name.hasPrefix("/") {
            throw DeliveryError(.usage, "folder '\(name)' is absolute; give a folder relative to the mail root")
        }
        var parts: [String] = []
        for part in name.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                throw DeliveryError(.usage, "folder '\(name)' contains '..'; give a folder inside the mail root")
            }
            if part.contains("\0") {
                throw DeliveryError(.usage, "folder '\(name)' contains a NUL byte")
            }
            if part.utf8.count > Int(NAME_MAX) {
                throw DeliveryError(.usage, "folder '\(name.prefix(64))…' has a component of \(part.utf8.count) bytes, "
                                    + "over NAME_MAX (\(NAME_MAX)); no directory can have that name")
            }
            parts.append(String(part))
        }
        return parts
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
    package static func resolve(root: String, name: String?, create: Bool,
                                worldReadable: Bool = false) throws(DeliveryError) -> Maildir {
        let parts = try components(of: name)
        let rootPath = FilePath(root)
        var contained: ContainedDirectories
        do { contained = try ContainedDirectories(root: rootPath) } catch {
            throw DeliveryError.config("mail root '\(root)' (database.mail_root) is not a directory (\(error))")
        }
        defer { contained.close() }
        if worldReadable { contained.creationMode = 0o755 }
        var path = rootPath
        for part in parts { path.append(part) }
        // Room for the longest name written below: tmp/, new/ or cur/, and
        // a file name of up to NAME_MAX.
        if !parts.isEmpty, path.string.utf8.count + 5 + Int(NAME_MAX) >= Int(PATH_MAX) {
            throw DeliveryError(.usage, "folder '\(name?.prefix(64) ?? "")…' makes a path of \(path.string.utf8.count) "
                                + "bytes; with the files inside it, that exceeds PATH_MAX (\(PATH_MAX))")
        }

        let folder: FileDescriptor
        do {
            folder = parts.isEmpty ? contained.rootDescriptor : try contained.open(parts, create: create)
        } catch {
            switch error {
            case .outside(_, let resolved, let realRoot):
                throw DeliveryError(.usage, "folder '\(name ?? "")' resolves to '\(resolved)', outside the mail root '\(realRoot)'")
            case .missing:
                throw DeliveryError(.temporary, "folder '\(name ?? "")' does not exist under '\(root)'; create it or pass --create-folder")
            case .notADirectory:
                throw DeliveryError(.temporary, "folder '\(path)' is not a maildir (no tmp/, new/ and cur/); create them or pass --create-folder")
            case .failed, .symlink:
                throw DeliveryError(.temporary, "cannot create maildir '\(path)': \(error)")
            }
        }
        defer { if !parts.isEmpty { try? folder.close() } }
        do {
            return try Maildir.open(folder, at: path, within: &contained, create: create || parts.isEmpty)
        } catch {
            switch error {
            case .outside, .symlink:
                throw DeliveryError(.temporary, "maildir '\(path)' cannot take mail: \(error)")
            case .missing, .notADirectory:
                throw DeliveryError(.temporary, "folder '\(path)' is not a maildir (no tmp/, new/ and cur/); create them or pass --create-folder")
            case .failed:
                throw DeliveryError(.temporary, "cannot create maildir '\(path)': \(error)")
            }
        }
    }
}
