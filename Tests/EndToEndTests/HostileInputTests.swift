import Foundation
import Testing

/// Odd and hostile messages: each is delivered or refused with a clear
/// error, never a crash; and the database always agrees with the maildir.
@Suite("Hostile and odd input")
struct HostileInputTests {
    private func deliverAndCheck(_ bytes: Data, sourceLocation: SourceLocation = #_sourceLocation) throws -> MailFixture.Result {
        let fixture = try MailFixture()
        let result = try fixture.deliver(bytes: bytes)
        #expect([0, 65].contains(result.status), "status \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
        if result.status == 0 {
            #expect(fixture.files().count == 1, sourceLocation: sourceLocation)
            #expect(try fixture.count() == 1, sourceLocation: sourceLocation)
            #expect(try fixture.contents(fixture.files()[0]) == bytes, sourceLocation: sourceLocation)
        } else {
            #expect(result.stderr.hasPrefix("notmuch-deliver: "), sourceLocation: sourceLocation)
            #expect(fixture.files().isEmpty, sourceLocation: sourceLocation)
        }
        try fixture.expectNothingNew(sourceLocation: sourceLocation)
        return result
    }

    @Test func nulBytes() throws {
        var bytes = Data("From: a@example.org\nSubject: nul\u{0}inside\nMessage-ID: <nul@x>\n\nbody\u{0}\u{0}end\n".utf8)
        bytes.append(contentsOf: [0, 0, 0])
        #expect(try deliverAndCheck(bytes).status == 0)
    }

    @Test func megabyteHeaderLine() throws {
        let long = String(repeating: "a", count: 1 << 20)
        #expect(try deliverAndCheck(Data("From: a@example.org\nX-Long: \(long)\nSubject: long\n\nbody\n".utf8)).status == 0)
    }

    /// Issue 22: a header flood is refused before GMime parses it (the old
    /// build took ~480 bytes a line); just under the limit is delivered.
    @Test func headerFloodOverTheLimit() throws {
        let head = "From: a@example.org\nSubject: flood\nMessage-ID: <flood@x>\n"
        let over = try deliverAndCheck(Data((head + String(repeating: "X-H: v\n", count: 9_998) + "\nb\n").utf8))
        #expect(over.status == 65 && over.stderr.contains("more than 10000 lines"), "\(over.stderr)")
        let under = try deliverAndCheck(Data((head + String(repeating: "X-H: v\n", count: 9_997) + "\nb\n").utf8))
        #expect(under.status == 0, "\(under.stderr)")
    }

    @Test func mimePartFloodOverTheLimit() throws {
        let head = "From: a@example.org\nSubject: parts\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
        let result = try deliverAndCheck(Data((head + String(repeating: "--b\n\n\n", count: 50_001) + "--b--\n").utf8))
        #expect(result.status == 65 && result.stderr.contains("'--'"), "\(result.stderr)")
    }

    @Test func noHeadersAtAll() throws {
        #expect(try deliverAndCheck(Data("\n\njust a body\n".utf8)).status == 65)
    }

    @Test func headersOnly() throws {
        #expect(try deliverAndCheck(Data("From: a@example.org\nSubject: only headers\n".utf8)).status == 0)
    }

    @Test func repeatedHeaders() throws {
        let text = "From: a@example.org\nFrom: b@example.org\nSubject: one\nSubject: two\nMessage-ID: <r1@x>\nMessage-ID: <r2@x>\n\nb\n"
        #expect(try deliverAndCheck(Data(text.utf8)).status == 0)
    }

    @Test func tenKilobyteMessageID() throws {
        let id = String(repeating: "i", count: 10_000) + "@example.org"
        #expect(try deliverAndCheck(Data("From: a@example.org\nSubject: long id\nMessage-ID: <\(id)>\n\nb\n".utf8)).status == 0)
    }

    @Test func invalidUTF8Everywhere() throws {
        var bytes = Data("From: ".utf8)
        bytes.append(contentsOf: [0xC3, 0x28, 0xFF, 0xFE])
        bytes.append(Data(" <a@example.org>\nSubject: ".utf8))
        bytes.append(contentsOf: [0xED, 0xA0, 0x80, 0xF8, 0x88, 0x80])
        bytes.append(Data("\n\n".utf8))
        bytes.append(contentsOf: (0..<2000).map { UInt8(truncatingIfNeeded: $0 &* 37) })
        #expect(try deliverAndCheck(bytes).status == 0)
    }

    @Test func largeMessageIsStreamed() throws {
        // 32 MiB through a pipe: stored byte for byte; the delivery's memory
        // does not grow with the message (it copies 64 KiB at a time).
        let line = String(repeating: "0123456789abcdef", count: 4) + "\n"
        var bytes = Data("From: a@example.org\nSubject: big\nMessage-ID: <big@x>\n\n".utf8)
        bytes.append(Data(String(repeating: line, count: (32 << 20) / line.utf8.count).utf8))
        #expect(try deliverAndCheck(bytes).status == 0)
    }
}

