import Foundation
import Notmuch
import Testing

/// Directories, filename removal and flags to tags: what a watcher (and
/// `notmuch new`) reconciles a maildir with.
@Suite struct DirectoryTests {
    @Test func aDirectoryKnowsItsFilesAndStoresAnMtime() throws {
        let (temp, database) = try TemporaryDatabase.created()
        _ = try temp.index("b-first", id: "first@example.org", in: database)
        _ = try temp.index("a-second", id: "second@example.org", in: database)
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
        let (temp, database) = try TemporaryDatabase.created()
        let original = try temp.index("one", id: "same@example.org", in: database).path
        let (copy, indexed) = try temp.index("two", id: "same@example.org", in: database)
        #expect(indexed.isDuplicate)
        #expect(try database.removeFilename(original) == .otherFilesRemain)
        #expect(try database.findMessage(id: "same@example.org") != nil)
        #expect(try database.removeFilename(copy) == .messageRemoved)
        #expect(try database.findMessage(id: "same@example.org") == nil)
        try database.close()
    }

    @Test func deletingADirectoryDocument() throws {
        let (temp, database) = try TemporaryDatabase.created()
        let path = try temp.index("gone", id: "gone@example.org", in: database).path
        _ = try database.removeFilename(path)
        let new = try #require(try database.directory("new"))
        #expect(try new.childFiles().isEmpty)
        try new.delete()
        #expect(try database.directory("new") == nil)
        #expect(throws: NotmuchError.self) { try new.mtime() }
        try database.close()
    }

    @Test func flagsBecomeTagsFromEveryFile() throws {
        let (temp, database) = try TemporaryDatabase.created()
        let (inNew, indexed) = try temp.index("x", id: "flags@example.org", in: database)
        let message = indexed.message
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
