internal import CCompression
#if canImport(Glibc)
import Glibc
#endif

/// Something that hands out bytes in order: a file, or a compressed file
/// decoded on the fly, so an archive is never loaded whole.
public protocol ByteSource: AnyObject {
    /// Fills `buffer` from the start; 0 means the end. Throws on a read or
    /// decoding error.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// How far into the file reading has got, as a fraction, when the file
    /// has a known size (not a pipe); a compressed file counts its
    /// compressed bytes. For a progress bar's estimate of the time left.
    var fractionRead: Double? { get }
}

extension ByteSource {
    public var fractionRead: Double? { nil }
}

public struct ArchiveError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// The file cannot be opened or read.
        case unreadable
        /// The compressed data stops before its end marker: what came
        /// before decoded without complaint (but no checksum vouches for it).
        case truncated
        /// The decoder refused the data: a bad block, a checksum or length
        /// that does not match. Anything decoded from it may be garbage.
        case corrupt
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind = .unreadable, description: String) {
        self.kind = kind
        self.description = description
    }
}

public enum Archive {
    /// Opens `path` ("-": standard input), choosing the decoder from the
    /// first bytes: gzip, xz or bzip2, else plain.
    /// `name` is how errors call it (a spool file stands for "-").
    public static func open(_ path: String, name: String? = nil) throws -> ByteSource {
        let name = name ?? path
        let fd = path == "-" ? dup(STDIN_FILENO) : Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ArchiveError(description: "\(name): \(String(cString: strerror(errno)))") }
        let plain = PlainSource(fd: fd, name: name)
        var magic = [UInt8](repeating: 0, count: 6)
        let count = try magic.withUnsafeMutableBytes { try plain.read(into: $0) }
        let head = Array(magic[..<count])
        plain.unread(head)
        if head.starts(with: gzipMagic) { return try GzipSource(plain, name: name) }
        if head.starts(with: xzMagic) { return try XzSource(plain, name: name) }
        if head.starts(with: bzip2Magic) { return try Bzip2Source(plain, name: name) }
        return plain
    }

    static let gzipMagic: [UInt8] = [0x1F, 0x8B]
    static let xzMagic: [UInt8] = [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]
    static let bzip2Magic = Array("BZh".utf8)

    static func isCompressed(_ head: [UInt8]) -> Bool {
        head.starts(with: gzipMagic) || head.starts(with: xzMagic) || head.starts(with: bzip2Magic)
    }
}

/// A file descriptor, with room to push back the bytes used to sniff it.
final class PlainSource: ByteSource {
    private let fd: Int32
    private let name: String
    private var pushedBack: [UInt8] = []

    init(fd: Int32, name: String) {
        self.fd = fd
        self.name = name
    }

    deinit { close(fd) }

    func unread(_ bytes: [UInt8]) { pushedBack = bytes + pushedBack }

    var fractionRead: Double? {
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size > 0 else { return nil }
        let offset = lseek(fd, 0, SEEK_CUR)
        return offset < 0 ? nil : min(Double(offset) / Double(info.st_size), 1)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if !pushedBack.isEmpty {
            let count = min(buffer.count, pushedBack.count)
            buffer.copyBytes(from: pushedBack[..<count])
            pushedBack.removeFirst(count)
            return count
        }
        while true {
            let count = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno != EINTR { throw ArchiveError(description: "\(name): \(String(cString: strerror(errno)))") }
        }
    }
}

/// Feeds compressed input to a decoder a chunk at a time.
private let chunkSize = 1 << 16

final class GzipSource: ByteSource {
    private let input: PlainSource
    var fractionRead: Double? { input.fractionRead }
    private let name: String
    /// Heap-allocated: zlib keeps a pointer back to its stream.
    private let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    private var inputBuffer = [UInt8](repeating: 0, count: chunkSize)
    /// How much of `inputBuffer` the last read filled; the decoder's
    /// unconsumed input is the tail of that.
    private var filled = 0
    /// A member ended; another may follow (`cat a.gz b.gz`).
    private var memberEnded = false
    private var finished = false

    init(_ input: PlainSource, name: String) throws {
        self.input = input
        self.name = name
        stream.initialize(to: z_stream())
        // 15 + 32: any window size, gzip or zlib header detected automatically.
        guard inflateInit2_(stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw ArchiveError(description: "\(name): cannot start the gzip decoder")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while !finished {
            if stream.pointee.avail_in == 0 {
                let count = try inputBuffer.withUnsafeMutableBytes { try input.read(into: $0) }
                if count == 0 {
                    if memberEnded { finished = true; break }
                    throw ArchiveError(.truncated, description: "\(name): the gzip data ends too early")
                }
                stream.pointee.avail_in = UInt32(count)
                filled = count
            }
            if memberEnded {
                // Another member starts with the gzip magic; anything else
                // after a complete member (tar's zero padding, say) is
                // ignored, as gzip -d ignores it.
                if inputBuffer[filled - Int(stream.pointee.avail_in)] != 0x1F { finished = true; break }
                inflateReset(stream)
                memberEnded = false
            }
            var failed = false
            let produced: Int = inputBuffer.withUnsafeMutableBufferPointer { input in
                stream.pointee.next_in = input.baseAddress! + (filled - Int(stream.pointee.avail_in))
                stream.pointee.next_out = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
                stream.pointee.avail_out = UInt32(buffer.count)
                let status = inflate(stream, Z_NO_FLUSH)
                if status == Z_STREAM_END { memberEnded = true }
                else if status != Z_OK && status != Z_BUF_ERROR { failed = true }
                return buffer.count - Int(stream.pointee.avail_out)
            }
            if failed { throw ArchiveError(.corrupt, description: "\(name): corrupt gzip data") }
            if produced > 0 { return produced }
        }
        return 0
    }
}

final class XzSource: ByteSource {
    private let input: PlainSource
    var fractionRead: Double? { input.fractionRead }
    private let name: String
    private var stream = cc_lzma_stream_init()
    private var inputBuffer = [UInt8](repeating: 0, count: chunkSize)
    private var filled = 0
    private var inputEnded = false
    private var finished = false

