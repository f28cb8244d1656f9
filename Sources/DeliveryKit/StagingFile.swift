import SystemPackage

/// One archive message on its way to tmp/, written and hashed piece by
/// piece as the splitter hands it over, so that no message is ever held
/// whole: a 40 MiB line or a gzip bomb costs a buffer, not its size.
/// Past `limit` bytes it stops writing and hashing, and only counts.
final class StagingFile {
    let path: FilePath?
    let limit: Int
    private var fd: FileDescriptor?
    private let checksum = ContentChecksum()
    private var buffer: [UInt8] = []
    private(set) var size = 0
    /// The first write error: a full disk, not this message's fault.
    private(set) var error: Errno?

    /// Buffered writes: the splitter hands over a line at a time.
    private static let bufferSize = 1 << 16

    /// `path` nil: count only (a dry run).
    init(path: FilePath?, limit: Int) throws(Errno) {
        self.path = path
        self.limit = limit
        if let path {
            do {
                fd = try FileDescriptor.open(path, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                             permissions: .ownerReadWrite)
            } catch let error as Errno { throw error } catch { throw Errno.ioError }
        } else {
            fd = nil
        }
    }

    deinit { try? fd?.close() }

    var isOversize: Bool { size > limit }

    func append(_ bytes: ArraySlice<UInt8>) {
        let wasOversize = isOversize
        size += bytes.count
        guard !wasOversize, !isOversize, path != nil, error == nil else { return }
        buffer += bytes
        if buffer.count >= Self.bufferSize { flush() }
    }

    /// Writes what is buffered and closes the file; the content's SHA-1.
    func finish() -> String {
        flush()
        if let fd {
            self.fd = nil
            do { try fd.close() } catch let failure as Errno { error = error ?? failure } catch {}
        }
        return checksum.hex
    }

    /// Closes and removes the file: the message is not to be stored.
    func discard() {
        buffer.removeAll()
        _ = finish()
        if let path { try? FileSystem.unlink(path) }
    }

    private func flush() {
        guard !buffer.isEmpty else { return }
        let failure = buffer.withUnsafeBytes { bytes -> Errno? in
            checksum.update(bytes)
            guard let fd, error == nil else { return nil }
            do throws(Errno) { try fd.writeEverything(bytes) } catch { return error }
            return nil
        }
        error = error ?? failure
        buffer.removeAll(keepingCapacity: true)
    }
}
