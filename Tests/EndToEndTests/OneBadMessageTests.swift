import Foundation
import Testing

/// One message's own fault (a tag libnotmuch refuses, a file that is not
/// mail or has gone) never stops the queue, and exit 0 always means the
/// message is kept, whatever the lock was doing.
@Suite("One bad message never stops the others")
struct OneBadMessageTests {
    private func queueEntries(_ fixture: MailFixture) -> [String] {
        let queue = fixture.mailRoot.appendingPathComponent(".notmuch/notmuch-deliver-queue").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: queue)) ?? [])
            .filter { $0.hasPrefix("Q1~") || $0.hasSuffix(".record") }
    }

    /// Four words of 100 characters each: the captured tag is 400 bytes and more.
    private static let longListID = (1...4).map { String(repeating: Character(String($0)), count: 100) }
        .joined(separator: " ")

    private static let listRule = "+list/$1/$2/$3/$4 -- header:List-Id~/^(\\S+) (\\S+) (\\S+) (\\S+)/\n"

    private func listMessage(id: String) -> String {
        sampleMessage(id: id).replacingOccurrences(of: "Subject:", with: "List-Id: \(Self.longListID)\nSubject:")
    }

    @Test func anOverlongCapturedTagNeitherBlocksTheQueueNorDefers() throws {
        let fixture = try MailFixture()
        try fixture.useRules(Self.listRule)
        let holder = try LockHolder(fixture)
        #expect(try fixture.deliver(listMessage(id: "poison@example.org"), ["--lock-timeout", "0.2", "+cli"]).status == 0)
        #expect(try fixture.deliver(sampleMessage(id: "innocent@example.org"), ["--lock-timeout", "0.2", "+cli"]).status == 0)
        holder.release()
        #expect(queueEntries(fixture).count == 2)

        let flush = try fixture.command(["flush"])
        #expect(flush.status == 0, "\(flush.stderr)")
        #expect(queueEntries(fixture).isEmpty)
        #expect(try fixture.tags("id:innocent@example.org") == ["cli", "inbox", "unread"])
        // The poisoned message is indexed too, with every tag that is valid.
        let tags = try fixture.tags("id:poison@example.org")
        #expect(tags.contains("cli") && tags.contains("inbox"), "\(tags)")
        #expect(tags.allSatisfy { $0.utf8.count <= 200 }, "\(tags)")

        // Delivered directly, the same message is delivered at once (it was 75 for ever).
        let direct = try fixture.deliver(listMessage(id: "poison2@example.org"), ["+cli"])
        #expect(direct.status == 0, "\(direct.stderr)")
        #expect(try fixture.tags("id:poison2@example.org").contains("cli"))
        try fixture.expectNothingNew()
    }

    /// Not mail to libnotmuch (no From, Subject or To): 65 whether the
    /// lock is free or held, and nothing left in the maildir.
    @Test func notMailGetsTheSameAnswerWithTheLockHeldOrFree() throws {
        let fixture = try MailFixture()
        let notMail = "Cc: someone@example.org\nDate: Mon, 24 Nov 2025 09:00:00 +0000\nMessage-ID: <cc-only@example.org>\n\nbody\n"
        let free = try fixture.deliver(notMail)
        #expect(free.status == 65, "\(free.stderr)")
        let holder = try LockHolder(fixture)
        let held = try fixture.deliver(notMail, ["--lock-timeout", "0.2"])
        holder.release()
        #expect(held.status == 65, "\(held.stderr)")
        #expect(fixture.files().isEmpty, "\(fixture.files())")
        #expect(queueEntries(fixture).isEmpty)
        // An mbox of two messages is not mail to libnotmuch either.
        let twoMessages = "From a@example.org Mon Nov 24 09:00:00 2025\nFrom b@example.org Mon Nov 24 09:00:00 2025\n"
            + sampleMessage(id: "one@example.org") + "\nFrom c@example.org Mon Nov 24 09:00:00 2025\n"
            + sampleMessage(id: "two@example.org")
        #expect(try fixture.deliver(twoMessages).status == 65)
        #expect(fixture.files().isEmpty)
        // Headers notmuch does accept: only a Subject.
        let subjectOnly = "Subject: only this\nMessage-ID: <subject-only@example.org>\n\nbody\n"
        #expect(try fixture.deliver(subjectOnly).status == 0)
        #expect(try fixture.count("id:subject-only@example.org") == 1)
    }

    /// A queued file that vanished is set aside with its reason, not
    /// retried for ever and not silently dropped; the others are applied;
    /// `--list`, `--retry` and `--drop` act on what was set aside.
    @Test func aVanishedFileIsSetAsideAndCanBeRetriedOrDropped() throws {
        let fixture = try MailFixture()
        let holder = try LockHolder(fixture)
        #expect(try fixture.deliver(sampleMessage(id: "moved@example.org"), ["--lock-timeout", "0.2", "+cli"]).status == 0)
        let moved = try #require(fixture.files().first)
        #expect(try fixture.deliver(sampleMessage(id: "staying@example.org"), ["--lock-timeout", "0.2", "+cli"]).status == 0)
        holder.release()
        let original = fixture.mailRoot.appendingPathComponent(moved)
        let elsewhere = fixture.directory.appendingPathComponent("parked")
        try FileManager.default.moveItem(at: original, to: elsewhere)

        let flush = try fixture.command(["flush"])
        #expect(flush.status == 0, "\(flush.stderr)")
        #expect(flush.stderr.contains("1 queued deliveries are set aside"), "\(flush.stderr)")
        #expect(try fixture.tags("id:staying@example.org") == ["cli", "inbox", "unread"])
        #expect(queueEntries(fixture).isEmpty)
        // Flushing again does not try it again.
        #expect(try fixture.command(["flush"]).status == 0)

        let list = try fixture.command(["flush", "--list"])
        #expect(list.status == 0)
        #expect(list.stdout.contains(moved), "\(list.stdout)")
        #expect(list.stdout.contains("is gone"), "\(list.stdout)")

        // Put back, retried: the record's tags are applied after all.
        try FileManager.default.moveItem(at: elsewhere, to: original)
        let retry = try fixture.command(["flush", "--retry", moved])
        #expect(retry.status == 0, "\(retry.stderr)")
        #expect(try fixture.tags("id:moved@example.org") == ["cli", "inbox", "unread"])
        #expect(try fixture.command(["flush", "--list"]).stdout.contains("no deliveries are set aside"))
        try fixture.expectNothingNew()
    }

    /// A record applied and committed, whose rule moved the file, but not
    /// yet removed (a crash in between, or a second flusher reading the
    /// queue at that moment): recognised as applied, not set aside as gone.
    @Test func anAppliedRecordWhoseFileARuleMovedIsNotSetAside() throws {
        let fixture = try MailFixture()
        try fixture.useRules("+junk folder:Junk -- *\n")
        let holder = try LockHolder(fixture)
        #expect(try fixture.deliver(sampleMessage(id: "moved-by-rule@x"), ["--lock-timeout", "0.2"]).status == 0)
        holder.release()
        let queueDir = fixture.mailRoot.appendingPathComponent(".notmuch/notmuch-deliver-queue")
        let entry = try #require(queueEntries(fixture).first)
        let saved = queueDir.appendingPathComponent("saved-entry")
        try FileManager.default.linkItem(at: queueDir.appendingPathComponent(entry), to: saved)
        #expect(try fixture.command(["flush"]).status == 0)
        #expect(fixture.files().allSatisfy { $0.hasPrefix("Junk/") }, "\(fixture.files())")
        // The crash: the record is back after the commit.
        try FileManager.default.moveItem(at: saved, to: queueDir.appendingPathComponent(entry))
        let again = try fixture.command(["flush"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(!again.stderr.contains("set aside"), "\(again.stderr)")
        #expect(queueEntries(fixture).isEmpty)
        #expect(try fixture.command(["flush", "--list"]).stdout.contains("no deliveries are set aside"))
        #expect(try fixture.tags("id:moved-by-rule@x") == ["inbox", "junk", "unread"])
    }

    /// `flush` takes the flusher turn as deliveries do: while another
    /// process holds it, the records are in that process's hands.
    @Test func flushLeavesTheQueueToTheHolderOfTheTurn() throws {
        let fixture = try MailFixture()
        let holder = try LockHolder(fixture)
        #expect(try fixture.deliver(sampleMessage(id: "turn@x"), ["--lock-timeout", "0.2"]).status == 0)
        holder.release()
        let lock = fixture.mailRoot.appendingPathComponent(".notmuch/notmuch-deliver-queue/flusher.lock").path
        let turn = Process()
        turn.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        turn.arguments = ["python3", "-c", """
            import fcntl, os, sys
            fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            print("held", flush=True)
            sys.stdin.read()
            """, lock]
        let input = Pipe(), output = Pipe()
        turn.standardInput = input
        turn.standardOutput = output
        try turn.run()
        _ = output.fileHandleForReading.availableData
        let left = try fixture.command(["flush"])
        #expect(left.status == 0, "\(left.stderr)")
        #expect(queueEntries(fixture).count == 1)
        #expect(try fixture.count("id:turn@x") == 0)
        try input.fileHandleForWriting.close()
        turn.waitUntilExit()
        #expect(try fixture.command(["flush"]).status == 0)
        #expect(queueEntries(fixture).isEmpty)
        #expect(try fixture.count("id:turn@x") == 1)
    }

    @Test func dropForgetsTheRecordAndKeepsTheFile() throws {
        let fixture = try MailFixture()
        let holder = try LockHolder(fixture)
        #expect(try fixture.deliver(sampleMessage(id: "gone@example.org"), ["--lock-timeout", "0.2"]).status == 0)
        holder.release()
        let file = try #require(fixture.files().first)
        let elsewhere = fixture.directory.appendingPathComponent("parked")
        try FileManager.default.moveItem(at: fixture.mailRoot.appendingPathComponent(file), to: elsewhere)
        #expect(try fixture.command(["flush"]).status == 0)
        #expect(try fixture.command(["flush", "--drop", "--retry"]).status == 64)
        #expect(try fixture.command(["flush", "--drop", "no/such/entry"]).status == 64)
        #expect(try fixture.command(["flush", "--drop"]).status == 0)
        #expect(try fixture.command(["flush", "--list"]).stdout.contains("no deliveries are set aside"))
        #expect(FileManager.default.fileExists(atPath: elsewhere.path))
    }

    /// Numbers that are no timeout at all are refused before anything is
    /// written; they used to trap after the file was linked into new/.
    @Test func anInfiniteLockTimeoutIsAConfigurationError() throws {
        let fixture = try MailFixture()
        for value in ["inf", "nan", "1e300", "-1"] {
            try fixture.writeConfig(extra: "[deliver]\nlock_timeout=\(value)")
            let result = try fixture.deliver(sampleMessage())
            #expect(result.status == 75, "lock_timeout=\(value): \(result.status) \(result.stderr)")
            #expect(result.stderr.contains("deliver.lock_timeout"), "\(result.stderr)")
            #expect(fixture.files().isEmpty, "lock_timeout=\(value) left \(fixture.files())")
        }
        try fixture.writeConfig()
        for value in ["inf", "nan", "99999"] {
            #expect(try fixture.deliver(sampleMessage(), ["--lock-timeout", value]).status == 64, "--lock-timeout \(value)")
            #expect(try fixture.command(["flush", "--lock-timeout", value]).status == 64, "flush --lock-timeout \(value)")
        }
        #expect(fixture.files().isEmpty)
    }

    /// Without HOME (some MTAs, cron), the home directory comes from the
    /// password database, as it would for notmuch: the message is indexed,
    /// not queued for a flush that would fail the same way.
    @Test func noHomeStillIndexes() throws {
        let fixture = try MailFixture()
        fixture.extraEnvironment["HOME"] = nil
        var environment = fixture.environment
        environment.removeValue(forKey: "HOME")
        let result = try fixture.deliver(sampleMessage(id: "homeless@example.org"), environment: environment)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try fixture.count("id:homeless@example.org") == 1)
        #expect(queueEntries(fixture).isEmpty)
    }
}
