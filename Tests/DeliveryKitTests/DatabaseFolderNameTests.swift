import Foundation
import Testing
import MaildirKit
import Notmuch

/// Notmuch owns the database folder's name; MaildirKit keeps a copy so that
/// it can refuse the folder without depending on the database. These hold
/// the copy to the original and to where a real database puts its files.
@Suite struct DatabaseFolderNameTests {
    @Test func maildirKitsCopyIsNotmuchsName() {
        #expect(MailFolder.databaseFolderName == Database.folderName)
        #expect(MailFolder.reservedNames.contains(Database.folderName))
    }

    @Test func aFolderNamedLikeTheDatabaseIsRefused() {
        #expect(throws: (any Error).self) { try MailFolder.components(of: Database.folderName + "/x") }
    }

    @Test func aNewDatabaseLivesInItsStandardFolder() throws {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("nd-dbfolder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(!Database.exists(databasePath: root.path))
        let database = try Database.create(config: .none, databasePath: root.path)
        try database.close()
        #expect(Database.exists(databasePath: root.path))
        #expect(Database.folder(databasePath: root.path) == Database.standardFolder(databasePath: root.path))
        var isDirectory: ObjCBool = false
        let standard = root.appendingPathComponent(Database.folderName).path
        #expect(FileManager.default.fileExists(atPath: standard, isDirectory: &isDirectory) && isDirectory.boolValue)
    }
}
