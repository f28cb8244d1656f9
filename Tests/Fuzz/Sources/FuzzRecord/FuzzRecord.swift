import DeliveryKit

/// Queue records (`PendingRecord(encoded:)`): any bytes either are refused
/// or give a record that reads back the same from its own encoding and
/// from its queue entry's name (a real file name), and a record cut short
/// is always refused.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRecord(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = String(decoding: UnsafeBufferPointer(start: data, count: data == nil ? 0 : size), as: UTF8.self)
    guard let record = PendingRecord(encoded: input) else { return 0 }
    let encoded = record.encoded
    guard PendingRecord(encoded: encoded) == record else {
        fatalError("PendingRecord: \(record) does not read back from its encoding")
    }
    if let name = record.fileName {
        if name.utf8.count > 255 || name.utf8.contains(UInt8(ascii: "/")) || name.utf8.contains(0) {
            fatalError("PendingRecord: \(name) is no file name")
        }
        if PendingRecord(fileName: name) != record {
            fatalError("PendingRecord: \(record) does not read back from its entry name \(name)")
        }
    }
    let bytes = Array(encoded.utf8)
    for cut in [0, 1, bytes.count / 2, bytes.count - 1] where cut >= 0 && cut < bytes.count {
        if PendingRecord(encoded: String(decoding: bytes[..<cut], as: UTF8.self)) != nil {
            fatalError("PendingRecord: the first \(cut) of \(bytes.count) bytes were accepted")
        }
    }
    return 0
}
