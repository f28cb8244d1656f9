import Foundation
import Synchronization
import Testing

/// Holds the database's write lock the way Xapian does (an OFD lock on
/// flintlock) until released.
final class LockHolder: @unchecked Sendable {
    let process = Process()
    private let stdin = Pipe()

    init(_ fixture: MailFixture) throws {
        let lockFile = fixture.mailRoot.appendingPathComponent(".notmuch/xapian/flintlock").path
        let script = """
            import fcntl, os, struct, sys
            fd = os.open(sys.argv[1], os.O_RDWR)
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hh4xqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
            print("locked", flush=True)
            sys.stdin.read()
            """
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, lockFile]
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        let line = String(decoding: stdout.fileHandleForReading.availableData, as: UTF8.self)
        #expect(line.hasPrefix("locked"), "the lock holder did not start: \(line)")
    }

    func release() {
        try? stdin.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    deinit { if process.isRunning { process.terminate() } }
}

@Suite("Lock contention and the pending queue")
struct LockAndQueueTests {
    static let rules = "+ruled -inbox -- from:alice@example.org\n"

    private func queueFiles(_ fixture: MailFixture) -> [String] {
        let queue = fixture.mailRoot.appendingPathComponent(".notmuch/notmuch-deliver-queue").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: queue)) ?? []).filter { $0.hasPrefix("Q1~") || $0.hasSuffix(".record") }
    }

    /// Delivers the message `id` while another program holds the write
    /// lock: written and queued, not indexed (the wait is --lock-timeout 0.2).
    private func deliverQueued(_ fixture: MailFixture, id: String, _ arguments: [String] = [],
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        let holder = try LockHolder(fixture)
        defer { holder.release() }
        let result = try fixture.deliver(sampleMessage(id: id), ["--lock-timeout", "0.2"] + arguments)
        #expect(result.status == 0, "\(result.stderr)", sourceLocation: sourceLocation)
    }

    @Test func theHolderReallyBlocksNotmuchInsert() throws {
        // The test's lock is the real thing: notmuch insert waits on it.
        let fixture = try MailFixture()
        let holder = try LockHolder(fixture)
        defer { holder.release() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/notmuch")
        process.arguments = ["insert"]
        process.environment = fixture.environment
        let input = Pipe()
        process.standardInput = input
        try process.run()
        try input.fileHandleForWriting.write(contentsOf: Data(sampleMessage().utf8))
        try input.fileHandleForWriting.close()
        // Waiting is a state the kernel shows: the process sleeps in a
        // file lock's wait (its wchan), not merely "has not finished yet".
        #expect(Self.waitsForALock(process.processIdentifier), "notmuch insert did not wait for the lock")
        #expect(process.isRunning)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Whether `pid` comes to sleep in a file lock's wait (within 20 s: a
    /// bound for a loaded machine, not a synchronisation).
    static func waitsForALock(_ pid: Int32) -> Bool {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            for task in tasks {
                let wchan = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/wchan", encoding: .utf8)) ?? ""
                // fcntl_setlk for Xapian's OFD lock; locks_lock_inode_wait for flock(2).
                if wchan.contains("setlk") || wchan.contains("lock_inode_wait") { return true }
            }
            usleep(10_000)
        }
        return false
    }

    @Test func lockedDatabaseQueuesDurablyAndFlushApplies() throws {
        let fixture = try MailFixture.withRules(Self.rules)
        let holder = try LockHolder(fixture)
        let message = sampleMessage(id: "queued@example.org")
        let started = Date()
        let result = try fixture.deliver(message, ["--lock-timeout", "0.5", "+cli", "-v"], timeout: 30)
        let elapsed = Date().timeIntervalSince(started)
        holder.release()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(elapsed < 5, "a delivery must not wait much beyond its lock timeout: \(elapsed) s")
        #expect(result.stderr.contains("queued"))
        let files = fixture.files()
        #expect(files.count == 1 && files[0].hasPrefix("new/"))
        #expect(try fixture.contents(files[0]) == Data(message.utf8))
        #expect(queueFiles(fixture).count == 1)
        #expect(try fixture.count("id:queued@example.org") == 0)

        let flush = try fixture.command(["flush", "-v"])
        #expect(flush.status == 0, "\(flush.stderr)")
        #expect(flush.stderr.contains("flushed 1"))
        #expect(try fixture.tags("id:queued@example.org") == ["cli", "ruled", "unread"])
        #expect(queueFiles(fixture).isEmpty)
        try fixture.expectNothingNew()
    }

    /// The queue entry is a link to the message named after the record; a
    /// record too long for a file name goes to a file of its own instead.
    @Test func bothKindsOfQueueEntryAreApplied() throws {
        let fixture = try MailFixture.withRules("+long -- sender:/^s{200}@/\n")
        let longSender = String(repeating: "s", count: 200) + "@example.org"
        try deliverQueued(fixture, id: "short@example.org", ["+cli"])
        try deliverQueued(fixture, id: "long@example.org", ["--sender", longSender])
        let entries = queueFiles(fixture)
        #expect(entries.count == 2)
        let linked = try #require(entries.first { $0.hasPrefix("Q1~") })
        #expect(linked.contains("~t=+cli"), "\(linked)")
        #expect(entries.contains { $0.hasSuffix(".record") })
        // The link is the message itself: one inode, two names.
        let queueDir = fixture.mailRoot.appendingPathComponent(".notmuch/notmuch-deliver-queue")
        let links = try FileManager.default.attributesOfItem(atPath: queueDir.appendingPathComponent(linked).path)
        #expect((links[.referenceCount] as? NSNumber)?.intValue == 2)
        #expect(try fixture.command(["flush"]).status == 0)
        #expect(try fixture.tags("id:short@example.org") == ["cli", "inbox", "unread"])
        #expect(try fixture.tags("id:long@example.org") == ["inbox", "long", "unread"])
        #expect(queueFiles(fixture).isEmpty)
        try fixture.expectNothingNew()
    }

    @Test func aLockReleasedWithinTheWaitIsTakenAndTheMessageIndexed() throws {
        let fixture = try MailFixture()
        let holder = try LockHolder(fixture)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.7) { holder.release() }
        let result = try fixture.deliver(sampleMessage(id: "waited@example.org"), ["--lock-timeout", "20"], timeout: 60)
        #expect(result.status == 0)
        #expect(try fixture.count("id:waited@example.org") == 1)
        #expect(queueFiles(fixture).isEmpty)
    }

    @Test func theNextDeliveryTakesTheQueueAlong() throws {
        let fixture = try MailFixture.withRules(Self.rules)
        try deliverQueued(fixture, id: "first@example.org")
        #expect(try fixture.deliver(sampleMessage(id: "second@example.org")).status == 0)
        #expect(try fixture.tags("id:first@example.org") == ["ruled", "unread"])
        #expect(try fixture.tags("id:second@example.org") == ["ruled", "unread"])
        #expect(queueFiles(fixture).isEmpty)
        try fixture.expectNothingNew()
    }

    @Test func aQueuedMessageIndexedFirstByNotmuchNewGetsItsRuleTagsExactlyOnce() throws {
        let fixture = try MailFixture.withRules(Self.rules)
        try deliverQueued(fixture, id: "raced@example.org", ["+cli"])
        // notmuch new indexes the file first, with new.tags only.
        _ = try fixture.notmuch("new")
        #expect(try fixture.tags("id:raced@example.org") == ["inbox", "unread"])
        let record = queueFiles(fixture)[0]
        let queueDir = fixture.mailRoot.appendingPathComponent(".notmuch/notmuch-deliver-queue")
        let saved = try Data(contentsOf: queueDir.appendingPathComponent(record))
        #expect(try fixture.command(["flush"]).status == 0)
        #expect(try fixture.tags("id:raced@example.org") == ["cli", "ruled", "unread"])
        // The user files it back into the inbox; then a crash is simulated
        // between a commit and the record's removal: the record is back.
        _ = try fixture.notmuch("tag", "+inbox", "id:raced@example.org")
        try saved.write(to: queueDir.appendingPathComponent(record))
        #expect(try fixture.command(["flush"]).status == 0)
        #expect(try fixture.tags("id:raced@example.org") == ["cli", "inbox", "ruled", "unread"])
        #expect(queueFiles(fixture).isEmpty)
        try fixture.expectNothingNew()
    }

    @Test func aQueuedFileRenamedByAReaderIsStillFound() throws {
        let fixture = try MailFixture.withRules(Self.rules)
        try deliverQueued(fixture, id: "renamed@example.org")
        // notmuch new indexes it; the reader marks it read, which moves it to cur/ with S.
        _ = try fixture.notmuch("new")
        _ = try fixture.notmuch("tag", "-unread", "id:renamed@example.org")
        #expect(fixture.files().first?.hasPrefix("cur/") == true)
        #expect(try fixture.command(["flush"]).status == 0)
        #expect(try fixture.tags("id:renamed@example.org") == ["ruled"])
        #expect(queueFiles(fixture).isEmpty)
        try fixture.expectNothingNew()
    }

    @Test func damagedDatabaseStillDeliversAndQueues() throws {
        let fixture = try MailFixture()
        let xapian = fixture.mailRoot.appendingPathComponent(".notmuch/xapian")
        let backup = fixture.directory.appendingPathComponent("xapian-backup")
        try FileManager.default.copyItem(at: xapian, to: backup)
        for name in try FileManager.default.contentsOfDirectory(atPath: xapian.path) where name.hasSuffix(".glass") {
            try Data("garbage".utf8).write(to: xapian.appendingPathComponent(name))
        }
        let result = try fixture.deliver(sampleMessage(id: "damaged@example.org"), ["-v", "+cli"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("notmuch-deliver flush"), "the log says what to do: \(result.stderr)")
        #expect(fixture.files().count == 1)
        // Repaired (here: restored), a flush indexes it with its tags.
        try FileManager.default.removeItem(at: xapian)
        try FileManager.default.copyItem(at: backup, to: xapian)
        #expect(try fixture.command(["flush"]).status == 0)
        #expect(try fixture.tags("id:damaged@example.org") == ["cli", "inbox", "unread"])
        try fixture.expectNothingNew()
    }

    @Test func aBurstOfConcurrentDeliveriesLosesNothing() throws {
        let fixture = try MailFixture.withRules(Self.rules)
        let workers = 8, each = 6
        let failures = Mutex(0)
        // One thread per deliverer: all eight really run at once.
        let group = DispatchGroup()
        for worker in 0..<workers {
            group.enter()
            Thread {
                for n in 0..<each {
                    let result = try? fixture.deliver(sampleMessage(id: "burst-\(worker)-\(n)@example.org"), ["+burst"],
                                                      timeout: 60)
                    if result?.status != 0 { failures.withLock { $0 += 1 } }
                }
                group.leave()
            }.start()
        }
        group.wait()
        #expect(failures.withLock { $0 } == 0)
        // A delivery that found another applying the queue left its record
        // to it: once every deliverer has exited, nothing waits.
        #expect(queueFiles(fixture).isEmpty)
        #expect(try fixture.count("tag:burst and tag:ruled and not tag:inbox") == workers * each)
        #expect(try fixture.command(["flush"]).status == 0)
        #expect(try fixture.count("tag:burst and tag:ruled and not tag:inbox") == workers * each)
        #expect(fixture.files().count == workers * each)
        #expect(queueFiles(fixture).isEmpty)
        try fixture.expectNothingNew()
    }
}
