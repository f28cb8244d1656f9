@testable import DeliveryKit
import Foundation
import MaildirKit
import SystemPackage
import TestSupport
import Testing
import Threads

/// A mail root with a notmuch database made by the real notmuch CLI, and
/// the CLI to look at what was indexed.
struct MailboxFixture {
    let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("nd-path-\(UUID().uuidString)")
    var mail: URL { directory.appendingPathComponent("mail") }
    var config: URL { directory.appendingPathComponent("config") }
    var rules: URL { directory.appendingPathComponent("rules") }

    /// `extra`: more lines for the config's [deliver] section.
    init(rules: String = "+ruled -- *\n", extra: String = "") throws {
        try FileManager.default.createDirectory(at: mail, withIntermediateDirectories: true)
        try rules.write(to: self.rules, atomically: true, encoding: .utf8)
        try "[database]\npath=\(mail.path)\n[new]\ntags=inbox;\n[deliver]\nrules=\(self.rules.path)\n\(extra)"
            .write(to: config, atomically: true, encoding: .utf8)
        _ = try notmuch("new")
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }

    var options: DeliveryOptions {
        var options = DeliveryOptions()
        options.config = .file(config.path)
        options.runHooks = false
        return options
    }

    @discardableResult
    func notmuch(_ arguments: String...) throws -> String {
        try notmuchOutput(arguments, config: config.path, home: directory.path)
    }

    /// An open descriptor on `text`, written to a file of the fixture.
    func input(_ text: String) throws -> FileDescriptor {
        let file = directory.appendingPathComponent("in-\(UUID().uuidString)")
        try text.write(to: file, atomically: true, encoding: .utf8)
        return try FileDescriptor.open(FilePath(file.path), .readOnly)
    }

    static func message(_ id: String) -> String {
        "From: a@example.org\nTo: b@example.org\nSubject: \(id)\nMessage-ID: <\(id)>\n\nbody\n"
    }

    /// Every file below the mail root's tmp/ and new/.
    func files(_ subdirectory: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: mail.appendingPathComponent(subdirectory).path)) ?? []
    }
}

/// A committer that counts what the intake asks of it, to test the intake
/// alone (the database is not involved).
final class CountingCommitter: Committer, @unchecked Sendable {
    var publishing: Publishing = .linked
    var prepared = 0
    var cancelled = 0

    func prepare(mailbox: Mailbox, request: MessageRequest) { prepared += 1 }
    func cancel(_ preparation: Void, mailbox: Mailbox) { cancelled += 1 }
    func submit(_ message: AcceptedMessage, preparation: Void, timer: inout PhaseTimer) -> AcceptedMessage { message }
    func report(_ ticket: AcceptedMessage, for message: AcceptedMessage, until deadline: Double) -> DeliveryReport {
        DeliveryReport(path: message.file.path.string, messageID: nil, tags: [], outcome: .indexed, warning: nil, traces: [])
    }
    func afterCare(_ report: DeliveryReport, for message: AcceptedMessage) {}
}

@Suite("The intake")
struct IntakeTests {
    private func accept(_ fixture: MailboxFixture, _ text: String, committer: CountingCommitter,
                        filing: Filing = Filing(), wanted: Bool = true) throws(DeliveryError) -> AcceptedMessage {
        let mailbox = try Mailboxes(fixture.options).findOrCreate(recipient: nil)
        let input: FileDescriptor
        do { input = try fixture.input(text) } catch { throw DeliveryError(.temporary, "\(error)") }
        defer { try? input.close() }
        var timer = PhaseTimer(path: nil)
        return try Intake.accept(input, request: MessageRequest(envelope: Envelope(), filing: filing), mailbox: mailbox,
                                 committer: committer, wanted: { wanted }, timer: &timer).0
    }

