import FuzzSupport
import MailParsing

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

    scratch.write(bytes)
    let read = MessageHeaders.read(fromFile: scratch.path)
    // The file holds the same bytes: whatever was read from it, it starts
    // as what the whole input gave (reading stops at the first blank line).
    if read.fields.count > parsed.fields.count {
        fatalError("\(read.fields.count) fields from the file, \(parsed.fields.count) from memory")
    }
    return 0
}

private let scratch = ScratchFile(prefix: "fuzz-headers")
