import DeliveryKit
import MaildirKit
import SystemPackage

/// What the process sets up about itself before a command runs.
enum ProcessSetup {
    /// Some MTAs and cron start commands without HOME, and libnotmuch then
    /// refuses to open even a database named by NOTMUCH_CONFIG. Like most
    /// Unix programs, take the home directory from the password database.
    static func ensureHome() {
        guard ProcessEnvironment.value(of: "HOME") == nil,
              let directory = ProcessEnvironment.homeFromPasswordDatabase() else { return }
        ProcessEnvironment.set("HOME", to: directory)
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
        guard ProcessEnvironment.value(of: "G_SLICE") == nil else { return }
        ProcessEnvironment.set("G_SLICE", to: "always-malloc")
        ProcessEnvironment.restartInPlace()
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
