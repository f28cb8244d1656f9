/// How many queue records a group commit takes. A server starts with few
/// and takes more while its commits stay short: a backlog (what a killed
/// server left, the queue after a long lock) is applied in commits that
/// finish, however often the server is stopped, and none holds the write
/// lock for long (a user's `notmuch tag` waits at most one commit).
struct CommitSizing {
    /// The first commit of a server: its database open, a handful of
    /// records and Xapian's commit, about a tenth of a second here.
    static let first = 16
    /// The import found batches of 250 the cheapest per message; past that
    /// a commit only holds the lock longer.
    static let most = 250
    /// How long a commit should hold the write lock (seconds): what its
    /// size is fitted to.
    static let target = 0.25

    private(set) var limit = first

    /// Learns from a commit of `records` that took `seconds` (open, apply,
    /// commit): the next takes as many as fit in `target` at that pace, at
    /// most twice this one's limit (a commit whose fixed costs made it look
    /// slow a record is followed by a larger one, not a smaller).
    mutating func learn(records: Int, seconds: Double) {
        guard records > 0, seconds > 0 else { return }
        let fitting = Self.target / (seconds / Double(records))
        let next = fitting >= Double(Self.most) ? Self.most : Int(fitting)
        limit = max(Self.first, min(Self.most, next, 2 * limit))
    }
}
