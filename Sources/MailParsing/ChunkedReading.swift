import SystemPackage

// Package-wide: the header block, a rules file and a message's checksum are
// all read this way; no caller outside the package needs it.
package extension FileDescriptor {
    /// Reads from the current offset in 64 KiB pieces, handing each to `body`
    /// until the end of the file or until `body` returns false. Returns
    /// whether the end was reached. EINTR is retried; other errors are thrown.
    @discardableResult
    func readChunks(_ body: (ArraySlice<UInt8>) throws -> Bool) throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if count == 0 { return true }
            guard try body(chunk[..<count]) else { return false }
        }
    }
}
