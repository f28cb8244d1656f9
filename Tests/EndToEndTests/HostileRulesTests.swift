import Foundation
import Testing

/// Rules files and messages built to hurt: too deep, not a file, endless,
/// slow to match, long enough to overflow a tag. The mail is always
/// delivered (exit 0) and the problem is logged with its place.
@Suite("Hostile rules")
struct HostileRulesTests {
    private func write(_ text: String, in fixture: MailFixture, name: String = "hostile.rules") throws -> String {
        let path = fixture.directory.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func logText(_ fixture: MailFixture) -> String {
        (try? String(contentsOf: fixture.directory.appendingPathComponent("deliver.log"), encoding: .utf8)) ?? ""
    }

    /// Delivers one message with these rules, logging to a file; the time it took.
    private func deliver(_ message: String, rules: String, in fixture: MailFixture,
                         timeout: Double = 30) throws -> (MailFixture.Result, Duration) {
        let log = fixture.directory.appendingPathComponent("deliver.log").path
        let clock = ContinuousClock()
        var result: MailFixture.Result?
        let elapsed = try clock.measure {
            result = try fixture.deliver(message, ["--rules", rules, "--log", log], timeout: timeout)
        }
        return (result!, elapsed)
    }

    /// The rule is built inside the test: as an argument, its 200 KB would
    /// be printed in the test's name on every run.
    @Test(arguments: [("parentheses", 110), ("not", 410)])
    func deepNestingDeliversWithoutRules(kind: String, column: Int) throws {
        let text = kind == "not"
            ? "+deep --" + String(repeating: " not", count: 50_000) + " *"
            : "+deep -- " + String(repeating: "(", count: 20_000) + "*" + String(repeating: ")", count: 20_000)
        let fixture = try MailFixture()
        let rules = try write("+fine -- *\n" + text + "\n", in: fixture)
        let (result, _) = try deliver(sampleMessage(id: "deep-\(kind)@x"), rules: rules, in: fixture)
        #expect(result.status == 0, "\(kind): \(result.status) \(result.stderr)")
        // A broken file costs all its rules, as for any syntax error.
        #expect(try fixture.tags("id:deep-\(kind)@x") == ["inbox", "unread"])
        #expect(logText(fixture).contains("\(rules):2:\(column): '(' and 'not' nested more than 100 deep"), "\(logText(fixture))")

        let check = try fixture.command(["check-rules", rules])
        #expect(check.status == 1)
        #expect(check.stderr.hasPrefix("\(rules):2:\(column): '(' and 'not' nested more than 100 deep"), "\(check.stderr)")
    }

    @Test func fifoRulesFileDoesNotHang() throws {
        let fixture = try MailFixture()
        let fifo = fixture.directory.appendingPathComponent("rules.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        // No writer ever comes: reading would wait for ever (the timeout kills it).
        let (result, elapsed) = try deliver(sampleMessage(id: "fifo@x"), rules: fifo, in: fixture, timeout: 15)
        #expect(result.status == 0, "\(result.status) \(result.stderr)")
        #expect(elapsed < .seconds(10))
        #expect(try fixture.tags("id:fifo@x") == ["inbox", "unread"])
        #expect(logText(fixture).contains("\(fifo): cannot read the rules file: not a regular file"), "\(logText(fixture))")

        let check = try fixture.run(MailFixture.deliverExecutable, ["check-rules", fifo], input: Data(), chunks: nil, timeout: 15)
        #expect(check.status == 1)
        #expect(check.stderr.contains("not a regular file"), "\(check.stderr)")
    }

    @Test func devZeroIsRefusedAtOnce() throws {
        let fixture = try MailFixture()
        let (result, elapsed) = try deliver(sampleMessage(id: "zero@x"), rules: "/dev/zero", in: fixture, timeout: 30)
        #expect(result.status == 0, "\(result.status) \(result.stderr)")
        #expect(elapsed < .seconds(5))
        #expect(try fixture.tags("id:zero@x") == ["inbox", "unread"])
        #expect(logText(fixture).contains("/dev/zero: cannot read the rules file: not a regular file"))
    }

    @Test func rulesFileOverTheSizeLimitIsRefused() throws {
        let fixture = try MailFixture()
        // A valid file, all comments but one rule, one byte over 1 MiB.
        let rule = "+big -- *\n"
        let filler = (1 << 20) + 1 - rule.utf8.count
        let rules = try write(rule + "#" + String(repeating: "x", count: filler - 2) + "\n", in: fixture)
        #expect(try FileManager.default.attributesOfItem(atPath: rules)[.size] as? Int == (1 << 20) + 1)
        let (result, _) = try deliver(sampleMessage(id: "big@x"), rules: rules, in: fixture)
        #expect(result.status == 0)
        #expect(try fixture.tags("id:big@x") == ["inbox", "unread"])
        #expect(logText(fixture).contains("\(rules): cannot read the rules file: larger than the limit of 1048576 bytes"))
        let check = try fixture.command(["check-rules", rules])
        #expect(check.status == 1)
        #expect(check.stderr.contains("larger than the limit of 1048576 bytes"), "\(check.stderr)")
    }

    @Test func slowRegexIsCutOffAndTheMessageIsDelivered() throws {
        let fixture = try MailFixture()
        let rules = try write("+slow -- header:X-Junk~/^(a+)+$/\n+after -- *\n", in: fixture)
        // 300 headers each worth about 90 ms of backtracking at PCRE's default limit: 27 s before.
        let junk = String(repeating: "X-Junk: " + String(repeating: "a", count: 5_000) + "!\n", count: 300)
        let message = junk + sampleMessage(id: "slow@x")
        let (result, elapsed) = try deliver(message, rules: rules, in: fixture, timeout: 20)
        #expect(result.status == 0, "\(result.status) \(result.stderr)")
        #expect(elapsed < .seconds(10), "took \(elapsed)")
        #expect(try fixture.tags("id:slow@x") == ["after", "inbox", "unread"])
        let log = logText(fixture)
        #expect(log.contains("\(rules):1: header:X-Junk~/^(a+)+$/ could not be evaluated (backtracking limit reached)"), "\(log)")
        #expect(log.components(separatedBy: "time budget").count <= 2, "the budget is reported at most once")
        try fixture.expectNothingNew()
    }

    /// The longest stretch, in seconds, that anybody held the database's
    /// write lock (Xapian's OFD lock on flintlock) while `body` ran.
    private func longestWriteLockHold(_ fixture: MailFixture, during body: () throws -> Void) throws -> Double {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", """
            import fcntl, os, struct, sys, threading, time
            fd = os.open(sys.argv[1], os.O_RDWR)
            done = threading.Event()
            threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
            print("ready", flush=True)
            longest, since = 0.0, None
            while not done.is_set():
                probe = struct.pack("hh4xqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0)
                held = struct.unpack("hh4xqqi4x", fcntl.fcntl(fd, fcntl.F_OFD_GETLK, probe))[0] != fcntl.F_UNLCK
                now = time.monotonic()
                if held and since is None: since = now
                if not held and since is not None: longest, since = max(longest, now - since), None
                time.sleep(0.005)
            print(longest if since is None else max(longest, time.monotonic() - since))
            """, fixture.mailRoot.appendingPathComponent(".notmuch/xapian/flintlock").path]
        let input = Pipe(), output = Pipe()
        probe.standardInput = input
        probe.standardOutput = output
        try probe.run()
        _ = output.fileHandleForReading.availableData
        try body()
        try input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        probe.waitUntilExit()
        return Double(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    private static let slowRules = "+slow -- header:X-Junk~/^(a+)+$/\n+after -- *\n"
    /// About two seconds of the rules' time budget.
    private static let slowHeaders = String(repeating: "X-Junk: " + String(repeating: "a", count: 5_000) + "!\n",
                                            count: 300)

    /// The headers' regexes run before the database is opened: while a
    /// delivery spends its rules' time budget, the user's `notmuch tag`
    /// is not kept waiting for the write lock.
    @Test func slowRulesDoNotHoldTheWriteLock() throws {
        let fixture = try MailFixture()
        let rules = try write(Self.slowRules, in: fixture)
        var outcome: (MailFixture.Result, Duration)?
        let longest = try longestWriteLockHold(fixture) {
            outcome = try deliver(Self.slowHeaders + sampleMessage(id: "slow-lock@x"), rules: rules, in: fixture)
        }
        let (result, elapsed) = try #require(outcome)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(elapsed > .seconds(1.5), "the rules did not spend their budget: \(elapsed)")
        #expect(longest >= 0 && longest < 1.0, "the write lock was held \(longest) s of a \(elapsed) delivery")
        let tags = try fixture.tags("id:slow-lock@x")
        #expect(tags == ["after", "inbox", "unread"], "\(tags) \(result.stderr)")
    }

    /// The same for a queued delivery: `flush` evaluates its records'
    /// slow conditions before it asks for the lock.
    @Test func aFlushDoesNotHoldTheWriteLockForSlowRules() throws {
        let fixture = try MailFixture()
        let rules = try write(Self.slowRules, in: fixture)
        let holder = try LockHolder(fixture)
        let queued = try fixture.deliver(Self.slowHeaders + sampleMessage(id: "slow-queued@x"),
                                         ["--rules", rules, "--lock-timeout", "0"], timeout: 30)
        holder.release()
        #expect(queued.status == 0, "\(queued.stderr)")
        var flush: MailFixture.Result?
        let longest = try longestWriteLockHold(fixture) { flush = try fixture.command(["flush"]) }
        #expect(flush?.status == 0, "\(flush?.stderr ?? "")")
        #expect(longest >= 0 && longest < 1.0, "the write lock was held \(longest) s during the flush")
        #expect(try fixture.tags("id:slow-queued@x") == ["after", "inbox", "unread"])
    }

    @Test func longCapturedListIdMakesATagLibnotmuchAccepts() throws {
        let fixture = try MailFixture()
        let rules = try write(#"+list/$1/$2/$3/$4 -- header:List-Id~/^(\S+) (\S+) (\S+) (\S+)/"# + "\n", in: fixture)
        let words = ["a", "b", "c", "d"].map { String(repeating: $0, count: 100) }
        let message = "List-Id: \(words.joined(separator: " "))\n" + sampleMessage(id: "list@x")
        let (result, _) = try deliver(message, rules: rules, in: fixture)
        #expect(result.status == 0, "\(result.status) \(result.stderr)")
        let tags = try fixture.tags("id:list@x")
        let listTags = tags.filter { $0.hasPrefix("list/") }
        #expect(listTags.count == 1, "\(tags)")
        #expect(listTags.allSatisfy { $0.utf8.count <= 200 && $0.split(separator: "/").count == 5 }, "\(listTags)")
        try fixture.expectNothingNew()
    }

    @Test func checkRulesWarnsAboutNestedQuantifiersAndRefusesOverlongNames() throws {
        let fixture = try MailFixture()
        let risky = try write("+risky -- header:Subject~/^(a+)+$/\n+fine -- header:Subject~/^a+$/\n", in: fixture)
        let warned = try fixture.command(["check-rules", risky])
        #expect(warned.status == 0)
        #expect(warned.stderr.hasPrefix("\(risky):1: warning: /^(a+)+$/ may backtrack"), "\(warned.stderr)")
        #expect(!warned.stderr.contains(":2: warning"))

        let long = try write("+" + String(repeating: "t", count: 201) + " -- *\n", in: fixture, name: "long.rules")
        let refused = try fixture.command(["check-rules", long])
        #expect(refused.status == 1)
        #expect(refused.stderr.hasPrefix("\(long):1:2: tag longer than 200 bytes"), "\(refused.stderr)")
    }
}
