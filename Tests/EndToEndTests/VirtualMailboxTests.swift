import Foundation
import Testing

@Suite("Virtual mailboxes and the log file")
struct VirtualMailboxTests {
    /// notmuch's view of one mailbox, through a config file naming it.
    private func search(_ mailbox: URL, _ fixture: MailFixture, _ arguments: String...) throws -> String {
        let config = fixture.directory.appendingPathComponent("view-\(mailbox.lastPathComponent).conf")
        try "[database]\npath=\(mailbox.path)\n".write(to: config, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/notmuch")
        process.arguments = arguments
        process.environment = ["NOTMUCH_CONFIG": config.path, "HOME": fixture.directory.path]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func eachRecipientGetsItsOwnMaildirAndDatabase() throws {
        let fixture = try MailFixture(createDatabase: false)
        let vmail = fixture.directory.appendingPathComponent("vmail")
        try FileManager.default.createDirectory(at: vmail, withIntermediateDirectories: true)
        // No notmuch config at all: the mailbox is all there is.
        fixture.extraEnvironment = ["NOTMUCH_CONFIG": "/nonexistent/config"]
        let template = vmail.path + "/%d/%u"
        for (n, recipient) in ["alice@one.example", "Bob+shop@Two.Example", "alice@one.example"].enumerated() {
            let result = try fixture.deliver(sampleMessage(id: "v\(n)@example.org"),
                                             ["--mail-root", template, "--recipient", recipient, "+virtual"])
            #expect(result.status == 0, "\(result.stderr)")
        }
        let alice = vmail.appendingPathComponent("one.example/alice")
        let bob = vmail.appendingPathComponent("two.example/bob")
        #expect(try search(alice, fixture, "count", "*") == "2")
        #expect(try search(bob, fixture, "count", "*") == "1")
        #expect(try search(bob, fixture, "search", "--output=tags", "*") == "inbox\nunread\nvirtual")
        #expect(try search(alice, fixture, "new") == "No new mail.")
        let mode = try FileManager.default.attributesOfItem(atPath: bob.path)[.posixPermissions] as? Int
        #expect(mode == 0o700)
    }

    @Test func aMailboxUsesItsOwnRulesAndSeesTheExtension() throws {
        let fixture = try MailFixture(createDatabase: false)
        let vmail = fixture.directory.appendingPathComponent("vmail")
        let mailbox = vmail.appendingPathComponent("example.org/carol")
        try FileManager.default.createDirectory(at: mailbox.appendingPathComponent(".notmuch"), withIntermediateDirectories: true)
        try "+shopping folder:shop -- extension:shop\n".write(to: mailbox.appendingPathComponent(".notmuch/deliver.rules"),
                                                          atomically: true, encoding: .utf8)
        fixture.extraEnvironment = ["NOTMUCH_CONFIG": "/nonexistent/config", "RECIPIENT": "carol+shop@example.org"]
        let result = try fixture.deliver(sampleMessage(id: "shop@example.org"), ["--mail-root", vmail.path + "/%d/%u"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try search(mailbox, fixture, "count", "folder:shop and tag:shopping") == "1")
    }

    @Test(arguments: ["../etc@example.org", "x@..", "x@a/b", "@example.org", "nobody"])
    func recipientsThatWouldLeaveTheRootAreRefused(recipient: String) throws {
        let fixture = try MailFixture(createDatabase: false)
        let vmail = fixture.directory.appendingPathComponent("vmail")
        try FileManager.default.createDirectory(at: vmail, withIntermediateDirectories: true)
        let result = try fixture.deliver(sampleMessage(), ["--mail-root", vmail.path + "/%d/%u", "--recipient", recipient])
        #expect(result.status == 64, "\(result.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: vmail.path).isEmpty)
    }

    @Test func logFileGetsOneLinePerDelivery() throws {
        let fixture = try MailFixture()
        let log = fixture.directory.appendingPathComponent("deliver.log")
        #expect(try fixture.deliver(sampleMessage(id: "l1@example.org"), ["--log", log.path]).status == 0)
        #expect(try fixture.deliver("", ["--log", log.path]).status == 65)
        let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].contains("delivered id=<l1@example.org>") && lines[0].contains("outcome=indexed"))
        #expect(lines[1].contains("failed outcome=refused status=65"))
    }
}
