#if canImport(Glibc)
import Glibc
#endif

/// Standard input cannot be read twice, and a compressed archive must be
/// checked whole before anything from it is stored (see ArchiveCheck). So
/// compressed input is first copied to an unlinked file in `directory`, and
/// read from there, once to check and once to import; plain input is read
/// as it comes, as there is nothing to check.
public final class StandardInputSpool {
    /// The archive to open: the spool, or "-" for plain input.
    public let path: String
    /// Plain input, with the bytes read to tell what it is put back.
    public let plainSource: ByteSource?
    private let fd: Int32

    public init(directory: String) throws {
        let input = PlainSource(fd: dup(STDIN_FILENO), name: "-")
        var magic = [UInt8](repeating: 0, count: 6)
        let count = try magic.withUnsafeMutableBytes { try input.read(into: $0) }
        let head = Array(magic[..<count])
        input.unread(head)
        guard Archive.isCompressed(head) else {
            path = "-"
            plainSource = input
            fd = -1
            return
        }
        var template = Array((directory + "/import-spool-XXXXXX").utf8CString)
        let spool = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard spool >= 0 else {
            throw ArchiveError(description: "-: cannot spool standard input in \(directory): \(String(cString: strerror(errno)))")
        }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        fd = spool
        plainSource = nil
        path = "/proc/self/fd/\(spool)"
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let read = try chunk.withUnsafeMutableBytes { try input.read(into: $0) }
            if read == 0 { break }
            var written = 0
            while written < read {
                let n = chunk[written..<read].withUnsafeBytes { Glibc.write(spool, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw ArchiveError(description: "-: cannot spool standard input in \(directory): \(String(cString: strerror(errno)))")
                }
                written += n
            }
        }
    }

    deinit { if fd >= 0 { close(fd) } }
}
