#if canImport(Glibc)
import Glibc
#endif

/// A compressed archive must be checked whole before anything from it is
/// stored (see ArchiveCheck), which means reading it twice. A regular file
/// can be; standard input, a pipe (`import <(zcat …)`) or a FIFO cannot.
/// So compressed input from a stream is first copied to an unlinked file
/// in `directory` and read from there; plain input from a stream is read
/// as it comes, as there is nothing to check.
public final class StreamSpool {
    /// What to open and check: the archive itself (a regular file), or
    /// the spool.
    public let path: String
    /// Plain input from a stream, open, with the bytes read to tell what it
    /// is put back: to be read from, not opened again.
    public let plainSource: ByteSource?
    private let spool: Int32

    public init(path archive: String, directory: String) throws {
        let fd = archive == "-" ? dup(STDIN_FILENO) : open(archive, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ArchiveError(description: "\(archive): \(String(cString: strerror(errno)))") }
        var info = stat()
        if archive != "-", fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG {
            close(fd)
            path = archive
            plainSource = nil
            spool = -1
            return
        }
        let input = PlainSource(fd: fd, name: archive)
        var magic = [UInt8](repeating: 0, count: 6)
        let count = try magic.withUnsafeMutableBytes { try input.read(into: $0) }
        let head = Array(magic[..<count])
        input.unread(head)
        guard Archive.isCompressed(head) else {
            path = archive
            plainSource = input
            spool = -1
            return
        }
        var template = Array((directory + "/import-spool-XXXXXX").utf8CString)
        let file = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard file >= 0 else { throw Self.cannotSpool(archive, directory) }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        spool = file
        plainSource = nil
        path = "/proc/self/fd/\(file)"
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let read = try chunk.withUnsafeMutableBytes { try input.read(into: $0) }
            if read == 0 { break }
            var written = 0
            while written < read {
                let n = chunk[written..<read].withUnsafeBytes { write(file, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw Self.cannotSpool(archive, directory) }
                written += n
            }
        }
    }

    deinit { if spool >= 0 { close(spool) } }

    private static func cannotSpool(_ archive: String, _ directory: String) -> ArchiveError {
        ArchiveError(description: "\(archive): cannot copy the compressed stream to \(directory) to check it: \(String(cString: strerror(errno)))")
    }
}