    @Test func mailIsLinkedIntoNewWithItsFactsAndThePreparationMadeOnce() throws {
        let fixture = try MailboxFixture()
        defer { fixture.remove() }
        let committer = CountingCommitter()
        let message = try accept(fixture, MailboxFixture.message("one@x"), committer: committer)
        #expect(message.file.path.string.contains("/new/"))
        #expect(fixture.files("new").count == 1)
        #expect(fixture.files("tmp").isEmpty)
        #expect(message.preevaluated != nil, "the rules' conditions that need no index are evaluated at intake")
        #expect(message.logHeaders?.values("Subject").first == "one@x")
        #expect(committer.prepared == 1 && committer.cancelled == 0)
    }

    @Test func notMailIsRefusedBeforeTheCommitterHearsOfItAndLeavesNothing() throws {
        let fixture = try MailboxFixture()
        defer { fixture.remove() }
        let committer = CountingCommitter()
        #expect(throws: DeliveryError.self) { try accept(fixture, "just some text\n", committer: committer) }
        #expect(fixture.files("new").isEmpty)
        #expect(fixture.files("tmp").isEmpty)
        #expect(committer.prepared == 0)
    }

    @Test func keepKeepsNotMailAndSaysSo() throws {
        let fixture = try MailboxFixture()
        defer { fixture.remove() }
        var filing = Filing()
        filing.keep = true
        let message = try accept(fixture, "just some text\n", committer: CountingCommitter(), filing: filing)
        #expect(message.keptNotMail?.kind == .notAMessage)
        #expect(fixture.files("new").count == 1)
    }

    @Test func aDeliveryGivenUpLeavesNothing() throws {
        let fixture = try MailboxFixture()
        defer { fixture.remove() }
        let committer = CountingCommitter()
        #expect(throws: DeliveryError.self) {
            try accept(fixture, MailboxFixture.message("late@x"), committer: committer, wanted: false)
        }
        #expect(fixture.files("new").isEmpty)
        #expect(fixture.files("tmp").isEmpty)
        #expect(committer.prepared == 0)
    }

    @Test func aScratchCopyStaysInTmpAndCountsNoQuota() throws {
        let fixture = try MailboxFixture(extra: "quota=1000C\n")
        defer { fixture.remove() }
        let committer = CountingCommitter()
        committer.publishing = .scratch
        let message = try accept(fixture, MailboxFixture.message("scratch@x"), committer: committer)
        #expect(message.file.path.string.contains("/tmp/"))
        #expect(message.measured == nil)
        #expect(fixture.files("new").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: fixture.mail.appendingPathComponent("maildirsize").path))
    }

    @Test func overQuotaIsRefusedBeforeTheSyncsAndLeavesNothing() throws {
        let fixture = try MailboxFixture(extra: "quota=1C\n")
        defer { fixture.remove() }
        let committer = CountingCommitter()
        _ = try accept(fixture, MailboxFixture.message("first@x"), committer: committer)
        #expect(throws: DeliveryError.self) { try accept(fixture, MailboxFixture.message("second@x"), committer: committer) }
        #expect(fixture.files("new").count == 1)
        #expect(fixture.files("tmp").isEmpty)
        #expect(committer.prepared == 1)
    }
}

@Suite("Finding a mailbox")
struct MailboxesTests {
    @Test func findingAVirtualMailboxCreatesNothing() throws {
        let fixture = try MailboxFixture()
        defer { fixture.remove() }
        var options = DeliveryOptions()
        options.mailRootTemplate = fixture.directory.path + "/vmail/%d/%u"
        try FileManager.default.createDirectory(at: fixture.directory.appendingPathComponent("vmail"),
                                                withIntermediateDirectories: true)
        let mailboxes = Mailboxes(options)
        #expect(throws: DeliveryError.self) { try mailboxes.find(recipient: "anyone@example.org") }
        #expect(!FileManager.default.fileExists(atPath: fixture.directory.path + "/vmail/example.org"))
        let made = try mailboxes.findOrCreate(recipient: "anyone@example.org")
        #expect(made.mailRoot == fixture.directory.path + "/vmail/example.org/anyone")
        #expect(try mailboxes.find(recipient: "Anyone+x@example.org").mailRoot == made.mailRoot)
    }

