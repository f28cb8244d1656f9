import Foundation
import Testing

/// Files in a mailbox that would block an open (a FIFO with no writer),
/// or a lock another program never lets go: a delivery never waits on them.
/// Each run has a timeout: on code that blocks, the delivery is killed and
/// the test fails instead of hanging.
@Suite("Files that block")
struct BlockingFileTests {
    private func logText(_ fixture: MailFixture) -> String {
        (try? String(contentsOf: fixture.directory.appendingPathComponent("deliver.log"), encoding: .utf8)) ?? ""
    }

    private var logArguments: (MailFixture) -> [String] {
        { ["--log", $0.directory.appendingPathComponent("deliver.log").path] }
    }

    /// No message file left anywhere in the mailbox: new/, cur/ or tmp/.
    private func nothingStored(_ fixture: MailFixture) -> Bool {
        fixture.files().allSatisfy { !$0.hasPrefix("new/") && !$0.hasPrefix("cur/") && !$0.hasPrefix("tmp/") }
    }

    @Test func fifoMaildirsizeDefersWithoutAQuota() throws {
        let fixture = try MailFixture()
        let fifo = fixture.mailRoot.appendingPathComponent("maildirsize").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let result = try fixture.deliver(sampleMessage(id: "fifo-size@x"), logArguments(fixture), timeout: 20)
        #expect(result.status == 75, "\(result.status) \(result.stderr)")
        #expect(result.stderr.contains("'\(fifo)' is a FIFO, not a regular file"), "\(result.stderr)")
        #expect(logText(fixture).contains("its quota file '\(fifo)' is a FIFO"), "\(logText(fixture))")
        #expect(nothingStored(fixture), "\(fixture.files())")
        // Removed, the mailbox takes mail again.
        try FileManager.default.removeItem(atPath: fifo)
        #expect(try fixture.deliver(sampleMessage(id: "fifo-size@x"), timeout: 20).status == 0)
        #expect(try fixture.count("id:fifo-size@x") == 1)
    }

    @Test func fifoMaildirsizeDefersOnlyItsVirtualMailbox() throws {
        let fixture = try MailFixture()
        let vmail = fixture.directory.appendingPathComponent("vmail")
        try FileManager.default.createDirectory(at: vmail.appendingPathComponent("example.org"),
                                                withIntermediateDirectories: true)
        let template = vmail.path + "/%d/%u"
        for user in ["alice", "bob"] {
            let first = try fixture.deliver(sampleMessage(id: "first-\(user)@x"),
                                            ["--mail-root", template, "--recipient", "\(user)@example.org"], timeout: 20)
            #expect(first.status == 0, "\(first.stderr)")
        }
        let alice = vmail.appendingPathComponent("example.org/alice")
        let fifo = alice.appendingPathComponent("maildirsize").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let refused = try fixture.deliver(sampleMessage(id: "second-alice@x"),
                                          ["--mail-root", template, "--recipient", "alice@example.org"], timeout: 20)
        #expect(refused.status == 75, "\(refused.status) \(refused.stderr)")
        let delivered = try fixture.deliver(sampleMessage(id: "second-bob@x"),
                                            ["--mail-root", template, "--recipient", "bob@example.org"], timeout: 20)
        #expect(delivered.status == 0, "\(delivered.stderr)")
        let bob = vmail.appendingPathComponent("example.org/bob")
        #expect(try fixture.notmuchIn(bob, "count", "id:second-bob@x") == "1")
        #expect(try fixture.notmuchIn(alice, "count", "*") == "1")
    }

