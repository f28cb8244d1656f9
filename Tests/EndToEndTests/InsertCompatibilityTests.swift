import Foundation
import Testing

/// Where notmuch-deliver takes `notmuch insert`'s command line, it means
/// what notmuch insert means.
@Suite("notmuch insert's command line")
struct InsertCompatibilityTests {
    private func mode(_ path: URL) throws -> Int {
        try (FileManager.default.attributesOfItem(atPath: path.path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    /// The process's umask, which mkdir(2) applies to the mode asked for.
    private var umaskValue: Int {
        let old = umask(0o022)
        umask(old)
        return Int(old)
    }

    @Test func worldReadableCreatesFoldersReadableByAll() throws {
        let fixture = try MailFixture()
        let result = try fixture.deliver(sampleMessage(id: "open@x"), ["--folder=Lists/Open", "--create-folder", "--world-readable"])
        #expect(result.status == 0, "\(result.stderr)")
        let expected = 0o755 & ~umaskValue
        for folder in ["Lists", "Lists/Open", "Lists/Open/tmp", "Lists/Open/new", "Lists/Open/cur"] {
            #expect(try mode(fixture.mailRoot.appendingPathComponent(folder)) == expected, "\(folder)")
        }
        // Without it, folders stay private to the owner.
        #expect(try fixture.deliver(sampleMessage(id: "closed@x"), ["--folder=Private/Box", "--create-folder"]).status == 0)
        for folder in ["Private", "Private/Box", "Private/Box/new"] {
            #expect(try mode(fixture.mailRoot.appendingPathComponent(folder)) == 0o700 & ~umaskValue, "\(folder)")
        }
    }

    @Test func anEmptyFolderIsTheTopLevel() throws {
        let fixture = try MailFixture()
        for (id, arguments) in [("equals@x", ["--folder="]), ("separate@x", ["--folder", ""])] {
            let result = try fixture.deliver(sampleMessage(id: id), arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
        }
        #expect(fixture.files().allSatisfy { $0.hasPrefix("new/") }, "\(fixture.files())")
        #expect(try fixture.count("folder:\"\"") == 2)
        try fixture.expectNothingNew()
    }
}
