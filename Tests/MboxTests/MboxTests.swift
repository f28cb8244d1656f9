import Foundation
@testable import Mbox
import Testing

/// A byte source over memory that hands out at most `step` bytes a call.
final class MemorySource: ByteSource {
    let bytes: [UInt8]
    var position = 0
    let step: Int
    init(_ text: String, step: Int = 7) { bytes = Array(text.utf8); self.step = step }
    init(bytes: [UInt8], step: Int = 4096) { self.bytes = bytes; self.step = step }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = min(step, buffer.count, bytes.count - position)
        buffer.copyBytes(from: bytes[position..<(position + count)])
        position += count
        return count
    }
}

func split(_ text: String, _ format: MboxFormat = .auto, step: Int = 7) throws -> [MboxMessage] {
    let reader = MboxReader(source: MemorySource(text, step: step), format: format, name: "test")
    var messages: [MboxMessage] = []
    while let message = try reader.next() { messages.append(message) }
    return messages
}

func texts(_ messages: [MboxMessage]) -> [String] { messages.map { String(decoding: $0.bytes, as: UTF8.self) } }

@Suite struct MboxReaderTests {
    @Test func splitsOnFromLinesAfterBlankLines() throws {
        let mbox = """
            From alice@example.org Mon Nov 24 09:00:00 2025
            Subject: one

            body one
            From here on, a line that looks like a separator but follows no blank line

            From bob@example.org Mon Nov 24 09:01:00 2025
            Subject: two

            body two

            """
        let messages = try split(mbox)
        #expect(texts(messages) == [
            "Subject: one\n\nbody one\nFrom here on, a line that looks like a separator but follows no blank line\n",
            "Subject: two\n\nbody two\n",
        ])
        #expect(messages[0].envelope == "alice@example.org Mon Nov 24 09:00:00 2025")
        #expect(messages[1].line == 7)
        let bob = mbox.range(of: "From bob@")!.lowerBound
        #expect(messages[1].offset == mbox.utf8.distance(from: mbox.startIndex, to: bob))
    }

    @Test func aBlankLineThenFromWithoutADateIsBody() throws {
        let mbox = "From a@b Mon Nov 24 09:00:00 2025\nSubject: x\n\nFrom the start of time\nend\n"
        #expect(texts(try split(mbox)) == ["Subject: x\n\nFrom the start of time\nend\n"])
    }

    @Test func mboxrdUnquotesOneLevel() throws {
        let mbox = "From a@b Mon Nov 24 09:00:00 2025\nSubject: x\n\n>From quoted\n>>From twice\n>not from\n\n"
        #expect(texts(try split(mbox, .mboxrd)) == ["Subject: x\n\nFrom quoted\n>From twice\n>not from\n"])
        #expect(texts(try split(mbox, .mboxo)) == ["Subject: x\n\nFrom quoted\n>>From twice\n>not from\n"])
        #expect(texts(try split(mbox, .mboxcl2)) == ["Subject: x\n\n>From quoted\n>>From twice\n>not from\n"])
    }

    @Test func crlfArchives() throws {
        let mbox = "From a@b Mon Nov 24 09:00:00 2025\r\nSubject: x\r\n\r\nbody\r\n\r\nFrom c@d Mon Nov 24 09:00:00 2025\r\nSubject: y\r\n\r\nb2\r\n"
        #expect(texts(try split(mbox)) == ["Subject: x\r\n\r\nbody\r\n", "Subject: y\r\n\r\nb2\r\n"])
    }

    @Test func lastMessageWithoutTrailingNewlineAndEmptyArchive() throws {
        #expect(texts(try split("From a@b Mon Nov 24 09:00:00 2025\nSubject: x\n\nno newline")) == ["Subject: x\n\nno newline"])
        #expect(try split("").isEmpty)
    }

    @Test func notAnMboxIsRefused() {
        #expect(throws: MboxError.self) { try split("Subject: plain message\n\nbody\n") }
        #expect(throws: MboxError.self) { try split("From: someone@example.org\nSubject: x\n\n") }
    }

    @Test func pipermailSeparators() throws {
        let mbox = "From user at example.org  Mon Mar  4 10:00:00 2024\nFrom: user at example.org (User)\nSubject: [list] hi\n\nbody\n\nFrom other at example.org  Tue Mar  5 11:00:00 2024\nSubject: two\n\nb\n"
        #expect(try split(mbox).count == 2)
    }

    @Test func contentLengthIsUsedWhenConsistent() throws {
        let body = "line\n\nFrom inside the body Mon Nov 24 09:00:00 2025\nmore\n"
        let mbox = "From a@b Mon Nov 24 09:00:00 2025\nContent-Length: \(body.utf8.count)\nSubject: x\n\n\(body)\nFrom c@d Mon Nov 24 09:00:00 2025\nSubject: y\n\nb\n"
        #expect(texts(try split(mbox, .mboxcl2)) == ["Content-Length: \(body.utf8.count)\nSubject: x\n\n\(body)", "Subject: y\n\nb\n"])
        // Without Content-Length support the From_ line inside splits it.
        #expect(try split(mbox, .mboxrd).count == 3)
        // A wrong length is ignored: line splitting takes over.
        let wrong = mbox.replacingOccurrences(of: "Content-Length: \(body.utf8.count)", with: "Content-Length: 7")
        #expect(try split(wrong, .mboxcl2).count == 3)
    }

    /// Found by FuzzMbox: after a counted body, the check for a From_ line
    /// looked at 2 KiB at once, so a body line "From …" passed on the
    /// strength of a time and a year on the lines after it, and was lost.
    @Test func aWrongLengthFollowedByABodyFromLineLosesNothing() throws {
        let rest = "From here on, the body goes on: the length was wrong\nwith a meeting at 12:00 in 2025\nand a last line\n"
        let mbox = "From a@example.org Mon Nov 24 09:00:00 2025\nContent-Length: 5\n\nbody\n" + rest
        #expect(texts(try split(mbox, .mboxcl2)) == ["Content-Length: 5\n\nbody\n" + rest])
    }

    @Test(arguments: [1, 2, 3, 5, 64, 100_000])
    func chunkSizeDoesNotMatter(step: Int) throws {
        let mbox = "From a@b Mon Nov 24 09:00:00 2025\nSubject: x\n\n>From q\n\nFrom c@d Mon Nov 24 09:00:00 2025\nSubject: y\n\nb\n"
        #expect(texts(try split(mbox, step: step)) == ["Subject: x\n\nFrom q\n", "Subject: y\n\nb\n"])
    }
}