/// A full disk, for real: a 1 MiB tmpfs as the mail root. Mounting needs
/// root; without it the suite is reported as skipped, not passed.
@Suite("Full disk", .serialized,
       .enabled(if: canMountTmpfs, "cannot mount a tmpfs here (needs root, or CAP_SYS_ADMIN)"))
struct FullDiskTests {
    @Test func fullDiskTempfailsAndLeavesNothing() throws {
        let fixture = try MailFixture()
        // A folder of the mail root on a disk of its own; the database stays where it is.
        let small = fixture.mailRoot.appendingPathComponent("Small")
        try mountTmpfs(on: small, options: "size=1m")
        defer { unmount(small) }
        try makeMaildir(small)
        let big = "From: a@example.org\nSubject: too big\n\n" + String(repeating: "x", count: 3 << 20)
        let result = try fixture.deliver(big, ["--folder", "Small"])
        #expect(result.status == 75)
        #expect(result.stderr.contains("No space left on device"), "\(result.stderr)")
        #expect(try maildirEntries(small).isEmpty)
        // Space back: the retry goes through.
        let fits = sampleMessage(id: "fits@example.org")
        #expect(try fixture.deliver(fits, ["--folder", "Small"]).status == 0)
        #expect(try fixture.count("id:fits@example.org") == 1)
    }

    /// The database starts opening as soon as the message is written, while
    /// the file is still being synced and linked into new/. When the link
    /// fails after that (here new/ is another filesystem: EXDEV), the
    /// delivery must still defer cleanly and leave the database free.
    @Test func failureAfterTheOpenStartedDefersAndFreesTheDatabase() throws {
        let fixture = try MailFixture()
        let folder = fixture.mailRoot.appendingPathComponent("Split")
        try makeMaildir(folder)
        let newDirectory = folder.appendingPathComponent("new")
        try mountTmpfs(on: newDirectory, options: "size=1m")
        defer { unmount(newDirectory) }
        let result = try fixture.deliver(sampleMessage(id: "split@example.org"), ["--folder", "Split"])
        #expect(result.status == 75, "\(result.stderr)")
        #expect(result.stderr.contains("Invalid cross-device link"), "\(result.stderr)")
        #expect(try maildirEntries(folder).isEmpty)
        // Nothing holds the lock or the flusher turn: the next delivery is
        // indexed at once, not queued.
        let next = try fixture.deliver(sampleMessage(id: "after-split@example.org"), ["--lock-timeout", "2"])
        #expect(next.status == 0, "\(next.stderr)")
        #expect(try fixture.count("id:after-split@example.org") == 1)
        #expect(try fixture.count("id:split@example.org") == 0)
    }

    /// The queue's entry is a hard link to the message; with the queue on
    /// another filesystem (a database kept apart from the maildir) the link
    /// fails (EXDEV) and the record goes to a file instead.
    @Test func aQueueOnAnotherFilesystemGetsRecordFiles() throws {
        let fixture = try MailFixture()
        let queue = fixture.mailRoot.appendingPathComponent(".notmuch/notmuch-deliver-queue")
        try mountTmpfs(on: queue, options: "size=1m,mode=0700")
        defer { unmount(queue) }
        let holder = try LockHolder(fixture)
        let result = try fixture.deliver(sampleMessage(id: "apart@example.org"), ["--lock-timeout", "0.2", "+apart"])
        holder.release()
        #expect(result.status == 0, "\(result.stderr)")
        let entries = try FileManager.default.contentsOfDirectory(atPath: queue.path).filter { $0 != "flusher.lock" }
        #expect(entries.count == 1 && entries[0].hasSuffix(".record"), "\(entries)")
        #expect(try fixture.command(["flush"]).status == 0)
        #expect(try fixture.tags("id:apart@example.org") == ["apart", "inbox", "unread"])
        try fixture.expectNothingNew()
    }
}

/// Whether this process may mount a tmpfs: tried once, on a directory of its own.
private let canMountTmpfs: Bool = {
    let probe = FileManager.default.temporaryDirectory.appendingPathComponent("tmpfs-probe-\(getpid())")
    defer { try? FileManager.default.removeItem(at: probe) }
    guard (try? mountTmpfs(on: probe, options: "size=64k")) != nil else { return false }
    unmount(probe)
    return true
}()

/// Mounts a tmpfs on `directory`, made first when missing.
private func mountTmpfs(on directory: URL, options: String) throws {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let status = try runTool("/bin/mount", ["-t", "tmpfs", "-o", options, "tmpfs", directory.path])
    guard status == 0 else { throw MountFailed(status: status, path: directory.path) }
}

private func unmount(_ directory: URL) {
    _ = try? runTool("/bin/umount", [directory.path])
}

private struct MountFailed: Error {
    let status: Int32
    let path: String
}

private func runTool(_ path: String, _ arguments: [String]) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}
