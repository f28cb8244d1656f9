import Foundation
import Notmuch
import Testing

/// The wrapper against a real database made by the notmuch CLI's library.
final class TemporaryDatabase {
    let directory: URL
    let configFile: URL
    var mailRoot: URL { directory.appendingPathComponent("mail") }

    init(extraConfig: String = "") throws {
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("nm-\(UUID().uuidString)")
        configFile = directory.appendingPathComponent("config")
        for sub in ["tmp", "new", "cur"] {
            try FileManager.default.createDirectory(at: directory.appendingPathComponent("mail/\(sub)"),
                                                    withIntermediateDirectories: true)
        }
        try """
            [database]
            path=\(mailRoot.path)
            [new]
            tags=unread;inbox;
            \(extraConfig)

            """.write(to: configFile, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    var config: ConfigSource { .file(configFile.path) }

    func writeMessage(_ name: String, id: String, subject: String = "Test") throws -> String {
        let path = mailRoot.appendingPathComponent("new/\(name)").path
        try "From: a@example.org\nSubject: \(subject)\nMessage-ID: <\(id)>\n\nbody\n"
            .write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    /// A mail root with a new database, open for writing.
    static func created() throws -> (TemporaryDatabase, Database) {
        let temp = try TemporaryDatabase()
        return (temp, try Database.create(config: temp.config))
    }

    /// Writes a message into new/ and indexes it: its path and what indexing said.
    func index(_ name: String, id: String, in database: Database) throws -> (path: String, indexed: Database.Indexed) {
        let path = try writeMessage(name, id: id)
        return (path, try database.indexFile(path))
    }
}

@Suite struct DatabaseTests {
    @Test func openingAMissingDatabaseThrowsATypedError() throws {
        let temp = try TemporaryDatabase()
        let error = #expect(throws: NotmuchError.self) {
            try Database.open(mode: .readWrite, config: temp.config)
        }
        #expect(error?.status != .success)
        #expect(error?.description.isEmpty == false)
    }

    @Test func loadConfigWithoutADatabase() throws {
        let temp = try TemporaryDatabase(extraConfig: "[custom]\nkey=a;b")
        let loaded = try Database.loadConfig(config: temp.config)
        #expect(loaded.missingDatabase)
        #expect(!loaded.missingConfigFile)
        #expect(loaded.database.mailRoot == temp.mailRoot.path)
        #expect(loaded.database.newTags == ["unread", "inbox"])
        #expect(try loaded.database.synchronizesFlags())
        #expect(loaded.database.configValues("custom.key") == ["a", "b"])
    }

    @Test func indexTagQueryAndDuplicate() throws {
        let temp = try TemporaryDatabase()
        let database = try Database.create(config: temp.config)
        let first = try temp.writeMessage("one", id: "same@example.org", subject: "First")
        let second = try temp.writeMessage("two", id: "same@example.org", subject: "First")
        try database.atomically {
            let indexed = try database.indexFile(first)
            #expect(!indexed.isDuplicate)
            try indexed.message.withTagsFrozen {
                try indexed.message.addTag("alpha")
                try indexed.message.addTag("beta")
                try indexed.message.removeTag("alpha")
            }
            let again = try database.indexFile(second)
            #expect(again.isDuplicate)
            #expect(again.message.id == "same@example.org")
        }
        #expect(try database.query("tag:beta").count() == 1)
        let messages = try database.query("subject:First").messages()
        #expect(messages.map(\.tags) == [["beta"]])
        #expect(Set(messages[0].filenames) == [first, second])
        #expect(messages[0].header("subject") == "First")
        #expect(try database.findMessage(id: "same@example.org")?.id == "same@example.org")
        #expect(try database.findMessage(id: "absent@example.org") == nil)
        try database.close()
    }

    @Test func notAnEmailIsATypedError() throws {
        let temp = try TemporaryDatabase()
        let database = try Database.create(config: temp.config)
        let path = temp.mailRoot.appendingPathComponent("new/junk").path
        try "no headers at all\n".write(toFile: path, atomically: false, encoding: .utf8)
        let error = #expect(throws: NotmuchError.self) { try database.indexFile(path) }
        #expect(error?.status == .fileNotEmail)
    }

    @Test func messagesOutliveTheirQueryAndDatabaseVariables() throws {
        let temp = try TemporaryDatabase()
        let path = try temp.writeMessage("m", id: "life@example.org")
        do {
            let database = try Database.create(config: temp.config)
            _ = try database.indexFile(path)
            try database.close()
        }
        var message: Message?
        do {
            let database = try Database.open(mode: .readOnly, config: temp.config)
            message = try database.query("id:life@example.org").messages().first
        }
        // The query and the database are gone from scope; the message keeps them alive.
        #expect(message?.id == "life@example.org")
        #expect(message?.filenames == [path])
    }

    @Test func flagSyncRenamesIntoCur() throws {
        let (temp, database) = try TemporaryDatabase.created()
        let message = try temp.index("flags", id: "flags@example.org", in: database).indexed.message
        try message.addTag("flagged")
        try message.syncTagsToMaildirFlags()
        // No `unread` tag means seen: S as well as F.
        #expect(message.filenames == [temp.mailRoot.appendingPathComponent("cur/flags:2,FS").path])
        try database.close()
    }
}
