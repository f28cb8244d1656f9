import Foundation
import Testing

/// Imports of archives an attacker or an accident shaped: one bad message
/// never stops the others, a damaged archive stores nothing garbled, a huge
/// message costs neither quadratic time nor its size in memory.
@Suite("Importing hostile archives")
struct ImportHostileTests {
    private func write(_ text: String, _ fixture: MailFixture, _ name: String) throws -> URL {
        let url = fixture.directory.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// An archive of `count` plain messages; message `poisoned` (if any) has
    /// the Subject the test's rule picks out.
    static func archive(_ count: Int, prefix: String, poisoned: Int? = nil) -> String {
        var mbox = ""
        for i in 0..<count {
            let subject = i == poisoned ? "poison \(i)" : "message \(i)"
            mbox += "From s\(i)@example.org Mon Nov 24 09:00:00 2025\n"
            mbox += "From: s\(i)@example.org\nTo: me@example.org\nSubject: \(subject)\n"
            mbox += "Message-ID: <\(prefix)-\(i)@example.org>\n\nbody \(i)\n\n"
        }
        return mbox
    }

    /// The issue's List-Id rule builds, from one message, a tag longer than
    /// libnotmuch takes. That message costs nothing to the others of its
    /// batch, before and after it, and neither run stops on it: it gets a
    /// bounded tag (and if libnotmuch still refused one, the tag would be
    /// left out and logged).
    @Test func aMessageWhoseCapturedTagIsTooLongCostsOnlyItself() throws {
        let fixture = try MailFixture()
        try fixture.useRules(#"+list/$1/$2/$3/$4 -- header:List-Id~/^(\S+) (\S+) (\S+) (\S+)/"# + "\n"
                             + "+ruled -- header:Subject~/message/\n")
        let words = ["a", "b", "c", "d"].map { String(repeating: $0, count: 100) }.joined(separator: " ")
        let mbox = Self.archive(10, prefix: "poison", poisoned: 4)
            .replacingOccurrences(of: "Subject: poison 4", with: "List-Id: \(words)\nSubject: poison 4")
        let url = try write(mbox, fixture, "poison.mbox")
        for run in 1...2 {
            let result = try fixture.command(["import", "--tag", "archived", url.path])
            #expect(result.status == 0, "run \(run): \(result.stdout) \(result.stderr)")
            #expect(try fixture.count("tag:ruled and tag:archived and tag:inbox") == 9, "run \(run): \(result.stdout)")
            let tags = try fixture.tags("subject:poison")
            #expect(tags.contains("archived") && tags.contains { $0.hasPrefix("list/") }, "\(tags)")
            #expect(tags.allSatisfy { $0.utf8.count <= 200 }, "\(tags)")
        }
        try fixture.expectNothingNew()
    }

    /// A file that is not mail, in the middle of a batch, is reported, and
    /// the messages after it in the same batch are imported.
    @Test func aMessageThatIsNotMailCostsOnlyItself() throws {
        let fixture = try MailFixture()
        var mbox = Self.archive(3, prefix: "before")
        mbox += "From x@example.org Mon Nov 24 09:00:00 2025\nCc: a@example.org\nMessage-ID: <nomail@x>\n\nbody\n\n"
        mbox += Self.archive(3, prefix: "after")
        let url = try write(mbox, fixture, "mixed.mbox")
        let result = try fixture.command(["import", url.path])
        #expect(result.status == 65, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.hasPrefix("imported 6 "), "\(result.stdout)")
        let offset = Self.archive(3, prefix: "before").utf8.count
        #expect(result.stderr.contains("failed: \(url.path):25 (byte \(offset)): not an email"), "\(result.stderr)")
        #expect(try fixture.count() == 6)
        try fixture.expectNothingNew()
    }

    /// Issue 22: a header flood in the middle of a batch is refused before
    /// GMime parses it, reported with its place, and costs the others nothing.
    @Test func aHeaderFloodCostsOnlyItself() throws {
        let fixture = try MailFixture()
        var mbox = Self.archive(3, prefix: "before")
        mbox += "From x@example.org Mon Nov 24 09:00:00 2025\nFrom: x@example.org\nSubject: flood\n"
        mbox += "Message-ID: <flood@x>\n" + String(repeating: "X-H: v\n", count: 20_000) + "\nbody\n\n"
        mbox += Self.archive(3, prefix: "after")
        let url = try write(mbox, fixture, "flood.mbox")
        let result = try fixture.command(["import", url.path])
        #expect(result.status == 65, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.hasPrefix("imported 6 "), "\(result.stdout)")
        #expect(result.stderr.contains("more than 10000 lines"), "\(result.stderr)")
        #expect(try fixture.count() == 6)
        #expect(try fixture.count("id:flood@x") == 0)
        try fixture.expectNothingNew()
    }

    /// A message of one 100 MB line, over the default --max-message-size:
    /// reported with its place and not stored, the next message imported,
    /// nothing left in tmp/, and the import's peak memory far below the
    /// message's size (it was held whole before). A 3 MiB line under the
    /// limit is stored byte for byte.
    @Test func aHugeMessageIsRefusedWithBoundedMemory() throws {
        let fixture = try MailFixture()
        let url = fixture.directory.appendingPathComponent("huge.mbox")
        FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        let huge = "From a@example.org Mon Nov 24 09:00:00 2025\nFrom: a@example.org\nSubject: huge\n\n"
        try handle.write(contentsOf: Data(huge.utf8))
        let block = Data(repeating: UInt8(ascii: "y"), count: 1 << 20)
        for _ in 0..<100 { try handle.write(contentsOf: block) }
        let long = String(repeating: "z", count: 3 << 20)
        let rest = "\n\nFrom b@example.org Mon Nov 24 09:00:00 2025\nFrom: b@example.org\nSubject: long\n\n\(long)\n"
        try handle.write(contentsOf: Data(rest.utf8))
        try handle.close()

        let peakFile = fixture.directory.appendingPathComponent("peak")
        let result = try fixture.run(URL(fileURLWithPath: "/usr/bin/time"),
                                     ["-f", "%M", "-o", peakFile.path, MailFixture.deliverExecutable.path,
                                      "import", url.path], input: Data(), chunks: nil)
        #expect(result.status == 65, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.hasPrefix("imported 1 "), "\(result.stdout)")
        #expect(result.stderr.contains("failed: \(url.path):1 (byte 0): larger than --max-message-size"), "\(result.stderr)")
        // time(1) puts "Command exited with non-zero status 65" first.
        let timeOutput = try String(contentsOf: peakFile, encoding: .utf8)
        let peakKiB = timeOutput.split(separator: "\n").last.flatMap { Int($0) } ?? .max
        #expect(peakKiB < 60_000, "peak RSS \(timeOutput) KiB for a 100 MB message")
        let files = fixture.files()
        #expect(files.count == 1 && !files[0].hasPrefix("tmp/"), "\(files)")
        let expected = "From: b@example.org\nSubject: long\n\n\(long)\n"
        #expect(try fixture.contents(files[0]) == Data(expected.utf8))
        try fixture.expectNothingNew()
    }

    /// `text` compressed by `tool` (gzip, xz or bzip2).
    private func compressed(_ text: String, _ tool: String, _ fixture: MailFixture) throws -> Data {
        let plain = try fixture.file("plain-\(tool)", text)
        let result = try fixture.run(URL(fileURLWithPath: "/usr/bin/env"), [tool, "-k", "-1", plain.path], input: Data(), chunks: nil)
        #expect(result.status == 0, "\(tool): \(result.stderr)")
        let suffix = ["gzip": "gz", "xz": "xz", "bzip2": "bz2"][tool]!
        return try Data(contentsOf: URL(fileURLWithPath: plain.path + "." + suffix))
    }

    /// Bytes flipped in the middle of a compressed archive: the decoder
    /// would notice only later (at a block's or the member's checksum), and
    /// hundreds of garbled messages were stored before it did. Nothing from
    /// such an archive is stored now, from a file or from standard input.
    @Test(arguments: ["gzip", "xz", "bzip2"])
    func aCorruptCompressedArchiveStoresNothing(tool: String) throws {
        let fixture = try MailFixture()
        var bytes = try compressedArchive(tool, fixture)
        for index in (bytes.count / 2)..<(bytes.count / 2 + 16) { bytes[index] ^= 0x55 }
        let url = fixture.directory.appendingPathComponent("corrupt.mbox.\(tool)")
        try bytes.write(to: url)
        let result = try fixture.command(["import", url.path])
        #expect(result.status == 65, "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("corrupt \(tool) data; nothing from this archive is stored"),
                "\(result.stderr)")
        let piped = try fixture.run(MailFixture.deliverExecutable, ["import", "-"], input: bytes, chunks: nil)
        #expect(piped.status == 65 && piped.stderr.contains("nothing from this archive is stored"), "\(piped.stderr)")
        #expect(try fixture.count() == 0)
        #expect(fixture.files().isEmpty, "\(fixture.files())")
    }

