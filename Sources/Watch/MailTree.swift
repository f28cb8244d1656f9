import Notmuch
import MaildirKit

/// The mail root and what under it is never mail: `new.ignore`, every
/// `.notmuch` folder, and the database's own folder when it lies inside.
public struct MailTree {
    /// Absolute, without a trailing slash.
    public let root: String
    let ignore: IgnoreList
    /// Absolute paths walked past (the database's folder).
    let skipped: Set<String>

    public init(root: String, ignore: IgnoreList, databaseFolder: String?) {
        var root = root
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.root = root
        self.ignore = ignore
        var skipped = Set<String>()
        if var folder = databaseFolder {
            while folder.count > 1 && folder.hasSuffix("/") { folder.removeLast() }
            if folder != root { skipped.insert(folder) }
        }
        self.skipped = skipped
    }

    /// `path` relative to the root ("" for the root itself).
    func relative(_ path: String) -> String {
        guard path.hasPrefix(root) else { return path }
        return String(path.dropFirst(root.count).drop { $0 == "/" })
    }

    func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// Whether `notmuch new` would skip the entry `name` of `directory`
    /// outright (ignored, or the database's folder).
    func ignores(_ name: String, in directory: String) -> Bool {
        let path = join(directory, name)
        return name == Database.folderName || skipped.contains(path) || ignore.ignores(name: name, relativePath: relative(path))
    }

    /// Whether a directory below the root is walked: not ignored, and no
    /// part of its path is `.notmuch`, ignored, or a maildir's `tmp`.
    public func isWatched(_ path: String) -> Bool {
        guard path.hasPrefix(root) else { return false }
        if path == root { return true }
        var parent = root
        var parentIsMaildir = DirectoryListing.looksLikeMaildir(root)
        for part in relative(path).split(separator: "/").map(String.init) {
            if ignores(part, in: parent) { return false }
            if part == "tmp" && parentIsMaildir { return false }
            parent = join(parent, part)
            parentIsMaildir = DirectoryListing.looksLikeMaildir(parent)
        }
        return true
    }
}

extension DirectoryListing {
    /// Whether `path` holds `cur`, `new` and `tmp` directories.
    static func looksLikeMaildir(_ path: String) -> Bool {
        ["cur", "new", "tmp"].allSatisfy { kind(of: path + "/" + $0) == .directory }
    }
}
