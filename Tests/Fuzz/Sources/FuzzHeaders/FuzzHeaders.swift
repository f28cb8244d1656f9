import MailParsing
#if canImport(Glibc)
import Glibc
#endif

/// MessageHeaders on any bytes: parsed from memory (a header block or a
/// whole message), and read from a file as a delivery reads it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHeaders(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let parsed = MessageHeaders.parse(headerBlock: bytes)
    for name in ["From", "subject", "MESSAGE-ID", "List-Id", "x"] {
        for value in parsed.values(name) where value.first?.isWhitespace == true || value.last?.isWhitespace == true {
            fatalError("value not trimmed: \(name): \(value.debugDescription)")
        }
    }

    TemporaryFile.shared.write(bytes)
    let read = MessageHeaders.read(fromFile: TemporaryFile.shared.path)
    // The file holds the same bytes: whatever was read from it, it starts
    // as what the whole input gave (reading stops at the first blank line).
    if read.fields.count > parsed.fields.count {
        fatalError("\(read.fields.count) fields from the file, \(parsed.fields.count) from memory")
    }
    return 0
}

/// One file per fuzzing process, rewritten for each input. It is unlinked
/// at once and named through /proc/self/fd, so that nothing is left behind
/// by a crash or a fork-mode job.
private final class TemporaryFile: @unchecked Sendable {
    static let shared = TemporaryFile()
    let path: String
    private let fd: Int32

    private init() {
        var template = Array("/tmp/fuzz-headers-XXXXXX".utf8CString)
        fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(fd >= 0, "cannot create a temporary file")
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        path = "/proc/self/fd/\(fd)"
    }

    func write(_ bytes: [UInt8]) {
        precondition(ftruncate(fd, 0) == 0)
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
            precondition(count > 0, "cannot write the temporary file")
            offset += count
        }
    }
}