    /// Cut at two thirds: the messages before the cut are stored, each
    /// exactly as it was, and the cut is reported.
    @Test(arguments: ["gzip", "xz", "bzip2"])
    func aTruncatedCompressedArchiveKeepsItsIntactMessages(tool: String) throws {
        let fixture = try MailFixture()
        let bytes = try compressedArchive(tool, fixture)
        let url = fixture.directory.appendingPathComponent("cut.mbox.\(tool)")
        try bytes.prefix(bytes.count * 2 / 3).write(to: url)
        let result = try fixture.command(["import", url.path])
        #expect(result.status == 65, "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("data ends too early"), "\(result.stderr)")
        let stored = fixture.files()
        #expect(stored.count > 100, "\(result.stdout)")
        let messages = Set(Self.messages(2000).map { Data($0.utf8) })
        for path in stored { #expect(messages.contains(try fixture.contents(path)), "\(path) is not a message of the archive") }
        try fixture.expectNothingNew()
    }

    /// Several bzip2 blocks (of 100 kB at -1), and room for the damage to land
    /// well inside the data.
    private func compressedArchive(_ tool: String, _ fixture: MailFixture) throws -> Data {
        let text = Self.messages(2000).map { "From s@example.org Mon Nov 24 09:00:00 2025\n" + $0 + "\n" }.joined()
        return try compressed(text, tool, fixture)
    }

    /// Distinct messages with bodies that do not compress to nothing.
    static func messages(_ count: Int) -> [String] {
        (0..<count).map { i in
            var body = ""
            for line in 0..<12 { body += "line \(line) of message \(i): \(i * 7919 % 10007) \(line * i % 977)\n" }
            return "From: s\(i)@example.org\nSubject: message \(i)\nMessage-ID: <z-\(i)@example.org>\n\n" + body
        }
    }

    /// An import killed after putting files in place and before its commit,
    /// then `notmuch new`, which indexes those files with new.tags only,
    /// then the import again: it must apply what it still owes (its tags,
    /// the rules, the Status flags) once, without new.tags a second time,
    /// and a third run must change nothing. The killed run's files are made
    /// here as it makes them (`new/SHA1.import`), so the test does not hang
    /// on when a kill lands.
    @Test func aRerunAfterNotmuchNewAppliesWhatIsOwed() throws {
        let fixture = try MailFixture()
        try fixture.useRules("+ruled -- header:Subject~/message/\n")
        let count = 40
        for directory in ["new", "cur", "tmp"] {
            try FileManager.default.createDirectory(at: fixture.mailRoot.appendingPathComponent(directory),
                                                    withIntermediateDirectories: true)
        }
        var mbox = ""
        for (i, message) in Self.messages(count).enumerated() {
            let status = i % 4 == 0 ? "Status: RO\nX-Status: F\n" : ""
            let text = message.replacingOccurrences(of: "\n\n", with: "\n" + status + "\n")
            mbox += "From s@example.org Mon Nov 24 09:00:00 2025\n" + text + "\n"
            // The first half was left in new/ by the killed run (a message
            // with Status flags goes to cur/, under its flags).
            guard i < count / 2 else { continue }
            let staged = try fixture.file("staged-\(i)", text)
            let sum = try fixture.run(URL(fileURLWithPath: "/usr/bin/sha1sum"), [staged.path], input: Data(), chunks: nil)
            let digest = String(sum.stdout.prefix(40))
            let name = status.isEmpty ? "new/\(digest).import" : "cur/\(digest).import:2,FS"
            try FileManager.default.moveItem(at: staged, to: fixture.mailRoot.appendingPathComponent(name))
        }
        let url = try write(mbox, fixture, "resumed.mbox")
        _ = try fixture.notmuch("new")
        #expect(try fixture.count("tag:inbox") == count / 2)
        // Read by its owner in the meantime: new.tags must not bring unread back.
        _ = try fixture.notmuch("tag", "-unread", "id:z-1@example.org")

        let rerun = try fixture.command(["import", "--tag", "archived", "--remove-tag", "inbox", url.path])
        #expect(rerun.status == 0, "\(rerun.stdout) \(rerun.stderr)")
        #expect(try fixture.count("tag:archived and tag:ruled") == count, "\(rerun.stdout)")
        #expect(try fixture.count("tag:inbox") == 0)
        #expect(try fixture.count("tag:flagged") == count / 4)
        #expect(try fixture.count("tag:unread") == count - count / 4 - 1)
        #expect(fixture.files().count == count)

        // Applied once: a change made since is not undone by another run.
        _ = try fixture.notmuch("tag", "+inbox", "id:z-2@example.org")
        let third = try fixture.command(["import", "--tag", "archived", "--remove-tag", "inbox", url.path])
        #expect(third.stdout.hasPrefix("imported 0 ") && third.stdout.contains("skipped \(count) "), "\(third.stdout)")
        #expect(try fixture.count("tag:inbox") == 1)
        try fixture.expectNothingNew()
    }

    /// The check of compressed archives reads them twice; a pipe given as a
    /// path (`import <(zcat …)`) cannot be read twice, and must be imported
    /// whole all the same, plain or compressed, and refused when corrupt.
    @Test func archivesFromPipesAreReadOnce() throws {
        let fixture = try MailFixture()
        let text = Self.messages(30).map { "From s@example.org Mon Nov 24 09:00:00 2025\n" + $0 + "\n" }.joined()
        let plain = try write(text, fixture, "pipe.mbox")
        let gzip = fixture.directory.appendingPathComponent("pipe.mbox.gz")
        var bytes = try compressed(text, "gzip", fixture)
        try bytes.write(to: gzip)
        for index in (bytes.count / 2)..<(bytes.count / 2 + 8) { bytes[index] ^= 0x55 }
        let corrupt = fixture.directory.appendingPathComponent("corrupt.mbox.gz")
        try bytes.write(to: corrupt)
        let script = "\"$0\" import <(cat \"$1\") <(cat \"$2\") <(cat \"$3\")"
        let result = try fixture.run(URL(fileURLWithPath: "/bin/bash"),
                                     ["-c", script, MailFixture.deliverExecutable.path, plain.path, gzip.path, corrupt.path],
                                     input: Data(), chunks: nil)
        #expect(result.status == 65, "\(result.stdout) \(result.stderr)")
        // The same 30 messages twice: stored once, skipped the second time.
        #expect(result.stdout.hasPrefix("imported 30 ") && result.stdout.contains("skipped 30 "), "\(result.stdout)")
        #expect(result.stderr.contains("corrupt gzip data; nothing from this archive is stored"), "\(result.stderr)")
        #expect(try fixture.count() == 30)
        #expect(fixture.files().count == 30, "\(fixture.files())")
    }
}
