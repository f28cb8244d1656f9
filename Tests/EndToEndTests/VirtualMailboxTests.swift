import Foundation
import Testing

@Suite("Virtual mailboxes and the log file")
struct VirtualMailboxTests {
    @Test func eachRecipientGetsItsOwnMaildirAndDatabase() throws {
        // No notmuch config at all: the mailbox is all there is.
        let fixture = try MailFixture.virtualOnly()
        let vmail = fixture.virtualRoot
        let template = fixture.virtualTemplate
        for (n, recipient) in ["alice@one.example", "Bob+shop@Two.Example", "alice@one.example"].enumerated() {
            let result = try fixture.deliver(sampleMessage(id: "v\(n)@example.org"),
                                             ["--mail-root", template, "--recipient", recipient, "+virtual"])
            #expect(result.status == 0, "\(result.stderr)")
        }
        let alice = vmail.appendingPathComponent("one.example/alice")
        let bob = vmail.appendingPathComponent("two.example/bob")
        #expect(try fixture.notmuchIn(alice, "count", "*") == "2")
        #expect(try fixture.notmuchIn(bob, "count", "*") == "1")
        #expect(try fixture.notmuchIn(bob, "search", "--output=tags", "*") == "inbox\nunread\nvirtual")
        #expect(try fixture.notmuchIn(alice, "new") == "No new mail.")
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
        let result = try fixture.deliver(sampleMessage(id: "shop@example.org"), ["--mail-root", fixture.virtualTemplate])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try fixture.notmuchIn(mailbox, "count", "folder:shop and tag:shopping") == "1")
    }

    @Test(arguments: ["../etc@example.org", "x@..", "x@a/b", "@example.org", "nobody"])
    func recipientsThatWouldLeaveTheRootAreRefused(recipient: String) throws {
        _ = try MailFixture(createDatabase: false).expectRefused(recipient: recipient)
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
