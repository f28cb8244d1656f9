@testable import DeliveryKit
import Testing
import MaildirKit

@Suite struct EnvelopeStripperTests {
    /// Feeds `input` split at every pair of positions, as a pipe might.
    private func strip(_ input: String, splits: [Int]) -> String {
        var stripper = EnvelopeStripper()
        let bytes = Array(input.utf8)
        var output: [UInt8] = []
        var start = 0
        for split in splits + [bytes.count] where split >= start {
            output += stripper.feed(bytes[start..<split])
            start = split
        }
        output += stripper.finish()
        return String(decoding: output, as: UTF8.self)
    }

    private func everySplit(_ input: String, expect expected: String) {
        let count = input.utf8.count
        for first in 0...count {
            for second in first...count {
                #expect(strip(input, splits: [first, second]) == expected, "split at \(first), \(second)")
            }
        }
    }

    /// (input, what is left of it): the envelope line dropped wherever the
    /// chunks break, with CRLF too, and to nothing when no newline ends it;
    /// a message without one, input shorter than the marker and a From_
    /// line after the first kept whole.
    static let cases = [
        ("From a@b Mon Nov 24 09:00:00 2025\nSubject: x\n\nbody\n", "Subject: x\n\nbody\n"),
        ("From a@b Mon\r\nX: y\r\n", "X: y\r\n"),
        ("From a@b Mon Nov 24", ""),
        ("From: a@b\nSubject: x\n\nFrom here\n", "From: a@b\nSubject: x\n\nFrom here\n"),
        ("Fro", "Fro"),
        ("From", "From"),
        ("X: y\nFrom a@b Mon\n", "X: y\nFrom a@b Mon\n"),
    ]

    @Test(arguments: cases)
    func stripsTheEnvelopeLineOnlyWhereverTheChunksBreak(input: String, expected: String) {
        everySplit(input, expect: expected)
    }
}

@Suite struct TagOperationTests {
    @Test func parses() throws {
        #expect(try TagOperation(parsing: "+inbox") == .add("inbox"))
        #expect(try TagOperation(parsing: "-inbox") == .remove("inbox"))
        #expect(try TagOperation(parsing: "+lists/dev") == .add("lists/dev"))
    }

    @Test(arguments: ["inbox", "+", "-", "", "+" + String(repeating: "x", count: 201)])
    func refuses(argument: String) {
        #expect(throws: DeliveryError.self) { try TagOperation(parsing: argument) }
    }

    @Test func newTagsMayNotRemove() throws {
        #expect(try TagOperation.fromNewTags(["unread", "inbox"]) == [.add("unread"), .add("inbox")])
        let error = #expect(throws: DeliveryError.self) { try TagOperation.fromNewTags(["unread", "-inbox"]) }
        #expect(error?.exitStatus == .temporaryFailure)
    }
}

@Suite struct MailFolderTests {
    @Test func normalisesHarmlessNames() throws {
        #expect(try MailFolder.components(of: nil) == [])
        #expect(try MailFolder.components(of: "") == [])
        #expect(try MailFolder.components(of: "Sent") == ["Sent"])
        #expect(try MailFolder.components(of: "lists//dev/./") == ["lists", "dev"])
    }

    @Test(arguments: ["/etc", "..", "a/../b", "a/..", "../a"])
    func refusesEscapes(name: String) {
        let error = #expect(throws: FolderError.self) { try MailFolder.components(of: name) }
        #expect(error?.kind == .refusedName)
        #expect(error.map(DeliveryError.init)?.exitStatus == .usage)
    }

    /// The database's folder and a maildir's own subdirectories, at any level.
    @Test(arguments: [".notmuch", ".notmuch/xapian", "tmp", "new", "cur", "./tmp", "lists/cur",
                      "a/.notmuch/notmuch-deliver-quota-warning", "tmp/abs"])
    func refusesReservedNames(name: String) {
        let error = #expect(throws: FolderError.self) { try MailFolder.components(of: name) }
        #expect(error?.kind == .refusedName)
        #expect(error.map(DeliveryError.init)?.exitStatus == .usage)
    }

    @Test func refusesTheDatabaseFolderInsideTheRoot() throws {
        #expect(throws: FolderError.self) { try MailFolder.components(of: "db", database: ["db"]) }
        #expect(throws: FolderError.self) { try MailFolder.components(of: "db/x", database: ["db"]) }
        #expect(try MailFolder.components(of: "dbx", database: ["db"]) == ["dbx"])
        #expect(try MailFolder.components(of: "Tmp/news", database: ["db"]) == ["Tmp", "news"])
    }
}

@Suite struct MaildirNameTests {
    @Test func namesAreUniqueAndSafe() {
        let names = (0..<1000).map { _ in MaildirName.unique() }
        #expect(Set(names).count == names.count)
        for name in names {
            #expect(!name.contains("/"))
            #expect(!name.contains(":"))
        }
    }
}
