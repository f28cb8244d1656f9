import MaildirKit
import SystemPackage

/// A compressed archive must be checked whole before anything from it is
/// stored (see ArchiveCheck), which means reading it twice. A regular file
/// can be; standard input, a pipe (`import <(zcat …)`) or a FIFO cannot.
/// So compressed input from a stream is first copied to a spool file (no
/// name, in `directory`) and read from there; plain input from a stream is
/// read as it comes, as there is nothing to check.
public final class StreamSpool {
    /// What to open and check: the archive itself (a regular file), or
    /// the spool.
    public let path: String
    /// Plain input from a stream, open, with the bytes read to tell what it
    /// is put back: to be read from, not opened again.
    public let plainSource: ByteSource?
    /// Holds the copy; `path` names it while this object lives.
    private let spool: SpoolFile?

    public init(path archive: String, directory: String) throws {
        let fd = try Archive.openInput(archive, name: archive)
        if archive != "-", let info = try? fd.stat(), info.type == .regular {
            try? fd.close()
            path = archive
            plainSource = nil
            spool = nil
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
            spool = nil
            return
        }
        let file: SpoolFile
        do {
            file = try SpoolFile(in: directory, prefix: "import-spool")
        } catch {
            throw Self.cannotSpool(archive, directory, error)
        }
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let read = try chunk.withUnsafeMutableBytes { try input.read(into: $0) }
            if read == 0 { break }
            chunk.withUnsafeBytes { file.append(UnsafeRawBufferPointer(rebasing: $0[..<read])) }
            if let failure = file.failure { throw Self.cannotSpool(archive, directory, failure) }
        }
        spool = file
        plainSource = nil
        path = file.path
    }

    deinit { spool?.close() }

    private static func cannotSpool(_ archive: String, _ directory: String, _ error: Errno) -> ArchiveError {
        ArchiveError(description: "\(archive): cannot copy the compressed stream to \(directory) to check it: \(error)")
    }
}
