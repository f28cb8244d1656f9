internal import CCompression
import SystemPackage

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
        let plain = PlainSource(fd: try openInput(path, name: name), name: name)
        var magic = [UInt8](repeating: 0, count: 6)
        let count = try magic.withUnsafeMutableBytes { try plain.read(into: $0) }
        let head = Array(magic[..<count])
        plain.unread(head)
        if head.starts(with: gzipMagic) { return try DecodingSource<GzipDecoder>(plain, name: name) }
        if head.starts(with: xzMagic) { return try DecodingSource<XzDecoder>(plain, name: name) }
        if head.starts(with: bzip2Magic) { return try DecodingSource<Bzip2Decoder>(plain, name: name) }
        return plain
    }

    static let gzipMagic: [UInt8] = [0x1F, 0x8B]
    static let xzMagic: [UInt8] = [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]
    static let bzip2Magic = Array("BZh".utf8)

    /// `path` opened for reading, or a copy of standard input for "-".
    static func openInput(_ path: String, name: String) throws(ArchiveError) -> FileDescriptor {
        do {
            if path == "-" { return try FileDescriptor.standardInput.duplicate() }
            return try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        } catch {
            throw ArchiveError(description: "\(name): \(error)")
        }
    }

    static func isCompressed(_ head: [UInt8]) -> Bool {
        head.starts(with: gzipMagic) || head.starts(with: xzMagic) || head.starts(with: bzip2Magic)
    }
}

/// A file descriptor, with room to push back the bytes used to sniff it.
final class PlainSource: ByteSource {
    private let fd: FileDescriptor
    private let name: String
    private var pushedBack: [UInt8] = []

    init(fd: FileDescriptor, name: String) {
        self.fd = fd
        self.name = name
    }

    deinit { try? fd.close() }

    func unread(_ bytes: [UInt8]) { pushedBack = bytes + pushedBack }

    var fractionRead: Double? {
        guard let info = try? fd.stat(), info.type == .regular, info.size > 0,
              let offset = try? fd.seek(offset: 0, from: .current) else { return nil }
        return min(Double(offset) / Double(info.size), 1)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if !pushedBack.isEmpty {
            let count = min(buffer.count, pushedBack.count)
            buffer.copyBytes(from: pushedBack[..<count])
            pushedBack.removeFirst(count)
            return count
        }
        // Retried when a signal interrupts it.
        do { return try fd.read(into: buffer) } catch { throw ArchiveError(description: "\(name): \(error)") }
    }
}

/// Feeds compressed input to a decoder a chunk at a time.
private let chunkSize = 1 << 16

/// What one call of a decoder did.
struct DecodeStep {
    var consumed: Int
    var produced: Int
    /// A gzip member, an xz or a bzip2 stream ended in this call.
    var streamEnded: Bool
}

/// What differs between zlib, liblzma and libbz2; the reading loop they
/// share is DecodingSource's.
protocol StreamDecoder: AnyObject {
    /// The format's name in errors: "corrupt gzip data".
    static var format: String { get }
    /// nil when the library cannot start.
    init?()
    /// Decodes what it can of `input` into `output`; nil when the library
    /// refuses the data. `inputEnded`: no input comes after `input`.
    func decode(_ input: UnsafeBufferPointer<UInt8>, into output: UnsafeMutableRawBufferPointer,
                inputEnded: Bool) -> DecodeStep?
    /// After a stream ended, with more input that starts with `next`:
    /// whether another stream follows (and the decoder is ready for it)
    /// or the data is over.
    func restart(before next: UInt8) -> Bool
}

/// A compressed file decoded on the fly.
final class DecodingSource<Decoder: StreamDecoder>: ByteSource {
    private let input: PlainSource
    var fractionRead: Double? { input.fractionRead }
    private let name: String
    private let decoder: Decoder
    private var inputBuffer = [UInt8](repeating: 0, count: chunkSize)
    /// The part of `inputBuffer` read but not yet consumed by the decoder.
    private var pending = 0..<0
    private var inputEnded = false
    private var streamEnded = false
    private var finished = false

    init(_ input: PlainSource, name: String) throws {
        guard let decoder = Decoder() else {
            throw ArchiveError(description: "\(name): cannot start the \(Decoder.format) decoder")
        }
        self.input = input
        self.name = name
        self.decoder = decoder
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while !finished {
            if pending.isEmpty && !inputEnded {
                let count = try inputBuffer.withUnsafeMutableBytes { try input.read(into: $0) }
                pending = 0..<count
                inputEnded = count == 0
            }
            if streamEnded {
                // Another stream may follow (`cat a.gz b.gz`, pbzip2).
                guard let next = pending.first, decoder.restart(before: inputBuffer[next]) else {
                    finished = true
                    break
                }
                streamEnded = false
            }
            let step = inputBuffer.withUnsafeBufferPointer { bytes in
                decoder.decode(UnsafeBufferPointer(rebasing: bytes[pending]), into: buffer, inputEnded: inputEnded)
            }
            guard let step else { throw ArchiveError(.corrupt, description: "\(name): corrupt \(Decoder.format) data") }
            pending = (pending.lowerBound + step.consumed)..<pending.upperBound
            streamEnded = step.streamEnded
            if step.produced > 0 { return step.produced }
            // All the input given, and nothing more came of it.
            if inputEnded && !streamEnded {
                throw ArchiveError(.truncated, description: "\(name): the \(Decoder.format) data ends too early")
            }
        }
        return 0
    }
}