/// Messages are streamed: the writer gets pieces of bounded size, in order,
/// whatever the length of a line or of a message.
@Suite struct StreamingTests {
    /// The pieces of each message, as the writer got them.
    private func stream(_ bytes: [UInt8], _ format: MboxFormat = .auto) throws -> [(entry: MboxEntry, pieces: [[UInt8]])] {
        let reader = MboxReader(source: MemorySource(bytes: bytes, step: 65_536), format: format, name: "test")
        var result: [(MboxEntry, [[UInt8]])] = []
        while true {
            var pieces: [[UInt8]] = []
            guard let entry = try reader.next(writingTo: { pieces.append(Array($0)) }) else { return result }
            result.append((entry, pieces))
        }
    }

    /// A 40 MiB line (after a `>From ` quote and before a second message):
    /// handed over in pieces no larger than 64 KiB, and exact once joined.
    @Test func aLongLineComesInBoundedPieces() throws {
        let line = Array(">From ".utf8) + [UInt8](repeating: UInt8(ascii: "y"), count: 40 << 20) + [10]
        let head = Array("From a@b Mon Nov 24 09:00:00 2025\nSubject: long\n\n".utf8)
        let next = Array("\nFrom c@d Mon Nov 24 09:00:00 2025\nSubject: next\n\nb\n".utf8)
        let messages = try stream(head + line + next)
        #expect(messages.count == 2)
        let pieces = messages[0].pieces
        #expect(pieces.allSatisfy { $0.count <= 1 << 16 }, "largest piece \(pieces.map(\.count).max() ?? 0)")
        let joined = pieces.flatMap { $0 }
        #expect(joined.count == messages[0].entry.size)
        #expect(joined == Array("Subject: long\n\n".utf8) + line.dropFirst())
        #expect(messages[1].entry.line == 6)
        #expect(messages[1].entry.offset == head.count + line.count + 1)
        #expect(String(decoding: messages[1].pieces.flatMap { $0 }, as: UTF8.self) == "Subject: next\n\nb\n")
    }

    /// An archive that is one endless header: what is kept of the header
    /// block is bounded, and the message is still whole.
    @Test func theHeaderBlockKeptIsBounded() throws {
        var text = "From a@b Mon Nov 24 09:00:00 2025\nSubject: x\n"
        for i in 0..<40_000 { text += "X-Filler-\(i): some header value\n" }
        let messages = try stream(Array(text.utf8))
        #expect(messages.count == 1)
        #expect(messages[0].entry.headers.count == MboxReader.headerLimit)
        #expect(messages[0].entry.headers.starts(with: Array("Subject: x\n".utf8)))
        #expect(messages[0].entry.size == text.utf8.count - 34)
    }
}

@Suite struct CompressedArchiveTests {
    private func roundTrip(_ tool: [String]) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mbox-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var mbox = ""
        for i in 0..<300 { mbox += "From a@b Mon Nov 24 09:00:00 2025\nSubject: \(i)\n\n" + String(repeating: "line \(i)\n", count: 50) + "\n" }
        let plain = directory.appendingPathComponent("archive")
        try mbox.write(to: plain, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = tool + [plain.path]
        try process.run()
        process.waitUntilExit()
        let compressed = try FileManager.default.contentsOfDirectory(atPath: directory.path)[0]
        #expect(compressed != "archive")
        let reader = MboxReader(source: try Archive.open(directory.appendingPathComponent(compressed).path), name: compressed)
        var count = 0
        while let message = try reader.next() {
            #expect(String(decoding: message.bytes, as: UTF8.self).hasPrefix("Subject: \(count)\n"))
            count += 1
        }
        #expect(count == 300)
    }

    /// `cat a.Z b.Z`: several compressed members make one archive.
    private func concatenated(_ tool: String) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mbox-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var whole = Data()
        for part in 0..<3 {
            let plain = directory.appendingPathComponent("part\(part)")
            try "From a@b Mon Nov 24 09:00:00 2025\nSubject: \(part)\n\nbody \(part)\n\n".write(to: plain, atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [tool, "-c", plain.path]
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            whole.append(out.fileHandleForReading.readDataToEndOfFile())
            process.waitUntilExit()
        }
        let archive = directory.appendingPathComponent("all")
        try whole.write(to: archive)
        let reader = MboxReader(source: try Archive.open(archive.path), name: "all")
        var bodies: [String] = []
        while let message = try reader.next() { bodies.append(String(decoding: message.bytes, as: UTF8.self)) }
        #expect(bodies == (0..<3).map { "Subject: \($0)\n\nbody \($0)\n" })
    }

    @Test func concatenatedGzip() throws { try concatenated("gzip") }
    @Test func concatenatedBzip2() throws { try concatenated("bzip2") }
    @Test func gzip() throws { try roundTrip(["gzip"]) }
    @Test func xz() throws { try roundTrip(["xz"]) }
    @Test func bzip2() throws { try roundTrip(["bzip2"]) }
}
