import DeliveryKit
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

enum ProcessEnvironment {
    /// One variable, read when asked: copying the whole environment into a
    /// dictionary cost a delivery more than everything it asks for.
    static func value(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// Some MTAs and cron start commands without HOME, and libnotmuch then
    /// refuses to open even a database named by NOTMUCH_CONFIG. Like most
    /// Unix programs, take the home directory from the password database.
    static func ensureHome() {
        guard getenv("HOME") == nil else { return }
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(getuid(), &entry, &buffer, buffer.count, &result) == 0, result != nil,
              let directory = entry.pw_dir, directory.pointee != 0 else { return }
        setenv("HOME", directory, 1)
    }

    /// A long-lived process (the LMTP server) must give back what GMime
    /// and libnotmuch free. GLib before 2.76 (Debian 12 has 2.74) puts
    /// every GObject in its slice allocator, which keeps the memory for
    /// good: a message of many header fields or MIME parts left the server
    /// 600 MB larger after its delivery, where plain malloc and
    /// `malloc_trim` gave it all back. GLib reads G_SLICE when it is loaded,
    /// before main, so the process starts itself again with it set (the
    /// same pid: systemd's LISTEN_PID still holds). An administrator's own
    /// G_SLICE is left alone; if the exec fails, the server runs as it is.
    static func ensureMallocForGLib() {
        guard getenv("G_SLICE") == nil else { return }
        setenv("G_SLICE", "always-malloc", 1)
        let arguments = CommandLine.unsafeArgv
        execv("/proc/self/exe", arguments)
    }

    /// The variables among `names` that are set.
    static func values(_ names: [String]) -> [String: String] {
        var found: [String: String] = [:]
        for name in names { if let value = value(name) { found[name] = value } }
        return found
    }
}

func complainRaw(_ text: String) {
    var text = text
    text.withUTF8 { bytes in _ = try? FileDescriptor.standardError.writeAll(bytes) }
}

/// A finding on stderr, one line, in the `FILE:LINE: message` form that
/// editors and scripts read (a rules file's error, an import's failed
/// message): results go to stdout, diagnostics here, so `2>errors.log`
/// catches them all.
func diagnostic(_ line: String) {
    var text = LogText.oneLine(line) + "\n"
    text.withUTF8 { bytes in _ = try? FileDescriptor.standardError.writeAll(bytes) }
}

/// One line on stderr, prefixed with the program's name. One line also when
/// the text quotes the message or the envelope (an MTA keeps the line as the
/// reason in its log and bounces); libnotmuch's own messages end in a newline.
func complain(_ line: String) {
    var trimmed = Substring(line)
    while trimmed.last?.isNewline == true { trimmed = trimmed.dropLast() }
    var text = "notmuch-deliver: \(LogText.oneLine(String(trimmed)))\n"
    text.withUTF8 { bytes in _ = try? FileDescriptor.standardError.writeAll(bytes) }
}
