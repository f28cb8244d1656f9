/// What one transaction brings the database to: files to add, filenames
/// and directories to remove, directory mtimes to store. Applied in that
/// order, as `notmuch new` applies them: additions first, so that a
/// rename's new name is in before its old one goes and the message (with
/// its tags) is never removed in between; mtimes last, once the rest holds.
struct Changes {
    var additions: [String] = []
    var removals: [String] = []
    var removedDirectories: [String] = []
    var mtimes: [(directory: String, seconds: Int)] = []

    var isEmpty: Bool { additions.isEmpty && removals.isEmpty && removedDirectories.isEmpty && mtimes.isEmpty }

    mutating func merge(_ other: Changes) {
        additions += other.additions
        removals += other.removals
        removedDirectories += other.removedDirectories
        mtimes += other.mtimes
    }
}