// A decoder whose init fails is still deinitialised (its stored properties
// were set): deinit is what frees the stream, in every case.
final class GzipDecoder: StreamDecoder {
    static let format = "gzip"
    /// Heap-allocated: zlib keeps a pointer back to its stream.
    private let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)

    init?() {
        stream.initialize(to: z_stream())
        // 15 + 32: any window size, gzip or zlib header detected automatically.
        guard inflateInit2_(stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            return nil
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    func decode(_ input: UnsafeBufferPointer<UInt8>, into output: UnsafeMutableRawBufferPointer,
                inputEnded: Bool) -> DecodeStep? {
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
        stream.pointee.avail_in = UInt32(input.count)
        stream.pointee.next_out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        stream.pointee.avail_out = UInt32(output.count)
        let status = inflate(stream, Z_NO_FLUSH)
        guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else { return nil }
        return DecodeStep(consumed: input.count - Int(stream.pointee.avail_in),
                          produced: output.count - Int(stream.pointee.avail_out),
                          streamEnded: status == Z_STREAM_END)
    }

    func restart(before next: UInt8) -> Bool {
        // Another member starts with the gzip magic; anything else after a
        // complete member (tar's zero padding, say) is ignored, as gzip -d
        // ignores it.
        guard next == 0x1F else { return false }
        inflateReset(stream)
        return true
    }
}

final class XzDecoder: StreamDecoder {
    static let format = "xz"
    private var stream = cc_lzma_stream_init()

    init?() {
        guard lzma_stream_decoder(&stream, UInt64.max, 0x08 /* LZMA_CONCATENATED, a macro */) == LZMA_OK else {
            return nil
        }
    }

    deinit { lzma_end(&stream) }

    func decode(_ input: UnsafeBufferPointer<UInt8>, into output: UnsafeMutableRawBufferPointer,
                inputEnded: Bool) -> DecodeStep? {
        stream.next_in = input.baseAddress
        stream.avail_in = input.count
        stream.next_out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        stream.avail_out = output.count
        let status = lzma_code(&stream, inputEnded ? LZMA_FINISH : LZMA_RUN)
        // No progress with all input given is the stream stopping short,
        // which the loop reports; any other error is corrupt data.
        guard status == LZMA_OK || status == LZMA_STREAM_END || (status == LZMA_BUF_ERROR && inputEnded) else {
            return nil
        }
        return DecodeStep(consumed: input.count - stream.avail_in, produced: output.count - stream.avail_out,
                          streamEnded: status == LZMA_STREAM_END)
    }

    /// LZMA_CONCATENATED decodes the streams that follow one another itself:
    /// the end it reports is the end of the data.
    func restart(before next: UInt8) -> Bool { false }
}

final class Bzip2Decoder: StreamDecoder {
    static let format = "bzip2"
    /// Heap-allocated: libbz2 keeps a pointer back to its stream.
    private let stream = UnsafeMutablePointer<bz_stream>.allocate(capacity: 1)

    init?() {
        stream.initialize(to: bz_stream())
        guard BZ2_bzDecompressInit(stream, 0, 0) == BZ_OK else {
            return nil
        }
    }

    deinit {
        BZ2_bzDecompressEnd(stream)
        stream.deallocate()
    }

    func decode(_ input: UnsafeBufferPointer<UInt8>, into output: UnsafeMutableRawBufferPointer,
                inputEnded: Bool) -> DecodeStep? {
        stream.pointee.next_in = UnsafeMutableRawPointer(mutating: input.baseAddress)?.assumingMemoryBound(to: CChar.self)
        stream.pointee.avail_in = UInt32(input.count)
        stream.pointee.next_out = output.baseAddress!.assumingMemoryBound(to: CChar.self)
        stream.pointee.avail_out = UInt32(output.count)
        let status = BZ2_bzDecompress(stream)
        guard status == BZ_OK || status == BZ_STREAM_END else { return nil }
        return DecodeStep(consumed: input.count - Int(stream.pointee.avail_in),
                          produced: output.count - Int(stream.pointee.avail_out),
                          streamEnded: status == BZ_STREAM_END)
    }

    /// libbz2 decodes one stream; the next one (pbzip2 writes many) needs a new start.
    func restart(before next: UInt8) -> Bool {
        BZ2_bzDecompressEnd(stream)
        stream.pointee = bz_stream()
        BZ2_bzDecompressInit(stream, 0, 0)
        return true
    }
}
