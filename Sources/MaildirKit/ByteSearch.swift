#if canImport(Glibc)
import Glibc
#endif

/// Finding a byte in a buffer at memchr's speed (many bytes a cycle),
/// which the standard library's element-by-element `firstIndex(of:)` does
/// not reach: the header scan skips a message's body lines with it.
package enum ByteSearch {
    /// The offset of the first `byte` in `buffer`, nil when there is none.
    package static func firstOffset(of byte: UInt8, in buffer: UnsafeRawBufferPointer) -> Int? {
        guard let start = buffer.baseAddress, !buffer.isEmpty,
              let found = memchr(start, Int32(byte), buffer.count) else { return nil }
        return UnsafeRawPointer(found) - start
    }
}
