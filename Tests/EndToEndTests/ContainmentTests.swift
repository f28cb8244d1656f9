import Foundation
import Testing

/// Nothing is written outside the mail root, whatever symlinks the maildir,
/// a rule's folder, the queue or a virtual mailbox's directories hold.
@Suite("Containment in the mail root")
struct ContainmentTests {
    /// A directory beside the mail root where nothing may ever land.
    private func outsideDirectory(_ fixture: MailFixture) throws -> URL {
        let outside = fixture.directory.appendingPathComponent("outside")
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        return outside
    }

    /// Everything under `directory`, files and folders, relative to it.
    private func everything(under directory: URL) -> [String] {
        FileManager.default.enumerator(atPath: directory.path)?.allObjects.compactMap { $0 as? String } ?? []
    }

    /// Makes `relative` (under the mail root) a symlink to `target`, with
    /// the maildir's other subdirectories real ones.
    private func linkOut(_ fixture: MailFixture, _ relative: String, to target: URL) throws {
        let link = fixture.mailRoot.appendingPathComponent(relative)
        let folder = link.deletingLastPathComponent()
        for sub in ["tmp", "new", "cur"] where sub != link.lastPathComponent {
            try FileManager.default.createDirectory(at: folder.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: target)
    }

    /// `-unread` gets the flag S, so the file moves to cur/: a cur/ leading
    /// out would take it there.
    @Test(arguments: [("new", [String]()), ("tmp", []), ("cur", ["-unread"]),
                      ("box/new", ["--folder=box"]), ("box/tmp", ["--folder=box"]),
                      ("box/cur", ["--folder=box", "-unread"])])
    func aMaildirSubdirectoryLeadingOutIsRefused(link: String, arguments: [String]) throws {
        let fixture = try MailFixture()
        let outside = try outsideDirectory(fixture)
        try linkOut(fixture, link, to: outside)
        let result = try fixture.deliver(sampleMessage(), arguments)
        #expect(result.status == 75, "\(result.stderr)")
        #expect(result.stderr.contains(link) && result.stderr.contains("outside"), "\(result.stderr)")
        #expect(everything(under: outside).isEmpty)
        #expect(fixture.files().isEmpty, "a refused delivery leaves nothing, not even in tmp/")
        #expect(try fixture.count() == 0)
    }

    @Test func aSymlinkInsideTheRootStillWorks() throws {
        // A folder linked to another folder of the same mail root is fine.
        let fixture = try MailFixture()
        let real = fixture.mailRoot.appendingPathComponent("archive")
        try makeMaildir(real)
        try FileManager.default.createSymbolicLink(at: fixture.mailRoot.appendingPathComponent("box"), withDestinationURL: real)
        let result = try fixture.deliver(sampleMessage(id: "inside@example.org"), ["--folder=box"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(fixture.files().count == 1 && fixture.files()[0].hasPrefix("archive/new/"), "\(fixture.files())")
    }

    @Test func aRuleFolderWhoseNewLeadsOutKeepsTheMailInPlace() throws {
        let fixture = try MailFixture()
        let outside = try outsideDirectory(fixture)
        try linkOut(fixture, "Junk/new", to: outside)
        try fixture.useRules("+junk folder:Junk -- *\n")
        let result = try fixture.deliver(sampleMessage(id: "junk@example.org"), ["-v"])
        #expect(result.status == 0, "a rule's folder must not bounce mail: \(result.stderr)")
        #expect(result.stderr.contains("rule folder 'Junk' not used"), "\(result.stderr)")
        #expect(everything(under: outside).isEmpty)
        let files = fixture.files()
        #expect(files.count == 1 && files[0].hasPrefix("new/"), "\(files)")
        #expect(try fixture.tags("id:junk@example.org") == ["inbox", "junk", "unread"])
        try fixture.expectNothingNew()
    }

    @Test func aQueueDirectoryLeadingOutIsRefused() throws {
        let fixture = try MailFixture()
        let outside = try outsideDirectory(fixture)
        try FileManager.default.createSymbolicLink(
            at: fixture.mailRoot.appendingPathComponent(".notmuch/notmuch-deliver-queue"), withDestinationURL: outside)
        let holder = try LockHolder(fixture)
        let result = try fixture.deliver(sampleMessage(), ["--lock-timeout", "0.5"], timeout: 30)
        holder.release()
        #expect(result.status == 75, "\(result.stderr)")
        #expect(result.stderr.contains("notmuch-deliver-queue") && result.stderr.contains("outside"), "\(result.stderr)")
        #expect(everything(under: outside).isEmpty)
        #expect(fixture.files().isEmpty, "the message is not reported delivered, so it is not kept")
    }

    @Test func aFlushDoesNotTouchAQueueBehindALinkOut() throws {
        // A real queue entry, then its directory moved out and linked back.
        let fixture = try MailFixture()
        let holder = try LockHolder(fixture)
        let queued = try fixture.deliver(sampleMessage(id: "linked-queue@example.org"), ["--lock-timeout", "0.3"], timeout: 30)
        holder.release()
        #expect(queued.status == 0, "\(queued.stderr)")
        let queue = fixture.mailRoot.appendingPathComponent(".notmuch/notmuch-deliver-queue")
        let outside = try outsideDirectory(fixture).appendingPathComponent("queue")
        try FileManager.default.moveItem(at: queue, to: outside)
        try FileManager.default.createSymbolicLink(at: queue, withDestinationURL: outside)
        let before = everything(under: outside).sorted()
        #expect(before.contains { $0.hasPrefix("Q1~") }, "\(before)")

        let flushed = try fixture.command(["flush"])
        #expect(flushed.status == 75, "\(flushed.stderr)")
        #expect(flushed.stderr.contains("queue directory cannot be used"), "\(flushed.stderr)")
        #expect(everything(under: outside).sorted() == before, "the flush applied or removed records behind the link")
        #expect(try fixture.count("id:linked-queue@example.org") == 0)
    }

    @Test func aFlusherLockThatIsASymlinkIsRefused() throws {
        // Followed, it would create a file outside; ignored, records would
        // wait for a turn nobody can take.
        let fixture = try MailFixture()
        let outside = try outsideDirectory(fixture)
        let queue = fixture.mailRoot.appendingPathComponent(".notmuch/notmuch-deliver-queue")
        try FileManager.default.createDirectory(at: queue, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: queue.appendingPathComponent("flusher.lock"),
                                                   withDestinationURL: outside.appendingPathComponent("lock"))
        let result = try fixture.deliver(sampleMessage(), timeout: 30)
        #expect(result.status == 75, "\(result.stderr)")
        #expect(result.stderr.contains("flusher.lock"), "\(result.stderr)")
        #expect(everything(under: outside).isEmpty)
        #expect(fixture.files().isEmpty)
    }

    @Test func aVirtualMailboxDomainLeadingOutIsRefused() throws {
        let fixture = try MailFixture(createDatabase: false)
        let outside = try outsideDirectory(fixture)
        let vmail = fixture.directory.appendingPathComponent("vmail")
        try FileManager.default.createDirectory(at: vmail, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: vmail.appendingPathComponent("example.org"), withDestinationURL: outside)
        fixture.extraEnvironment = ["NOTMUCH_CONFIG": "/nonexistent/config"]
        let result = try fixture.deliver(sampleMessage(), ["--mail-root", fixture.virtualTemplate,
                                                           "--recipient", "dave@example.org"])
        #expect(result.status == 75, "\(result.stderr)")
        #expect(result.stderr.contains("outside"), "\(result.stderr)")
        #expect(everything(under: outside).isEmpty)
    }

    @Test(arguments: [String(repeating: "a", count: 300) + "@example.org",
                      "bob@" + String(repeating: "d", count: 300) + ".example"])
    func aRecipientTooLongForADirectoryNameBouncesAtOnce(recipient: String) throws {
        let fixture = try MailFixture.virtualOnly()
        let vmail = fixture.virtualRoot
        let started = Date()
        let result = try fixture.deliver(sampleMessage(), ["--mail-root", fixture.virtualTemplate, "--recipient", recipient],
                                         timeout: 30)
        // EX_NOUSER: postfix's pipe(8) bounces it as "user unknown" instead of deferring it for days.
        #expect(result.status == 67, "\(result.stderr)")
        #expect(result.stderr.contains("NAME_MAX"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "the reason in one line: \(result.stderr)")
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(everything(under: vmail).isEmpty)
    }

    @Test func aMailboxPathOverPathMaxBouncesAtOnce() throws {
        // Each name fits NAME_MAX, the whole path does not fit PATH_MAX.
        let fixture = try MailFixture.virtualOnly()
        let vmail = fixture.virtualRoot
        let user = String(repeating: "u", count: 250)
        let template = vmail.path + "/%d" + String(repeating: "/%u", count: 15)
        let result = try fixture.deliver(sampleMessage(), ["--mail-root", template, "--recipient", user + "@example.org"])
        #expect(result.status == 67, "\(result.stderr)")
        #expect(result.stderr.contains("PATH_MAX"), "\(result.stderr)")
        #expect(everything(under: vmail).isEmpty)
    }

    /// A folder no directory can be (a name over NAME_MAX, a path over
    /// PATH_MAX) is a usage error, not a deferral that fails for days.
    @Test(arguments: [(String(repeating: "f", count: 300), "NAME_MAX"),
                      (Array(repeating: String(repeating: "f", count: 250), count: 17).joined(separator: "/"), "PATH_MAX")])
    func aFolderNoDirectoryCanBeIsAUsageError(folder: String, limit: String) throws {
        let fixture = try MailFixture()
        let result = try fixture.deliver(sampleMessage(), ["--folder", folder, "--create-folder"])
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.contains(limit), "\(result.stderr)")
        #expect(fixture.files().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.mailRoot.path).sorted() == [".notmuch"])
    }
}
