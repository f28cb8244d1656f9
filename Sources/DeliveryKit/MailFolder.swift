import SystemPackage

/// Turns a `--folder` argument into a maildir under the mail root, and
/// refuses anything that would put mail elsewhere.
public enum MailFolder {
    /// Checks the name alone: relative, no `..`, no empty or NUL parts.
    /// Returns the normalised components ("" or nil: the root itself).
    public static func components(of name: String?) throws(DeliveryError) -> [String] {
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
            parts.append(String(part))
        }
        return parts
    }

    /// The maildir for `name` under `root`, created when `create` is set.
    /// The root's own tmp/new/cur are created when missing: it is where the
    /// user's configuration says mail goes.
    public static func resolve(root: String, name: String?, create: Bool) throws(DeliveryError) -> Maildir {
        let parts = try components(of: name)
        let rootPath = FilePath(root)
        guard FileSystem.kind(of: rootPath) == .directory else {
            throw DeliveryError.config("mail root '\(root)' (database.mail_root) is not a directory")
        }
        var path = rootPath
        for part in parts { path.append(part) }
        let maildir = Maildir(path)

        // Every existing ancestor must resolve inside the root: a symlink
        // must not lead mail out of it.
        if !parts.isEmpty, let realRoot = FileSystem.realPath(rootPath) {
            var prefix = rootPath
            for part in parts {
                prefix.append(part)
                guard let real = FileSystem.realPath(prefix) else { break }
                if !(real == realRoot || real.starts(with: realRoot)) {
                    throw DeliveryError(.usage, "folder '\(name ?? "")' resolves to '\(real)', outside the mail root '\(realRoot)'")
                }
            }
        }

        if maildir.exists { return maildir }
        if !parts.isEmpty && !create {
            if FileSystem.kind(of: path) == .missing {
                throw DeliveryError(.temporary, "folder '\(name ?? "")' does not exist under '\(root)'; create it or pass --create-folder")
            }
            throw DeliveryError(.temporary, "folder '\(path)' is not a maildir (no tmp/, new/ and cur/); create them or pass --create-folder")
        }
        do {
            var current = rootPath
            for part in parts {
                current.append(part)
                if FileSystem.kind(of: current) == .missing { try FileSystem.makeDirectory(current, mode: 0o700) }
            }
            try maildir.create()
        } catch {
            throw DeliveryError(.temporary, "cannot create maildir '\(path)': \(error)")
        }
        return maildir
    }
}