    @Test func fifoConfigFileDefers() throws {
        let fixture = try MailFixture()
        let fifo = fixture.directory.appendingPathComponent("config.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        // Named by NOTMUCH_CONFIG, by --config, and found at the XDG place.
        fixture.extraEnvironment["NOTMUCH_CONFIG"] = fifo
        let byEnvironment = try fixture.deliver(sampleMessage(id: "cfg1@x"), timeout: 20)
        #expect(byEnvironment.status == 75, "\(byEnvironment.status) \(byEnvironment.stderr)")
        #expect(byEnvironment.stderr.contains("the notmuch config file '\(fifo)' is a FIFO"), "\(byEnvironment.stderr)")
        fixture.extraEnvironment = [:]
        let byOption = try fixture.deliver(sampleMessage(id: "cfg2@x"), ["--config", fifo], timeout: 20)
        #expect(byOption.status == 75, "\(byOption.status) \(byOption.stderr)")
        #expect(try fixture.count() == 0)
    }

    @Test func fifoConfigFileAtTheXDGPlaceDefers() throws {
        let fixture = try MailFixture()
        let directory = fixture.directory.appendingPathComponent("xdg/notmuch/default")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let fifo = directory.appendingPathComponent("config").path
        #expect(mkfifo(fifo, 0o600) == 0)
        // Without NOTMUCH_CONFIG, libnotmuch looks there first.
        var environment = fixture.environment
        environment.removeValue(forKey: "NOTMUCH_CONFIG")
        let result = try fixture.deliver(sampleMessage(id: "xdg@x"), timeout: 20, environment: environment)
        #expect(result.status == 75, "\(result.status) \(result.stderr)")
        #expect(result.stderr.contains("'\(fifo)' is a FIFO"), "\(result.stderr)")
    }

    /// The mailbox's own rules and script: as any rules file that is not a
    /// regular file, not read, and the mail delivered without them at once.
    @Test(arguments: ["deliver.rules", "deliver.sieve"])
    func fifoScriptOfAVirtualMailboxIsSkippedPromptly(name: String) throws {
        let fixture = try MailFixture()
        let vmail = fixture.directory.appendingPathComponent("vmail")
        try FileManager.default.createDirectory(at: vmail.appendingPathComponent("example.org"),
                                                withIntermediateDirectories: true)
        let arguments = ["--mail-root", vmail.path + "/%d/%u", "--recipient", "carol@example.org"] + logArguments(fixture)
        #expect(try fixture.deliver(sampleMessage(id: "first@x"), arguments, timeout: 20).status == 0)
        let fifo = vmail.appendingPathComponent("example.org/carol/.notmuch/\(name)").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let result = try fixture.deliver(sampleMessage(id: "second@x"), arguments, timeout: 20)
        #expect(result.status == 0, "\(result.status) \(result.stderr)")
        #expect(logText(fixture).contains("\(fifo)"), "\(logText(fixture))")
        #expect(logText(fixture).contains("not a regular file"), "\(logText(fixture))")
    }

    /// A symlinked, garbage or negative maildirsize is said in the log and
    /// taken as missing: a configured quota is enforced by a recount,
    /// which replaces it with a regular file.
    @Test(arguments: ["symlink", "garbage", "negative"])
    func damagedMaildirsizeIsLoggedAndRecounted(kind: String) throws {
        let fixture = try MailFixture()
        #expect(try fixture.deliver(sampleMessage(id: "one@x"), ["--quota", "1C"], timeout: 20).status == 0)
        let file = fixture.mailRoot.appendingPathComponent("maildirsize").path
        try FileManager.default.removeItem(atPath: file)
        switch kind {
        case "symlink":
            let target = fixture.directory.appendingPathComponent("elsewhere").path
            try "0S\n".write(toFile: target, atomically: true, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: file, withDestinationPath: target)
        case "garbage": try "\u{1b}[2Jnot a quota\n0 0\n".write(toFile: file, atomically: true, encoding: .utf8)
        default: try "-5S,-1C\n0 0\n".write(toFile: file, atomically: true, encoding: .utf8)
        }
        let refused = try fixture.deliver(sampleMessage(id: "two@x"), ["--quota", "1C"] + logArguments(fixture), timeout: 20)
        #expect(refused.status == 75, "\(kind): \(refused.status) \(refused.stderr)")
        #expect(refused.stderr.contains("is full"), "\(refused.stderr)")
        let log = logText(fixture)
        #expect(log.contains("quota file '\(file)'"), "\(log)")
        #expect(!log.contains("\u{1b}"), "the log holds a raw escape")
        // Replaced by the recount: a regular file saying the limit and the count.
        let info = try FileManager.default.attributesOfItem(atPath: file)
        #expect(info[.type] as? FileAttributeType == .typeRegular)
        #expect(try String(contentsOfFile: file, encoding: .utf8).hasPrefix("1C\n"))
    }

    @Test func damagedMaildirsizeWithoutAQuotaIsLogged() throws {
        let fixture = try MailFixture()
        let file = fixture.mailRoot.appendingPathComponent("maildirsize").path
        try "garbage\n".write(toFile: file, atomically: true, encoding: .utf8)
        let result = try fixture.deliver(sampleMessage(id: "g@x"), logArguments(fixture), timeout: 20)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(logText(fixture).contains("quota file '\(file)' does not start with a limit line"), "\(logText(fixture))")
    }

    /// Another program holding the mailbox's quota lock for ever: the
    /// delivery gives up after its lock timeout and defers.
    @Test func quotaLockHeldForEverDefers() throws {
        let fixture = try MailFixture()
        let directory = open(fixture.mailRoot.path, O_RDONLY | O_DIRECTORY)
        #expect(directory >= 0)
        defer { close(directory) }
        #expect(flock(directory, LOCK_EX) == 0)
        let result = try fixture.deliver(sampleMessage(id: "locked@x"), ["--quota", "10M", "--lock-timeout", "1"],
                                         timeout: 20)
        #expect(result.status == 75, "\(result.status) \(result.stderr)")
        #expect(result.stderr.contains("stayed locked"), "\(result.stderr)")
        #expect(nothingStored(fixture), "\(fixture.files())")
    }
}
