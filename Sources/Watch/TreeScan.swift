import Notmuch
import SystemPackage
import Threads
import MaildirKit

/// Compares a directory tree with the database as `notmuch new` does
/// (notmuch-new.c's add_files): a directory whose mtime equals the stored
/// one is not merged again, and a leaf among them (no subdirectories on
/// disk or in the database) is not even listed; otherwise its sorted
/// listing is merge-walked against the database's child files and
/// directories. Reads only: the result is applied later, in a transaction.
struct TreeScan {
    let tree: MailTree
    let database: Database
    /// Seconds since the epoch; the directory mtime read in the current
    /// second is not stored (mail may still arrive within it).
    var now: () -> Int = { WallClock.seconds }

    /// Walks `directory` and everything below it.
    func scan(_ directory: String) throws -> Changes {
        var changes = Changes()
        try walk(directory, into: &changes)
        return changes
    }

    private func walk(_ directory: String, into changes: inout Changes) throws {
        let statTime = now()
        let additionsBefore = changes.additions.count
        guard let info = try? Stat(directory) else { return }
        let fsMtime = Int(info.st_mtim.tv_sec)
        let known = try database.directory(directory)
        let dbMtime = try known?.mtime() ?? 0
        if let known, fsMtime == dbMtime, info.linkCount == 2, try known.childDirectories().isEmpty { return }
        guard let listing = DirectoryListing(directory) else { return }
        let isMaildir = listing.hasMaildirSubdirectories
        for entry in listing.entries where entry.kind == .directory {
            if tree.ignores(entry.name, in: directory) || (isMaildir && entry.name == "tmp") { continue }
            try walk(tree.join(directory, entry.name), into: &changes)
        }
        if fsMtime == dbMtime { return }
        let files = try known?.childFiles() ?? []
        let subdirectories = try known?.childDirectories() ?? []
        var f = 0, d = 0
        for entry in listing.entries {
            // Names the database has and the listing walked past are gone.
            while f < files.count, DirectoryListing.precedes(files[f], entry.name) {
                changes.removals.append(tree.join(directory, files[f]))
                f += 1
            }
            while d < subdirectories.count, !DirectoryListing.precedes(entry.name, subdirectories[d]) {
                if subdirectories[d] != entry.name { changes.removedDirectories.append(tree.join(directory, subdirectories[d])) }
                d += 1
            }
            if entry.kind != .file || tree.ignores(entry.name, in: directory) { continue }
            if f < files.count, files[f] == entry.name {
                f += 1
                continue
            }
            changes.additions.append(tree.join(directory, entry.name))
        }
        changes.removals += files[f...].map { tree.join(directory, $0) }
        changes.removedDirectories += subdirectories[d...].map { tree.join(directory, $0) }
        // A directory with no document (no mail in it or below, as an
        // empty new/) keeps none, as with notmuch new, which stores mtimes
        // only in documents that exist: its mtime would be a change that
        // changes nothing, and opens the database for writing for it.
        let documented = known != nil || changes.additions.count > additionsBefore
        if fsMtime != statTime && documented { changes.mtimes.append((directory, fsMtime)) }
    }
}
