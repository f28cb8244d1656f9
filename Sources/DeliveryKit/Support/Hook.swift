import SystemPackage
import MaildirKit
#if canImport(Glibc)
import Glibc
#endif

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
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] {
            posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY, 0)
        }
        let pathString = path.string
        var pid: pid_t = 0
        let status: Int32 = pathString.withCString { cPath in
            var argv: [UnsafeMutablePointer<CChar>?] = [strdup(cPath), nil]
            defer { free(argv[0]) }
            return posix_spawn(&pid, cPath, &actions, nil, &argv, environ)
        }
        guard status == 0 else { return nil }
        var waitStatus: Int32 = 0
        while waitpid(pid, &waitStatus, 0) < 0 && errno == EINTR {}
        return waitStatus
    }
}
