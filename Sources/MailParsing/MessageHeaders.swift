internal import CGMime
import SystemPackage

/// A message's header fields, unfolded and RFC 2047-decoded by GMime, in
/// file order. Only the header block is read: a large body costs nothing.
public struct MessageHeaders: Sendable {
    public let fields: [(name: String, value: String)]

    /// The header block is read up to this many bytes; rules need no more.
    public static let readLimit = 1 << 20

    public init(fields: [(name: String, value: String)]) { self.fields = fields }

    /// Every value of `name` (case-insensitive), in order.
    public func values(_ name: String) -> [String] {
        let wanted = name.lowercased()
        return fields.filter { $0.name.lowercased() == wanted }.map(\.value)
    }

    /// Parses the header block of the message file at `path`.
    public static func read(fromFile path: String) -> MessageHeaders {
        parse(headerBlock: readHeaderBlock(path))
    }

    /// Parses header bytes (a header block, or a whole message).
    public static func parse(headerBlock bytes: [UInt8]) -> MessageHeaders {
        GMimeLibrary.initialise
        // A blank line ends the headers even when the block was cut short.
        let terminated = bytes + Array("\n\n".utf8)
        let stream = terminated.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { g_mime_stream_mem_new_with_buffer($0.baseAddress, $0.count) }
        }
        guard let stream else { return MessageHeaders(fields: []) }
        defer { g_object_unref(stream) }
        guard let parser = g_mime_parser_new() else { return MessageHeaders(fields: []) }
        defer { g_object_unref(parser) }
        g_mime_parser_init_with_stream(parser, stream)
        guard let message = g_mime_parser_construct_message(parser, nil) else { return MessageHeaders(fields: []) }
        defer { g_object_unref(message) }
        return MessageHeaders(of: message)
    }

    /// The header fields of a message GMime parsed; `only`: just these
    /// (lower-case names).
    init(of message: UnsafeMutablePointer<GMimeMessage>, only: Set<String>? = nil) {
        var fields: [(String, String)] = []
        if let list = g_mime_object_get_header_list(cgmime_object(message)) {
            for index in 0..<g_mime_header_list_get_count(list) {
                guard let header = g_mime_header_list_get_header_at(list, index),
                      let name = g_mime_header_get_name(header) else { continue }
                let field = String(cString: name)
                if let only, !only.contains(field.lowercased()) { continue }
                fields.append((field, Self.decode(g_mime_header_get_raw_value(header))))
            }
        }
        self.init(fields: fields)
    }

    /// Unfolds, decodes encoded-words, and trims.
    private static func decode(_ raw: UnsafePointer<CChar>?) -> String {
        guard let raw else { return "" }
        guard let unfolded = g_mime_utils_header_unfold(raw) else { return "" }
        defer { g_free(unfolded) }
        guard let decoded = g_mime_utils_header_decode_text(nil, unfolded) else { return String(cString: unfolded) }
        defer { g_free(decoded) }
        return String(cString: decoded).trimmingWhitespace()
    }

    /// The bytes up to and including the first blank line, at most `readLimit`.
    static func readHeaderBlock(_ path: String) -> [UInt8] {
        guard let fd = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) else { return [] }
        defer { try? fd.close() }
        var block: [UInt8] = []
        var headerEnd: Int?
        // A read error ends the block as the end of the file would.
        let ended = (try? fd.readChunks { chunk in
            let searchFrom = max(0, block.count - 3)
            block += chunk
            headerEnd = blankLineEnd(block, from: searchFrom)
            return headerEnd == nil && block.count < readLimit
        }) ?? true
        if let headerEnd { return Array(block[..<headerEnd]) }
        // The whole file is headers: all of it.
        if ended { return block }
        // Cut short: without the last, partial line. A header cut in the
        // middle would be another value, which a rule could match (a's cut
        // before their final '!' match /^(a+)+$/).
        let kept = block.prefix(readLimit)
        guard let lastNewline = kept.lastIndex(of: 10) else { return [] }
        return Array(kept[...lastNewline])
    }

    private static func blankLineEnd(_ bytes: [UInt8], from start: Int) -> Int? {
        var i = start
        while i + 1 < bytes.count {
            if bytes[i] == 10 {
                if bytes[i + 1] == 10 { return i + 2 }
                if bytes[i + 1] == 13, i + 2 < bytes.count, bytes[i + 2] == 10 { return i + 3 }
            }
            i += 1
        }
        return nil
    }
}

/// GMime wants one g_mime_init() per process.
enum GMimeLibrary {
    static let initialise: Void = { g_mime_init() }()
}

// Package-wide, for the header values the mbox reader and the import read
// themselves; no caller outside the package needs it.
package extension String {
    func trimmingWhitespace() -> String {
        var view = Substring(self)
        while let first = view.first, first.isWhitespace { view.removeFirst() }
        while let last = view.last, last.isWhitespace { view.removeLast() }
        return String(view)
    }
}
