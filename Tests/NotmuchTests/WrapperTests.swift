import Foundation
import Notmuch
import Testing

/// The wrapper's own shapes: status patterns and how atomic sections end.
@Suite struct WrapperTests {
    @Test func aStatusMatchesAThrownErrorInCatch() throws {
        let temp = try TemporaryDatabase()
        let database = try Database.create(config: temp.config)
        let path = temp.mailRoot.appendingPathComponent("new/junk").path
        try "no headers at all\n".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(caught { _ = try database.indexFile(path) } == .fileNotEmail)
        // Untyped errors too, and only a NotmuchError matches.
        #expect(Status.fileNotEmail ~= (NotmuchError(.fileNotEmail) as any Error))
        #expect(!(Status.fileNotEmail ~= (CocoaError(.fileNoSuchFile) as any Error)))
    }

    @Test func creatingTwiceIsCaughtByItsStatus() throws {
        let temp = try TemporaryDatabase()
        try Database.create(config: temp.config).close()
        #expect(caught { _ = try Database.create(config: temp.config) } == .databaseExists)
    }

    /// Which of a few statuses `body` threw, through `catch Status.x`.
    private func caught(_ body: () throws -> Void) -> Status? {
        do {
            try body()
        } catch Status.fileError {
            return .fileError
        } catch Status.fileNotEmail {
            return .fileNotEmail
        } catch Status.databaseExists {
            return .databaseExists
        } catch {
            return nil
        }
        return .success
    }

    @Test func anAbortedSectionLeavesNothingCommitted() throws {
        let temp = try TemporaryDatabase()
        let kept = try temp.writeMessage("kept", id: "kept@example.org")
        let earlier = try temp.writeMessage("earlier", id: "earlier@example.org")
        let dropped = try temp.writeMessage("dropped", id: "dropped@example.org")
        do {
            let database = try Database.create(config: temp.config)
            try database.atomically { _ = try database.indexFile(kept) }
            try database.close()
        }
        let database = try Database.open(mode: .readWrite, config: temp.config)
        try database.atomically { _ = try database.indexFile(earlier) }
        let seen = try database.atomicSection {
            let message = try database.indexFile(dropped).message
            try message.addTag("never")
            // Inside the section the change is visible, ...
            return .abort(try database.query("tag:never").count())
        }
        #expect(seen == 1)
        // ... and after it nothing of it is, to another reader. A section
        // ended before it in the same batch, not yet on disk, went with it;
        // what a close committed stays.
        let reader = try Database.open(mode: .readOnly, config: temp.config)
        #expect(try reader.findMessage(id: "dropped@example.org") == nil)
        #expect(try reader.query("tag:never").count() == 0)
        #expect(try reader.findMessage(id: "earlier@example.org") == nil)
        #expect(try reader.findMessage(id: "kept@example.org") != nil)
    }

    @Test func aCommittedSectionGivesItsValue() throws {
        let temp = try TemporaryDatabase()
        let path = try temp.writeMessage("one", id: "one@example.org")
        let database = try Database.create(config: temp.config)
        let id = try database.atomicSection { .commit(try database.indexFile(path).message.id) }
        #expect(id == "one@example.org")
        try database.close()
        let reader = try Database.open(mode: .readOnly, config: temp.config)
        #expect(try reader.findMessage(id: "one@example.org") != nil)
    }
}

/// Xapian's files and lock, seen from outside libnotmuch.
@Suite struct DatabaseFilesTests {
    @Test func theWriteLockIsHeldWhileAWriterHasTheDatabase() throws {
        let temp = try TemporaryDatabase()
        let path = temp.mailRoot.path
        #expect(!Database.isWriteLockHeld(databasePath: path))
        // An OFD lock belongs to the open file, not the process: the probe
        // sees the lock this process's own writer holds.
        let writer = try Database.create(config: temp.config)
        #expect(Database.isWriteLockHeld(databasePath: path))
        try writer.close()
        #expect(!Database.isWriteLockHeld(databasePath: path))
        // A reader takes no lock.
        let reader = try Database.open(mode: .readOnly, config: temp.config)
        #expect(!Database.isWriteLockHeld(databasePath: path))
        _ = reader
    }

    @Test func theFolderIsDotNotmuchUnlessXapianIsRightBelow() throws {
        let temp = try TemporaryDatabase()
        let root = temp.mailRoot.path
        #expect(!Database.exists(databasePath: root))
        #expect(Database.folder(databasePath: root) == root + "/.notmuch")
        try Database.create(config: temp.config).close()
        #expect(Database.exists(databasePath: root))
        #expect(Database.folder(databasePath: root + "/") == root + "/.notmuch")
        // database.path naming the .notmuch folder itself: xapian/ is right below it.
        let own = root + "/.notmuch"
        #expect(Database.exists(databasePath: own))
        #expect(Database.folder(databasePath: own) == own)
    }
}
