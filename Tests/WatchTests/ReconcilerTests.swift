import DeliveryKit
import Foundation
import Notmuch
import Testing
@testable import Watch

/// The scan and its commit, each against a real database and checked with
/// the notmuch CLI.
@Suite struct ReconcilerTests {
    /// A clock far ahead: every directory's mtime is then stored.
    private static func later() -> Int { Int(Date().timeIntervalSince1970) + 3600 }

    /// A scan of the whole tree as it would be made an hour from now (no
    /// directory in its current second), on its own read-only database.
    private static func scanLater(_ fixture: MailFixture, _ reconciler: Reconciler) throws -> Changes {
        let database = try reconciler.openReadOnly()
        defer { try? database.close() }
        var scan = TreeScan(tree: reconciler.tree, database: database)
        scan.now = later
        return try scan.scan(fixture.root)
    }

    @Test func aNewTreeIsIndexedAsNotmuchNewWould() throws {
        let fixture = try MailFixture()
        try fixture.maildir("INBOX", "ignored-lists")
        try fixture.write("INBOX/new/a", id: "a@x")
        try fixture.write("INBOX/cur/b:2,FS", id: "b@x")
        try fixture.write("INBOX/tmp/c", id: "c@x")            // tmp/ is never mail yet
        try fixture.write("ignored-lists/new/d", id: "d@x")    // new.ignore /^ignored-/
        try fixture.write("INBOX/.mbsyncstate", id: "e@x")     // new.ignore name
        try "not mail\n".write(toFile: fixture.root + "/INBOX/cur/notes", atomically: false, encoding: .utf8)
        let counts = try #require(try fixture.reconciler().reconcile())
        #expect(counts.added == 2 && counts.notMail == 1)
        #expect(try fixture.tags("a@x") == ["inbox", "unread"])
        #expect(try fixture.tags("b@x") == ["inbox", "flagged"])
        #expect(try fixture.notmuch("count", "*") == "2")
        // Listed again (the mtimes were of the current second), nothing found.
        let report = try fixture.notmuch("new")
        #expect(report.hasSuffix("No new mail.") && !report.contains("Added") && !report.contains("Removed"))
        #expect(try fixture.notmuch("count", "*") == "2")
    }

    @Test func aRenameAddsTheNewNameBeforeRemovingTheOldOne() throws {
        let fixture = try MailFixture()
        try fixture.maildir("INBOX")
        let old = try fixture.write("INBOX/new/m", id: "m@x")
        let reconciler = try fixture.reconciler()
        _ = try reconciler.reconcile()
        _ = try fixture.notmuch("tag", "+mine", "--", "id:m@x")
        try FileManager.default.moveItem(atPath: old, toPath: fixture.root + "/INBOX/cur/m:2,S")
        let changes = try reconciler.scan(fixture.root)
        #expect(changes.additions == [fixture.root + "/INBOX/cur/m:2,S"])
        #expect(changes.removals == [old])
        let counts = try #require(try reconciler.commit(changes))
        #expect(counts.addedFilenames == 1 && counts.removedFilenames == 1 && counts.removed == 0)
        // The user's tag stayed; the flags came along (seen: no unread).
        #expect(try fixture.tags("m@x") == ["inbox", "mine"])
        #expect(try fixture.files("m@x") == ["INBOX/cur/m:2,S"])
    }

    @Test func aStoredMtimeMeansTheLeafIsNotListedAgain() throws {
        let fixture = try MailFixture()
        try fixture.maildir("INBOX")
        try fixture.write("INBOX/new/one", id: "one@x")
        let reconciler = try fixture.reconciler()
        let first = try Self.scanLater(fixture, reconciler)
        #expect(first.mtimes.contains { $0.directory == fixture.root + "/INBOX/new" })
        _ = try reconciler.commit(first)
        // A file slipped in with the directory's mtime put back: the scan,
        // like notmuch new, trusts the stored mtime and does not list it.
        let new = fixture.root + "/INBOX/new"
        let before = try FileManager.default.attributesOfItem(atPath: new)[.modificationDate] as! Date
        try fixture.write("INBOX/new/two", id: "two@x")
        try FileManager.default.setAttributes([.modificationDate: before], ofItemAtPath: new)
        #expect(try Self.scanLater(fixture, reconciler).additions.isEmpty)
    }

    @Test func anEmptyFolderIsNoChange() throws {
        let fixture = try MailFixture()
        try fixture.maildir("INBOX")
        try fixture.write("INBOX/cur/one:2,S", id: "one@x")
        let reconciler = try fixture.reconciler()
        _ = try reconciler.commit(try Self.scanLater(fixture, reconciler))
        // new/ holds no mail, so it has no directory document to keep an
        // mtime in (as after notmuch new): listed each time, found empty,
        // and no change, so nothing is committed for it.
        let changes = try Self.scanLater(fixture, reconciler)
        #expect(changes.isEmpty, "changes: \(changes.mtimes.map(\.directory))")
    }

    @Test func nothingToDoTakesNoWriteLock() throws {
        let fixture = try MailFixture()
        try fixture.maildir("INBOX")
        try fixture.write("INBOX/cur/one:2,S", id: "one@x")
        var options = fixture.options
        options.lockTimeout = 0.2
        _ = try Reconciler(options: options).commit(try Reconciler(options: options).scan(fixture.root))
        // Another writer holds the lock: a commit of nothing neither waits
        // for it nor reports that it did not come.
        let writer = try Database.open(mode: .readWrite, config: .file(fixture.config))
        defer { try? writer.close() }
        let counts = try Reconciler(options: options).commit(Changes())
        #expect(counts != nil && counts?.isEmpty == true)
    }

    @Test func aRemovedFolderTakesItsMessagesAndItsDirectories() throws {
        let fixture = try MailFixture()
        try fixture.maildir("INBOX", "old")
        try fixture.write("old/cur/x:2,S", id: "x@x")
        try fixture.write("old/new/y", id: "y@x")
        try fixture.write("INBOX/new/z", id: "y@x")  // a copy of y survives
        let reconciler = try fixture.reconciler()
        _ = try reconciler.reconcile()
        try FileManager.default.removeItem(atPath: fixture.root + "/old")
        let changes = try reconciler.scan(fixture.root)
        #expect(changes.removedDirectories == [fixture.root + "/old"])
        let counts = try #require(try reconciler.commit(changes))
        #expect(counts.removed == 1 && counts.removedFilenames == 1)
        #expect(try fixture.files("y@x") == ["INBOX/new/z"])
        #expect(try fixture.notmuch("count", "*") == "1")
        #expect(try reconciler.openReadOnly().directory(fixture.root + "/old") == nil)
    }

    @Test func aNonMailFileIsTriedOnceUntilItChanges() throws {
        let fixture = try MailFixture()
        try fixture.maildir("INBOX")
        let path = fixture.root + "/INBOX/new/notes"
        try "not mail\n".write(toFile: path, atomically: false, encoding: .utf8)
        let reconciler = try fixture.reconciler()
        var changes = Changes()
        changes.additions = [path]
        #expect(try reconciler.commit(changes)?.notMail == 1)
        #expect(try reconciler.commit(changes)?.notMail == 0)
        try "From: a@x\nSubject: now mail\nMessage-ID: <n@x>\n\nb\n".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(try reconciler.commit(changes)?.added == 1)
    }
}
