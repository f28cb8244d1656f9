#if canImport(Glibc)
import Glibc
#endif

/// One directory's entries, as `notmuch new` sees them: names in `strcmp`
/// order (the order the database lists its child files in), each a
/// directory, a regular file (symlinks followed) or something else.
package struct DirectoryListing {
    package enum Kind { case directory, file, other }

    package struct Entry {
        package let name: String
        package let kind: Kind
    }

    package let entries: [Entry]

    /// Nil when the directory cannot be read (gone, or no permission).
    package init?(_ path: String) {
        guard let stream = opendir(path) else { return nil }
        defer { closedir(stream) }
        var entries: [Entry] = []
        while let raw = readdir(stream) {
            let name = withUnsafeBytes(of: raw.pointee.d_name) { bytes in
                String(cString: bytes.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." { continue }
            let kind: Kind
            switch Int32(raw.pointee.d_type) {
            case Int32(DT_DIR): kind = .directory
            case Int32(DT_REG): kind = .file
            case Int32(DT_LNK), Int32(DT_UNKNOWN): kind = Self.kind(of: path + "/" + name)
            default: kind = .other
            }
            entries.append(Entry(name: name, kind: kind))
        }
        self.entries = entries.sorted { Self.precedes($0.name, $1.name) }
    }

    /// The kind of what `path` names, following symlinks; nil when nothing is there.
    package static func kind(of path: String) -> Kind {
        var info = stat()
        guard stat(path, &info) == 0 else { return .other }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .file
        default: return .other
        }
    }

    /// `strcmp` order: bytes, not Swift's Unicode ordering.
    package static func precedes(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    package var hasMaildirSubdirectories: Bool {
        let names = Set(entries.filter { $0.kind == .directory }.map(\.name))
        return names.isSuperset(of: ["cur", "new", "tmp"])
    }
}