    init(_ input: PlainSource, name: String) throws {
        self.input = input
        self.name = name
        guard lzma_stream_decoder(&stream, UInt64.max, 0x08 /* LZMA_CONCATENATED, a macro */) == LZMA_OK else {
            throw ArchiveError(description: "\(name): cannot start the xz decoder")
        }
    }

    deinit { lzma_end(&stream) }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while !finished {
            if stream.avail_in == 0 && !inputEnded {
                let count = try inputBuffer.withUnsafeMutableBytes { try input.read(into: $0) }
                inputEnded = count == 0
                stream.avail_in = count
                filled = count
            }
            var failed = false, cut = false
            let produced: Int = inputBuffer.withUnsafeBufferPointer { input in
                stream.next_in = input.baseAddress! + (filled - stream.avail_in)
                stream.next_out = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
                stream.avail_out = buffer.count
                let status = lzma_code(&stream, inputEnded ? LZMA_FINISH : LZMA_RUN)
                if status == LZMA_STREAM_END { finished = true }
                // No progress with all input given: the stream stops short.
                else if status == LZMA_BUF_ERROR && inputEnded { cut = true }
                else if status != LZMA_OK { failed = true }
                return buffer.count - stream.avail_out
            }
            if failed { throw ArchiveError(.corrupt, description: "\(name): corrupt xz data") }
            if cut && produced == 0 { throw ArchiveError(.truncated, description: "\(name): the xz data ends too early") }
            if produced > 0 { return produced }
            if inputEnded && !finished { throw ArchiveError(.truncated, description: "\(name): the xz data ends too early") }
        }
        return 0
    }
}

final class Bzip2Source: ByteSource {
    private let input: PlainSource
    var fractionRead: Double? { input.fractionRead }
    private let name: String
    /// Heap-allocated: libbz2 keeps a pointer back to its stream.
    private let stream = UnsafeMutablePointer<bz_stream>.allocate(capacity: 1)
    private var inputBuffer = [UInt8](repeating: 0, count: chunkSize)
    private var filled = 0
    /// A stream ended; another may follow (pbzip2, `cat a.bz2 b.bz2`).
    private var streamEnded = false
    private var finished = false

    init(_ input: PlainSource, name: String) throws {
        self.input = input
        self.name = name
        stream.initialize(to: bz_stream())
        guard BZ2_bzDecompressInit(stream, 0, 0) == BZ_OK else {
            throw ArchiveError(description: "\(name): cannot start the bzip2 decoder")
        }
    }

    deinit {
        BZ2_bzDecompressEnd(stream)
        stream.deallocate()
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while !finished {
            if stream.pointee.avail_in == 0 {
                let count = try inputBuffer.withUnsafeMutableBytes { try input.read(into: $0) }
                if count == 0 {
                    if streamEnded { finished = true; break }
                    throw ArchiveError(.truncated, description: "\(name): the bzip2 data ends too early")
                }
                stream.pointee.avail_in = UInt32(count)
                filled = count
            }
            if streamEnded {
                // Start over on what remains, keeping the unread input.
                let remaining = stream.pointee.avail_in
                BZ2_bzDecompressEnd(stream)
                stream.pointee = bz_stream()
                BZ2_bzDecompressInit(stream, 0, 0)
                stream.pointee.avail_in = remaining
                streamEnded = false
            }
            var failed = false
            let produced: Int = inputBuffer.withUnsafeMutableBufferPointer { input in
                input.withMemoryRebound(to: CChar.self) { chars in
                    stream.pointee.next_in = chars.baseAddress! + (filled - Int(stream.pointee.avail_in))
                }
                stream.pointee.next_out = buffer.baseAddress!.assumingMemoryBound(to: CChar.self)
                stream.pointee.avail_out = UInt32(buffer.count)
                let status = BZ2_bzDecompress(stream)
                if status == BZ_STREAM_END { streamEnded = true } else if status != BZ_OK { failed = true }
                return buffer.count - Int(stream.pointee.avail_out)
            }
            if failed { throw ArchiveError(.corrupt, description: "\(name): corrupt bzip2 data") }
            if produced > 0 { return produced }
        }
        return 0
    }
}
