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

    @Test func dropsTheEnvelopeLineWhereverTheChunksBreak() {
        everySplit("From a@b Mon Nov 24 09:00:00 2025\nSubject: x\n\nbody\n", expect: "Subject: x\n\nbody\n")
    }

    @Test func keepsAMessageWithoutEnvelope() {
        everySplit("From: a@b\nSubject: x\n\nFrom here\n", expect: "From: a@b\nSubject: x\n\nFrom here\n")
    }

    @Test func keepsInputShorterThanTheMarker() {
        everySplit("Fro", expect: "Fro")
        everySplit("From", expect: "From")
    }

    @Test func onlyTheFirstLineCounts() {
        everySplit("X: y\nFrom a@b Mon\n", expect: "X: y\nFrom a@b Mon\n")
    }

    @Test func envelopeWithoutNewlineLeavesNothing() {
        everySplit("From a@b Mon Nov 24", expect: "")
    }

    @Test func crlfEnvelope() {
        everySplit("From a@b Mon\r\nX: y\r\n", expect: "X: y\r\n")
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
