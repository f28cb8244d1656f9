import FuzzSupport
import Mbox

/// MboxReader on any bytes, in the format the first byte chooses. The rest
/// is the archive, read twice: in one piece and in short reads (1 to 4093
/// bytes, as the first byte says). A streaming reader must split it the
/// same way both times, each message's offset must be a From_ line of the
/// archive, and messages never hold more than the archive. Input that
/// starts like gzip, xz or bzip2 goes through a file and Archive.open, so
/// the decoders run too.
///
/// Size and depth, not only content: when the second byte has its top bit
/// set, a slice of the archive (chosen by the next bytes) is repeated up to
/// thousands of times, which makes lines longer than the reader's 64 KiB
/// pieces, header blocks longer than what it keeps, and runs of `>` before
/// `From ` deeper than a piece, from a short input. Every piece handed to
/// the writer must stay within 64 KiB, the kept header block within
/// MboxReader.headerLimit, and a message's size must be what was written.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMbox(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let format = MboxFormat.allCases[Int(input[0]) % MboxFormat.allCases.count]
    let archive = expanded(Array(input.dropFirst()))

    if isCompressed(archive) {
        compressedFile.write(archive)
        guard let source = try? Archive.open(compressedFile.path) else { return 0 }
        _ = split(MboxReader(source: source, format: format, name: "fuzz"))
        return 0
    }

    let whole = split(MboxReader(source: MemorySource(archive, step: Int.max), format: format, name: "fuzz"))
    // Reads of a byte or a few cross every boundary; longer ones are
    // cheaper (fewer calls for the same archive).
    let step = [1, 2, 3, 7, 16, 61, 256, 4093][Int(input[0] / 5) % 8]
    let pieces = split(MboxReader(source: MemorySource(archive, step: step), format: format, name: "fuzz"))
    if whole != pieces {
        fatalError("\(format): \(whole.count) results in one read, \(pieces.count) in reads of \(step) bytes")
    }
    var total = 0
    var previous = -1
    for case .message(let bytes, _, let offset, let line) in whole {
        total += bytes.count
        guard offset > previous, offset < archive.count, archive[offset...].starts(with: Array("From ".utf8)), line >= 1 else {
            fatalError("\(format): a message at offset \(offset) (line \(line)) after \(previous)")
        }
        previous = offset
    }
    if total > archive.count { fatalError("\(format): \(total) message bytes from an archive of \(archive.count)") }
    return 0
}

enum Outcome: Equatable {
    case message(bytes: [UInt8], envelope: String, offset: Int, line: Int)
    case error(String)
}

/// Every message, then the error if one ended the reading; streamed, with
/// the bounds of the streaming checked on the way.
private func split(_ reader: MboxReader) -> [Outcome] {
    var outcomes: [Outcome] = []
    do {
        while true {
            var bytes: [UInt8] = []
            let entry = try reader.next(writingTo: { piece in
                if piece.count > 1 << 16 { fatalError("a piece of \(piece.count) bytes") }
                bytes += piece
            })
            guard let entry else { break }
            if entry.size != bytes.count { fatalError("size \(entry.size), \(bytes.count) bytes written") }
            if entry.headers.count > MboxReader.headerLimit { fatalError("\(entry.headers.count) header bytes kept") }
            outcomes.append(.message(bytes: bytes, envelope: entry.envelope, offset: entry.offset, line: entry.line))
            if outcomes.count > 1 << 16 { fatalError("more messages than bytes") }
        }
    } catch {
        outcomes.append(.error("\(error)"))
    }
    return outcomes
}

/// The archive, or (top bit of its first byte set) the archive with one of
/// its slices repeated: bytes 1 and 2 choose where the slice starts and
/// ends, byte 3 how often it repeats (up to 255 × 64 times), capped at
/// 4 MiB so that a run stays fast.
private func expanded(_ archive: [UInt8]) -> [UInt8] {
    guard archive.count > 4, archive[0] & 0x80 != 0 else { return archive }
    let body = Array(archive.dropFirst(4))
    guard !body.isEmpty else { return archive }
    let start = Int(archive[1]) % body.count
    let end = min(body.count, start + 1 + Int(archive[2]))
    let slice = body[start..<end]
    let times = min(Int(archive[3]) * 64 + 1, (4 << 20) / max(slice.count, 1))
    var result = Array(body[..<start])
    result.reserveCapacity(body.count + slice.count * times)
    for _ in 0..<times { result += slice }
    result += body[end...]
    return result
}

private func isCompressed(_ bytes: [UInt8]) -> Bool {
    bytes.starts(with: [0x1F, 0x8B]) || bytes.starts(with: [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00])
        || bytes.starts(with: Array("BZh".utf8))
}

/// An archive in memory, handed out at most `step` bytes per read.
private final class MemorySource: ByteSource {
    private let bytes: [UInt8]
    private let step: Int
    private var position = 0

    init(_ bytes: [UInt8], step: Int) {
        self.bytes = bytes
        self.step = step
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = min(buffer.count, step, bytes.count - position)
        guard count > 0 else { return 0 }
        bytes[position..<(position + count)].withUnsafeBytes { buffer.copyMemory(from: $0) }
        position += count
        return count
    }
}

/// Compressed input goes through a file, as Archive.open reads a path.
private let compressedFile = ScratchFile(prefix: "fuzz-mbox")
