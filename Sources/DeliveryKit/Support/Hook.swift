import SystemPackage
import MaildirKit

/// Runs a notmuch hook (e.g. `post-insert`) from the hook directory, as
/// notmuch does: only if it exists and is executable, with no arguments.
enum Hook {
    /// Runs the hook and waits for it. Its exit status is returned, never
    /// thrown: a failing hook must not fail a delivery that has happened.
    /// Its stdin, stdout and stderr are /dev/null, because an MDA's output
    /// means failure to some callers (getmail).
    @discardableResult
    static func run(_ name: String, in directory: String) -> Int32? {
        let path = FilePath(directory).appending(name)
        guard FileSystem.isExecutable(path) else { return nil }
        return ChildProcess.runSilently(path)
    }
}