    @Test func aCachingFinderKeepsTheMailboxAndReloadForgetsIt() throws {
        let fixture = try MailboxFixture()
        defer { fixture.remove() }
        let mailboxes = Mailboxes(fixture.options, caching: true)
        let first = try mailboxes.find(recipient: nil)
        #expect(try mailboxes.find(recipient: nil) === first)
        mailboxes.reload()
        #expect(try mailboxes.find(recipient: nil) !== first)
    }
}

@Suite("The committers")
struct CommitterTests {
    private func deliver<C: Committer>(_ path: DeliveryPath<C>, _ fixture: MailboxFixture, _ id: String,
                                       envelope: Envelope = Envelope()) throws -> DeliveryReport {
        let input = try fixture.input(MailboxFixture.message(id))
        defer { try? input.close() }
        var timer = PhaseTimer(path: nil)
        return try path.deliver(input, request: MessageRequest(envelope: envelope, filing: fixture.options.filing),
                                until: Monotonic.seconds + 30, timer: &timer)
    }

    @Test func theDirectCommitterIndexesWithTheRules() throws {
        let fixture = try MailboxFixture()
        defer { fixture.remove() }
        let path = DeliveryPath(Mailboxes(fixture.options), committer: DirectCommit())
        #expect(try deliver(path, fixture, "direct@x").outcome == .indexed)
        #expect(try fixture.notmuch("search", "--output=tags", "id:direct@x") == "inbox\nruled")
        #expect(try fixture.notmuch("new").hasSuffix("No new mail."))
    }

    @Test func theGroupCommitterCommitsStagedMessagesTogether() throws {
        let fixture = try MailboxFixture()
        defer { fixture.remove() }
        let deliverer = Deliverer(fixture.options)
        var staged: [Deliverer.Staged] = []
        for id in ["g1@x", "g2@x", "g3@x"] {
            let input = try fixture.input(MailboxFixture.message(id))
            defer { try? input.close() }
            staged.append(try deliverer.stage(input, envelope: Envelope()))
        }
        for one in staged { #expect(try deliverer.finish(one, until: Monotonic.seconds + 30).outcome == .indexed) }
        #expect(try fixture.notmuch("count", "tag:ruled") == "3")
        #expect(try fixture.notmuch("new").hasSuffix("No new mail."))
    }

    @Test func theDryCommitterStoresNothing() throws {
        let fixture = try MailboxFixture()
        defer { fixture.remove() }
        let path = DeliveryPath(Mailboxes(fixture.options), committer: DryCommit())
        let report = try deliver(path, fixture, "dry@x")
        #expect(report.tags.contains("ruled"))
        #expect(fixture.files("new").isEmpty)
        #expect(fixture.files("tmp").isEmpty)
        #expect(try fixture.notmuch("count", "id:dry@x") == "0")
    }

    /// A quota warning goes through the committer of the message that
    /// crossed the threshold, and is tagged as configured, not by the rules.
    @Test func aQuotaWarningGoesThroughTheSameCommitterWithoutTheRules() throws {
        let fixture = try MailboxFixture(extra: "quota=3C\nquota_warn=50\n")
        defer { fixture.remove() }
        let deliverer = Deliverer(fixture.options)
        for id in ["q1@x", "q2@x"] {
            let input = try fixture.input(MailboxFixture.message(id))
            defer { try? input.close() }
            _ = try deliverer.finish(try deliverer.stage(input, envelope: Envelope(recipient: "me@example.org")),
                                     until: Monotonic.seconds + 30)
        }
        #expect(try fixture.notmuch("count", "tag:quota-warning") == "1")
        #expect(try fixture.notmuch("count", "tag:quota-warning and tag:ruled") == "0")
        #expect(try fixture.notmuch("count", "tag:ruled") == "2")
        #expect(try fixture.notmuch("new").hasSuffix("No new mail."))
    }
}
