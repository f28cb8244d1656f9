#if canImport(Glibc)
import Glibc
#endif

/// One file per fuzzing process, rewritten for each input, for the code
/// that reads from a path. It is unlinked at once and named through
/// /proc/self/fd, so that nothing is left behind by a crash or a fork-mode job.
public final class ScratchFile: @unchecked Sendable {
    public let path: String
    private let fd: Int32

    public init(prefix: String) {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(fd >= 0, "cannot create a temporary file")
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        path = "/proc/self/fd/\(fd)"
    }

    public func write(_ bytes: [UInt8]) {
        precondition(ftruncate(fd, 0) == 0)
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
            precondition(count > 0, "cannot write the temporary file")
            offset += count
        }
    }
}
