#if canImport(Glibc)
import Glibc
#endif

/// This process's identity and environment variables.
package enum ProcessEnvironment {
    package static var processID: Int32 { getpid() }

    /// The variable's value, nil when it is not set.
    package static func value(of name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// Sets a variable for this process and the children it starts after.
    /// Only where no other thread reads the environment (setenv is not
    /// thread-safe): while a command starts up.
    @discardableResult
    package static func set(_ name: String, to value: String) -> Bool {
        setenv(name, value, 1) == 0
    }

    /// Removes a variable, for this process and the children it starts after.
    package static func remove(_ name: String) {
        unsetenv(name)
    }

    /// The variables among `names` that are set. One by one: copying the
    /// whole environment into a dictionary cost a delivery more than
    /// everything it asks for.
    package static func values(_ names: [String]) -> [String: String] {
        var found: [String: String] = [:]
        for name in names { if let value = value(of: name) { found[name] = value } }
        return found
    }

    /// Whether the process runs as root (its real or effective user).
    package static var isRoot: Bool { getuid() == 0 || geteuid() == 0 }

    /// The real user's home directory from the password database, nil
    /// when it has none there.
    package static func homeFromPasswordDatabase() -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(getuid(), &entry, &buffer, buffer.count, &result) == 0, result != nil,
              let directory = entry.pw_dir, directory.pointee != 0 else { return nil }
        return String(cString: directory)
    }

    /// Starts this program again in this process (the same pid), with the
    /// same arguments and the environment as it is now. Returns only if
    /// that failed.
    package static func restartInPlace() {
        execv("/proc/self/exe", CommandLine.unsafeArgv)
    }

    /// Ends the process at once with `status`, running no exit handlers
    /// (_exit(2)): none may run under a thread still inside libnotmuch.
    package static func exitImmediately(_ status: Int32) -> Never {
        _exit(status)
    }

    /// Whether standard error is a terminal (a person watching).
    package static var standardErrorIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }
}
