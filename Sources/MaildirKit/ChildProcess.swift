import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Runs another program and waits for it.
package enum ChildProcess {
    /// Runs `path` with no arguments and this process's environment, its
    /// stdin, stdout and stderr on /dev/null, and waits for it. Its wait
    /// status (as waitpid(2) gives it), or nil when it could not start.
    package static func runSilently(_ path: FilePath) -> Int32? {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] {
            posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY, 0)
        }
        var pid: pid_t = 0
        let status: Int32 = path.string.withCString { cPath in
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
