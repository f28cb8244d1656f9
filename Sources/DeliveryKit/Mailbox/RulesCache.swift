import Rules
import Sieve
import Synchronization
import SystemPackage

/// Rules files, parsed once per `Mailboxes` and read again only when one
/// changes on disk: a server delivering thousands of messages parses the
/// file once, and an edit applies from the next message on. A command-line
/// delivery, which has one message, reads the file once, as always.
final class RulesCache: Sendable {
    /// What identifies a version of a file without reading it.
    private struct Signature: Equatable {
        let device: UInt64, inode: UInt64, size: Int64
        let modified: (seconds: Int, nanoseconds: Int), changed: (seconds: Int, nanoseconds: Int)

        init?(_ path: String) {
            guard let info = try? Stat(FilePath(path)) else { return nil }
            device = UInt64(info.deviceID.rawValue)
            inode = UInt64(info.inode.rawValue)
            size = info.size
            modified = (info.st_mtim.tv_sec, info.st_mtim.tv_nsec)
            changed = (info.st_ctim.tv_sec, info.st_ctim.tv_nsec)
        }

        static func == (a: Signature, b: Signature) -> Bool {
            a.device == b.device && a.inode == b.inode && a.size == b.size
                && a.modified == b.modified && a.changed == b.changed
        }
    }

    private struct Entry {
        let signature: Signature
        let rules: RuleSet
    }

    private let entries = Mutex<[String: Entry]>([:])

    private struct SieveEntry {
        let signature: Signature
        let separator: Character
        let script: SieveRules?
    }

    private let scripts = Mutex<[String: SieveEntry]>([:])

    /// The Sieve script at `path`, compiled again if the file changed; nil
    /// (its errors logged) when it does not compile.
    func sieve(at path: String, separator: Character) -> SieveRules? {
        guard let signature = Signature(path) else { return SieveLoader.loadLogging(path: path, separator: separator) }
        if let known = scripts.withLock({ $0[path] }), known.signature == signature, known.separator == separator {
            return known.script
        }
        let script = SieveLoader.loadLogging(path: path, separator: separator)
        scripts.withLock { $0[path] = SieveEntry(signature: signature, separator: separator, script: script) }
        return script
    }

    /// The rules at `path`, parsed again if the file changed. A file that
    /// cannot be looked at is not kept: its errors are logged each time.
    func rules(at path: String) -> RuleSet {
        guard let signature = Signature(path) else { return RulesLoader.loadLogging(path: path) }
        if let known = entries.withLock({ $0[path] }), known.signature == signature { return known.rules }
        let rules = RulesLoader.loadLogging(path: path)
        entries.withLock { $0[path] = Entry(signature: signature, rules: rules) }
        return rules
    }
}
