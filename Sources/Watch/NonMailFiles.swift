/// Files libnotmuch found to be no mail (no From, Subject or To), so that
/// each is tried once and logged once, not at every event or scan; a file
/// written again (another inode, size or mtime) is tried again.
final class NonMailFiles {
    private var known: [String: FileSignature] = [:]

    /// Whether `path` is the very file found to be no mail before.
    func remembers(_ path: String) -> Bool {
        guard let signature = known[path] else { return false }
        if FileSignature(path) == signature { return true }
        known[path] = nil
        return false
    }

    func remember(_ path: String) {
        known[path] = FileSignature(path)
    }

    func forget(_ path: String) {
        known[path] = nil
    }

    /// Forgets everything below `directory` (removed).
    func forget(under directory: String) {
        let prefix = directory + "/"
        known = known.filter { !$0.key.hasPrefix(prefix) }
    }
}
