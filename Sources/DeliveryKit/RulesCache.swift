import Rules
import Synchronization
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Rules files, parsed once per Deliverer and read again only when one
/// changes on disk: a server delivering thousands of messages parses the
/// file once, and an edit applies from the next message on. A command-line
/// delivery, which has one message, reads the file once, as always.
final class RulesCache: Sendable {
    /// What identifies a version of a file without reading it.
    private struct Signature: Equatable {
        let device: UInt64, inode: UInt64, size: Int64
        let modified: timespec, changed: timespec

        init?(_ path: String) {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            size = Int64(info.st_size)
            modified = info.st_mtim
            changed = info.st_ctim
        }

        static func == (a: Signature, b: Signature) -> Bool {
            a.device == b.device && a.inode == b.inode && a.size == b.size
                && a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec
                && a.changed.tv_sec == b.changed.tv_sec && a.changed.tv_nsec == b.changed.tv_nsec
        }
    }

    private struct Entry {
        let signature: Signature
        let rules: RuleSet
    }

    private let entries = Mutex<[String: Entry]>([:])

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
