@testable import DeliveryKit
import Foundation
import Testing
import MaildirKit

@Suite struct PendingRecordTests {
    let hostile = PendingRecord(path: "new/abc.host", tagOperations: ["+a b", "-100%", "+line\nbreak", "+ünï"],
                                rulesFile: "/home/u/.notmuch/deliver rules", recipient: "bob+shop@example.org",
                                sender: "weird\r\n%0A@example.org", recipientExtension: "\u{301}x y", decrypt: "auto")

    @Test func everyFieldComesBackAsWritten() {
        #expect(PendingRecord(encoded: hostile.encoded) == hostile)
        let bare = PendingRecord(path: "cur/x:2,S", tagOperations: [], rulesFile: nil, recipient: nil,
                                 sender: nil, recipientExtension: nil, decrypt: nil)
        #expect(PendingRecord(encoded: bare.encoded) == bare)
    }

    @Test func theSieveScriptComesBackInBothForms() throws {
        var record = hostile
        record.sieveFile = "/home/u/.dovecot.sieve"
        #expect(PendingRecord(encoded: record.encoded) == record)
        #expect(record.encoded.contains("\nsieve /home/u/.dovecot.sieve\n"))
        let name = try #require(record.fileName)
        #expect(name.contains("~S=%2Fhome%2Fu%2F.dovecot.sieve~"))
        #expect(PendingRecord(fileName: name) == record)
    }

    @Test func oneLinePerFieldAndNoRawLineBreakInAValue() {
        let lines = hostile.encoded.split(separator: "\n")
        #expect(lines.count == 1 + 4 + 5 + 1)
        #expect(lines.last == "path new/abc.host")
        #expect(lines.contains("sender weird%0D%0A%250A@example.org"))
    }

    @Test func asAFileNameEveryFieldComesBackAsWritten() throws {
        let name = try #require(hostile.fileName)
        #expect(!name.utf8.contains(UInt8(ascii: "/")) && !name.utf8.contains(0) && name.utf8.count <= 255)
        #expect(PendingRecord(fileName: name) == hostile)
        #expect(PendingRecord(fileName: "m.host.record") == nil && PendingRecord(fileName: "Q1") == nil)
        #expect(PendingRecord(fileName: "Q1~t=+a") == nil, "no path")
        var long = hostile
        long.rulesFile = "/" + String(repeating: "r", count: 250)
        #expect(long.fileName == nil, "too long for a name: a record file instead")
    }

    @Test func aRecordCutShortIsRefused() {
        // A crash before the record's fsync can leave any prefix of it.
        let bytes = Array(hostile.encoded.utf8)
        for length in 0..<bytes.count {
            #expect(PendingRecord(encoded: String(decoding: bytes[..<length], as: UTF8.self)) == nil, "\(length) bytes")
        }
    }

    @Test func aRecordOfTheEarlierJSONFormatIsStillRead() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pending-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let queue = PendingQueue(databasePath: root.path)
        try FileManager.default.createDirectory(atPath: queue.directory.string, withIntermediateDirectories: true)
        let json = #"{"tagOperations":["+shop","-inbox"],"recipient":"bob@example.org","path":"new\/m.host","#
            + #""sender":"alice@example.org","version":1,"rulesFile":""}"#
        try json.write(toFile: queue.directory.appending("m.host.json").string, atomically: true, encoding: .utf8)
        #expect(queue.names() == ["m.host.json"])
        let record = try queue.read("m.host.json")
        #expect(record.path == "new/m.host" && record.tagOperations == ["+shop", "-inbox"])
        #expect(record.sender == "alice@example.org" && record.recipientExtension == nil)
    }
}

@Suite struct RecordMarkerTests {
    /// Record files keep the marker earlier versions gave them, so that a
    /// record they applied (and were killed before removing) is not applied
    /// again; a linked entry's long name is stood for by its SHA-1.
    @Test func recordFilesKeepTheirMarkerAndLinkedEntriesUseAHash() {
        #expect(IndexJob.recordProperty("abc.host.record") == "notmuch-deliver.record.abc.host.record")
        #expect(IndexJob.recordProperty("abc.host.json") == "notmuch-deliver.record.abc.host.json")
        let linked = IndexJob.recordProperty("Q1~t=+shop~p=new%2Fabc.host")
        #expect(linked.hasPrefix("notmuch-deliver.record.") && linked.utf8.count == 23 + 40)
    }
}

@Suite struct PendingQueueTests {
    /// A record file still being written (its `.tmp-` name) is not queued
    /// yet: a flusher that took it would drop it as unreadable, or apply
    /// and remove it under the writer's feet.
    @Test func aRecordBeingWrittenIsNotListed() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("nd-queue-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = root.appendingPathComponent(".notmuch")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("xapian"), withIntermediateDirectories: true)
        let queue = PendingQueue(databasePath: root.path)
        try FileManager.default.createDirectory(atPath: queue.directory.string, withIntermediateDirectories: true)
        for name in [".tmp-42-abc.host.record", "abc.host.record", "Q1~p=new%2Fx"] {
            try Data().write(to: URL(fileURLWithPath: queue.directory.appending(name).string))
        }
        #expect(queue.names() == ["Q1~p=new%2Fx", "abc.host.record"])
    }
}
