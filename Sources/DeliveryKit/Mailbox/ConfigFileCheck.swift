import MaildirKit
import Notmuch
import SystemPackage

/// libnotmuch reads its configuration file with GLib, which opens it with
/// a plain blocking open: a FIFO in its place would hold every delivery
/// for ever. So the file libnotmuch is about to read is found here first,
/// the way libnotmuch 0.37 finds it, and opened without blocking; anything
/// but a regular file defers the delivery before libnotmuch is asked.
enum ConfigFileCheck {
    /// Why the configuration file `source` leads to cannot be read; nil
    /// when it is a regular file or when there is none (libnotmuch then
    /// goes on without one, or says so itself).
    static func problem(_ source: ConfigSource, profile: String?) -> String? {
        guard let path = path(source, profile: profile) else { return nil }
        do {
            let fd = try FileSystem.openRegularFile(path)
            try? fd.close()
            return nil
        } catch {
            switch error {
            case .missing: return nil
            case .notRegular, .failed, .symlink: return "the notmuch config file '\(path)' \(error)"
            }
        }
    }

    /// The file libnotmuch reads for `source`: the one given; else
    /// NOTMUCH_CONFIG; else `$XDG_CONFIG_HOME/notmuch/PROFILE/config`
    /// (`~/.config` when unset; PROFILE from the option, NOTMUCH_PROFILE,
    /// or `default`) when it is there to read; else `~/.notmuch-config`,
    /// with `.PROFILE` appended when a profile is named.
    static func path(_ source: ConfigSource, profile: String?) -> String? {
        switch source {
        case .none: return nil
        case .file(let path): return path.isEmpty ? nil : path
        case .search: break
        }
        if let path = environment("NOTMUCH_CONFIG") { return path }
        let home = environment("HOME")
        let named = profile ?? environment("NOTMUCH_PROFILE")
        if let root = environment("XDG_CONFIG_HOME") ?? home.map({ $0 + "/.config" }) {
            let directory = root + "/notmuch/" + (named ?? "default")
            let path = directory + "/config"
            // libnotmuch takes it when access(2) says it can be read.
            if FileSystem.kind(of: FilePath(directory)) == .directory, FileSystem.isReadable(path) { return path }
        }
        guard let home else { return nil }
        return home + "/.notmuch-config" + (named.map { "." + $0 } ?? "")
    }

    private static func environment(_ name: String) -> String? {
        guard let text = ProcessEnvironment.value(of: name), !text.isEmpty else { return nil }
        return text
    }
}
