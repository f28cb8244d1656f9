/// What one transaction brings the database to: files to add, filenames
/// and directories to remove, directory mtimes to store. Applied in that
/// order, as `notmuch new` applies them: additions first, so that a
/// rename's new name is in before its old one goes and the message (with
/// its tags) is never removed in between; mtimes last, once the rest holds.
struct Changes {
    var additions: [String] = []
    var removals: [String] = []
    /// Renames seen whole: the old name goes only once the new one is in
    /// (the new one may be gone by the time the transaction runs, as when
    /// a flag change is followed at once by a move).
    var renames: [(old: String, new: String)] = []
    var removedDirectories: [String] = []
    var mtimes: [(directory: String, seconds: Int)] = []

    var isEmpty: Bool {
        additions.isEmpty && removals.isEmpty && renames.isEmpty && removedDirectories.isEmpty && mtimes.isEmpty
    }

    mutating func merge(_ other: Changes) {
        additions += other.additions
        removals += other.removals
        renames += other.renames
        removedDirectories += other.removedDirectories
        mtimes += other.mtimes
    }
}
