import Foundation
import Notmuch
import Testing

/// Directories, filename removal and flags to tags: what a watcher (and
/// `notmuch new`) reconciles a maildir with.
@Suite struct DirectoryTests {
    @Test func aDirectoryKnowsItsFilesAndStoresAnMtime() throws {
        let temp = try TemporaryDatabase()
        let database = try Database.create(config: temp.config)
        let first = try temp.writeMessage("b-first", id: "first@example.org")
        let second = try temp.writeMessage("a-second", id: "second@example.org")
        _ = try database.indexFile(first)
        _ = try database.indexFile(second)
        let new = try #require(try database.directory(temp.mailRoot.appendingPathComponent("new").path))
        #expect(try new.childFiles() == ["a-second", "b-first"])
        #expect(try new.mtime() == 0)
        try new.setMtime(1_700_000_000)
        // Relative paths name the same document.
        let again = try #require(try database.directory("new"))
        #expect(try again.mtime() == 1_700_000_000)
        let root = try #require(try database.directory(temp.mailRoot.path))
        #expect(try root.childDirectories() == ["new"])
        #expect(try database.directory("cur") == nil)
        try database.close()
    }

    @Test func removingAFilenameSaysWhetherTheMessageStays() throws {
        let temp = try TemporaryDatabase()
        let database = try Database.create(config: temp.config)
        let original = try temp.writeMessage("one", id: "same@example.org")
        let copy = try temp.writeMessage("two", id: "same@example.org")
        _ = try database.indexFile(original)
        #expect(try database.indexFile(copy).isDuplicate)
        #expect(try database.removeFilename(original) == .otherFilesRemain)
        #expect(try database.findMessage(id: "same@example.org") != nil)
        #expect(try database.removeFilename(copy) == .messageRemoved)
        #expect(try database.findMessage(id: "same@example.org") == nil)
        try database.close()
    }

    @Test func deletingADirectoryDocument() throws {
        let temp = try TemporaryDatabase()
        let database = try Database.create(config: temp.config)
        let path = try temp.writeMessage("gone", id: "gone@example.org")
        _ = try database.indexFile(path)
        _ = try database.removeFilename(path)
        let new = try #require(try database.directory("new"))
        #expect(try new.childFiles().isEmpty)
        try new.delete()
        #expect(try database.directory("new") == nil)
        #expect(throws: NotmuchError.self) { try new.mtime() }
        try database.close()
    }

    @Test func flagsBecomeTagsFromEveryFile() throws {
        let temp = try TemporaryDatabase()
        let database = try Database.create(config: temp.config)
        let inNew = try temp.writeMessage("x", id: "flags@example.org")
        let message = try database.indexFile(inNew).message
        try message.addTag("unread")
        // A file in new/ without ":2,": nothing to go on, tags unchanged.
        try message.syncMaildirFlagsToTags()
        #expect(message.tags.contains("unread"))
        let seen = temp.mailRoot.appendingPathComponent("cur/x:2,FS").path
        try FileManager.default.moveItem(atPath: inNew, toPath: seen)
        _ = try database.indexFile(seen)
        _ = try database.removeFilename(inNew)
        let moved = try #require(try database.findMessage(id: "flags@example.org"))
        try moved.syncMaildirFlagsToTags()
        #expect(Set(moved.tags) == ["flagged"])
        #expect(try database.findMessage(filename: seen)?.id == "flags@example.org")
        try database.close()
    }
}
