internal import CGLib

/// SHA-1 of a stream, fed as it is copied (GLib's GChecksum).
package final class ContentChecksum {
    private let checksum: OpaquePointer

    package init() { checksum = g_checksum_new(G_CHECKSUM_SHA1) }

    deinit { g_checksum_free(checksum) }

    package func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { g_checksum_update(checksum, $0.baseAddress, gssize($0.count)) }
    }

    package func update(_ bytes: UnsafeRawBufferPointer) {
        g_checksum_update(checksum, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), gssize(bytes.count))
    }

    package var hex: String { String(cString: g_checksum_get_string(checksum)) }

    package static func hex(of bytes: [UInt8]) -> String {
        let checksum = ContentChecksum()
        checksum.update(bytes)
        return checksum.hex
    }
}
