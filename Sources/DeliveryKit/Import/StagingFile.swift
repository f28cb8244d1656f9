import SystemPackage
import MaildirKit

/// One archive message on its way to tmp/, hashed piece by piece as the
/// splitter hands it over, so that no message is ever held whole: a 40 MiB
/// line or a gzip bomb costs a buffer, not its size. A message that fits
/// in the buffer is written only once its digest says it is wanted (a
/// re-run then writes nothing for the messages already there); a larger
/// one goes to its file as it comes. Past `limit` bytes it only counts.
final class StagingFile {
    let path: FilePath
    let limit: Int
    private var fd: FileDescriptor?
    /// Whether the file was created, and so has to go if it is not kept.
    private var created = false
    private let checksum = ContentChecksum()
    /// Bytes not yet hashed and written.
    private var buffer: [UInt8] = []
    /// Bytes hashed, not yet written: the end of the message, held until
    /// `store` or `discard`.
    private var hashedOnly: [UInt8] = []
    private(set) var size = 0
    /// The first write error: a full disk, not this message's fault.
    private(set) var error: Errno?

    private static let bufferSize = 1 << 16

    init(path: FilePath, limit: Int) {
        self.path = path
        self.limit = limit
    }

    deinit { try? fd?.close() }

    var isOversize: Bool { size > limit }

    func append(_ bytes: ArraySlice<UInt8>) {
        let wasOversize = isOversize
        size += bytes.count
        guard !wasOversize, !isOversize, error == nil else { return }
        buffer += bytes
        if buffer.count >= Self.bufferSize {
            hash(buffer)
            write(buffer)
            buffer.removeAll(keepingCapacity: true)
        }
    }

    /// The content's SHA-1, once all of it has been appended.
    func finish() -> String {
        hash(buffer)
        hashedOnly = buffer
        buffer = []
        return checksum.hex
    }

    /// Writes what is left and closes the file, which then holds the
    /// message; the first write error if there was one.
    func store() throws(Errno) {
        write(hashedOnly)
        hashedOnly = []
        if error == nil && !created { open() }
        if let fd {
            self.fd = nil
            do { try fd.close() } catch let failure as Errno { error = error ?? failure } catch {}
        }
        if let error { throw error }
    }

    /// Closes and removes the file, if there is one: the message is not
    /// to be stored.
    func discard() {
        buffer = []
        hashedOnly = []
        if let fd {
            self.fd = nil
            try? fd.close()
        }
        if created { try? FileSystem.unlink(path) }
    }

    private func hash(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { checksum.update($0) }
    }

    private func open() {
        do throws(FileSystem.RegularFileProblem) {
            fd = try FileSystem.openRegularFile(path.string, for: .writingAfresh, followSymlinks: false)
            created = true
        } catch {
            switch error {
            case .failed(let failure): self.error = failure
            case .missing: self.error = .noSuchFileOrDirectory
            case .symlink: self.error = .tooManySymbolicLinkLevels
            case .notRegular: self.error = .ioError
            }
        }
    }

    private func write(_ bytes: [UInt8]) {
        guard !bytes.isEmpty, error == nil else { return }
        if fd == nil { open() }
        guard let fd else { return }
        let failure = bytes.withUnsafeBytes { bytes -> Errno? in
            do throws(Errno) { try fd.writeEverything(bytes) } catch { return error }
            return nil
        }
        error = error ?? failure
    }
}
