import Foundation
import Testing

@Suite("Importing mbox archives")
struct ImportTests {
    /// An mboxrd archive of `count` messages, every seventh with Status flags,
    /// and the messages as they must come out.
    static func archive(_ count: Int, prefix: String = "imp") -> (mbox: String, messages: [String]) {
        var mbox = "", messages: [String] = []
        for i in 0..<count {
            var message = "From: Sender \(i) <s\(i)@example.org>\nTo: me@example.org\nSubject: message \(i)\n"
            message += "Date: Mon, 24 Nov 2025 09:00:00 +0000\nMessage-ID: <\(prefix)-\(i)@example.org>\n"
            if i % 7 == 0 { message += "Status: RO\nX-Status: AF\n" }
            message += "\nbody \(i)\nFrom the quoting test\n>From already quoted\n"
            messages.append(message)
            let quoted = message.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
                line.drop { $0 == ">" }.hasPrefix("From ") && !line.hasPrefix("From:") ? ">" + line : String(line)
            }.joined(separator: "\n")
            mbox += "From s\(i)@example.org Mon Nov 24 09:00:00 2025\n" + quoted + "\n"
        }
        return (mbox, messages)
    }

    private func write(_ text: String, _ fixture: MailFixture, _ name: String = "archive.mbox") throws -> URL {
        let url = fixture.directory.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    @Test func importsEveryMessageByteForByteWithStatusFlags() throws {
        let fixture = try MailFixture()
        let (mbox, messages) = Self.archive(300)
        let url = try write(mbox, fixture)
        let result = try fixture.command(["import", "--tag", "archived", "--batch-size", "64", url.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("imported 300 "), "\(result.stdout)")
        #expect(try fixture.count() == 300)
        #expect(try fixture.count("tag:archived") == 300)
        // Status R: read, so no unread, in cur/ with S; X-Status A and F: replied, flagged.
        #expect(try fixture.count("tag:replied and tag:flagged and not tag:unread") == 43)
        #expect(try fixture.count("tag:unread") == 257)
        let flagged = try fixture.notmuch("search", "--output=files", "id:imp-0@example.org")
        #expect(flagged.contains("/cur/") && flagged.hasSuffix(":2,FRS"), "\(flagged)")
        var stored: [String: Data] = [:]
        for path in fixture.files() { stored[path] = try fixture.contents(path) }
        let expected = Set(messages.map { Data($0.utf8) })
        #expect(Set(stored.values) == expected)
        try fixture.expectNothingNew()
    }

    @Test func runningAgainStoresNothingTwice() throws {
        let fixture = try MailFixture()
        let url = try write(Self.archive(120).mbox, fixture)
        #expect(try fixture.command(["import", url.path]).status == 0)
        let again = try fixture.command(["import", url.path])
        #expect(again.stdout.hasPrefix("imported 0 "), "\(again.stdout)")
        #expect(again.stdout.contains("skipped 120 already there"))
        #expect(fixture.files().count == 120)
        try fixture.expectNothingNew()
    }

    @Test func sameMessageIDOtherContentIsACountedCopy() throws {
        let fixture = try MailFixture()
        #expect(try fixture.deliver(sampleMessage(id: "imp-3@example.org", subject: "delivered earlier")).status == 0)
        let url = try write(Self.archive(5).mbox, fixture)
        let result = try fixture.command(["import", url.path])
        #expect(result.stdout.hasPrefix("imported 5 (of which 1 copies"), "\(result.stdout)")
        #expect(try fixture.count() == 5)
        #expect(fixture.files().count == 6)
    }

    @Test func anInterruptedImportResumes() throws {
        let fixture = try MailFixture()
        let url = try write(Self.archive(3000).mbox, fixture)
        // Killed in the middle, then run again.
        let process = Process()
        process.executableURL = MailFixture.deliverExecutable
        process.arguments = ["import", "--batch-size", "100", url.path]
        process.environment = fixture.environment
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Killed as soon as the first batch is in the database, rather than
        // after a fixed time, which a slow or a fast machine would miss.
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning, Date() < deadline, storedCount(fixture) == 0 {
            Thread.sleep(forTimeInterval: 0.02)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let partial = try fixture.count()
        // Otherwise the run below would test a plain re-run, not a resume.
        try #require(process.terminationReason == .uncaughtSignal, "the import ended before the kill")
        try #require(partial > 0 && partial < 3000, "\(partial) of 3000 stored when killed")
        let result = try fixture.command(["import", url.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try fixture.count() == 3000, "after \(partial) before the kill: \(result.stdout)")
        #expect(fixture.files().filter { !$0.hasPrefix("tmp/") }.count == 3000)
        try fixture.expectNothingNew()
    }

    /// The messages in the database, or 0 while it cannot be read yet.
    private func storedCount(_ fixture: MailFixture) -> Int {
        guard let result = try? fixture.notmuchResult(["count", "*"]), result.status == 0 else { return 0 }
        return Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    @Test func compressedArchivesAndStandardInput() throws {
        let fixture = try MailFixture()
        let url = try write(Self.archive(50, prefix: "gz").mbox, fixture, "a.mbox")
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        gzip.arguments = ["gzip", url.path]
        try gzip.run()
        gzip.waitUntilExit()
        #expect(try fixture.command(["import", url.path + ".gz"]).status == 0)
        #expect(try fixture.count() == 50)
        let stdin = try fixture.command(["import", "-"], input: Self.archive(10, prefix: "stdin").mbox)
        #expect(stdin.status == 0, "\(stdin.stderr)")
        #expect(try fixture.count() == 60)
    }

    @Test func theSameMessageTwiceInOneArchiveIsStoredOnce() throws {
        let fixture = try MailFixture()
        let (mbox, _) = Self.archive(4)
        let url = try write(mbox + mbox, fixture)
        let result = try fixture.command(["import", url.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("imported 4 ") && result.stdout.contains("skipped 4"), "\(result.stdout)")
        #expect(fixture.files().count == 4)
    }

    /// The archive is read a batch ahead of the indexing: a message repeated
    /// in the next batch is written again before the first copy is in
    /// place, and must still end up stored once, with nothing left in tmp/.
    @Test func theSameMessageInTheNextBatchIsStoredOnce() throws {
        let fixture = try MailFixture()
        let (mbox, _) = Self.archive(3)
        let url = try write(mbox + mbox + mbox, fixture)
        let result = try fixture.command(["import", "--batch-size", "2", url.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("imported 3 ") && result.stdout.contains("skipped 6"), "\(result.stdout)")
        #expect(fixture.files().count == 3, "\(fixture.files())")
        #expect(try fixture.count("*") == 3)
        try fixture.expectNothingNew()
    }

    /// On a terminal, a progress line with the time left (the archive is a
    /// file, so its size is known); without one, only the summary.
    @Test func progressOnATerminalOnly() throws {
        let fixture = try MailFixture()
        let url = try write(Self.archive(400).mbox, fixture)
        let quiet = try fixture.command(["import", url.path])
        #expect(quiet.status == 0 && quiet.stderr.isEmpty, "\(quiet.stderr)")
        let again = try write(Self.archive(400, prefix: "tty").mbox, fixture, "tty.mbox")
        // script(1) gives the import a terminal; what it prints comes back on stdout.
        let command = [MailFixture.deliverExecutable.path, "import", again.path].joined(separator: " ")
        let onTerminal = try fixture.run(URL(fileURLWithPath: "/usr/bin/script"), ["-qec", command, "/dev/null"],
                                         input: Data(), chunks: nil)
        #expect(onTerminal.status == 0, "\(onTerminal.stdout)")
        #expect(onTerminal.stdout.contains("400 messages,") && onTerminal.stdout.contains(" msg/s"), "\(onTerminal.stdout)")
        #expect(onTerminal.stdout.contains(" s left"), "\(onTerminal.stdout)")
        #expect(onTerminal.stdout.contains("imported 400 "), "\(onTerminal.stdout)")
    }

    @Test func rulesApplyDuringImport() throws {
        let fixture = try MailFixture()
        try fixture.useRules("+odd -inbox folder:Odd -- subject:message and header:Subject~/[13579]$/\n")
        let url = try write(Self.archive(20).mbox, fixture)
        #expect(try fixture.command(["import", url.path]).status == 0)
        #expect(try fixture.count("tag:odd and folder:Odd and not tag:inbox") == 10)
        try fixture.expectNothingNew()
    }

    @Test func notAnMboxStoresNothing() throws {
        let fixture = try MailFixture()
        let url = try write("Subject: just a message\n\nbody\n", fixture)
        let good = try write(Self.archive(3, prefix: "good").mbox, fixture, "good.mbox")
        let result = try fixture.command(["import", url.path, good.path, "/nonexistent/archive"])
        #expect(result.status == 65)
        // Failures go to stderr, the summary to stdout.
        #expect(result.stderr.contains("not an mbox archive"), "\(result.stderr)")
        #expect(result.stderr.contains("/nonexistent/archive"))
        #expect(!result.stdout.contains("failed:"), "\(result.stdout)")
        #expect(result.stdout.hasPrefix("imported 3 "), "the good archive still goes in: \(result.stdout)")
        #expect(fixture.files().count == 3)
        let empty = try write("", fixture, "empty.mbox")
        let none = try fixture.command(["import", empty.path])
        #expect(none.status == 0 && none.stdout.hasPrefix("imported 0 "))
    }

    @Test func dryRunCountsAndStoresNothing() throws {
        let fixture = try MailFixture()
        let url = try write(Self.archive(30).mbox, fixture)
        let result = try fixture.command(["import", "--dry-run", url.path])
        #expect(result.stdout.hasPrefix("dry run: 30 messages"), "\(result.stdout)")
        #expect(fixture.files().isEmpty)
    }

    @Test func aMessageWithoutDateTakesTheEnvelopeDateAsMtime() throws {
        let fixture = try MailFixture()
        let mbox = "From a@example.org Mon Nov 24 09:00:00 2025\nFrom: a@example.org\nSubject: undated\n\nbody\n"
        let url = try write(mbox, fixture)
        #expect(try fixture.command(["import", url.path]).status == 0)
        let path = fixture.mailRoot.appendingPathComponent(fixture.files()[0]).path
        let modified = try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date
        #expect(modified == Date(timeIntervalSince1970: 1_763_974_800))
    }
}
