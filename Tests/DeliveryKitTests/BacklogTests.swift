@testable import DeliveryKit
import Foundation
import MaildirKit
import SystemPackage
import Testing
import Threads

/// What lets a server killed again and again still apply a backlog: small
/// commits first, the oldest records first, and slow rules evaluated a
/// commit's share at a time (`make stress --lmtp` is the whole test).
@Suite struct BacklogTests {
    let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("nd-backlog-\(UUID().uuidString)")
    var mail: URL { directory.appendingPathComponent("mail") }

    @Test func commitsStartSmallAndGrowWhileTheyStayShort() {
        var sizing = CommitSizing()
        #expect(sizing.limit == CommitSizing.first)
        // Fast commits: at most twice the last limit each time, up to the most.
        sizing.learn(records: 16, seconds: 0.016)
        #expect(sizing.limit == 32)
        for _ in 0..<10 { sizing.learn(records: sizing.limit, seconds: 0.01) }
        #expect(sizing.limit == CommitSizing.most)
        // A slow commit: the next takes what fits in the target at its pace.
        sizing.learn(records: 250, seconds: 2.5)
        #expect(sizing.limit == 25)
        sizing.learn(records: 25, seconds: 100)
        #expect(sizing.limit == CommitSizing.first, "never fewer than the first commit's")
    }

    /// A killed server's records are taken in the order they were queued,
    /// not in the order of their names.
    @Test func theQueueIsTakenOldestFirst() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let queue = PendingQueue(databasePath: mail.path)
        try FileManager.default.createDirectory(atPath: queue.directory.string, withIntermediateDirectories: true)
        let names = ["a.record", "b.record", "c.record", "d.record"]
        let ages = [10.0, 40.0, 20.0, 30.0]   // seconds ago
        for (name, age) in zip(names, ages) {
            let path = queue.directory.appending(name).string
            try Data("x".utf8).write(to: URL(fileURLWithPath: path))
            try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -age)], ofItemAtPath: path)
        }
        #expect(queue.oldestFirst(names) == ["b.record", "d.record", "c.record", "a.record"])
        #expect(queue.oldestFirst(["gone.record", "a.record"]) == ["a.record", "gone.record"], "a vanished name goes last")
    }

    /// Preparing a commit stops at its budget: the records not reached
    /// wait for the next commit (the first is always taken), never the
    /// whole queue at once.
    @Test func aCommitPreparesOnlyItsShare() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let rules = directory.appendingPathComponent("rules"), config = directory.appendingPathComponent("config")
        try FileManager.default.createDirectory(at: mail.appendingPathComponent("new"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: mail.appendingPathComponent(".notmuch"), withIntermediateDirectories: true)
        try "+slow -- header:X-Slow~/^(a+)+$/\n".write(to: rules, atomically: true, encoding: .utf8)
        try "[database]\npath=\(mail.path)\n[deliver]\nrules=\(rules.path)\n".write(to: config, atomically: true, encoding: .utf8)
        var options = DeliveryOptions()
        options.config = .file(config.path)
        let mailbox = try Mailboxes(options).findOrCreate(recipient: nil)
        let queue = mailbox.queue
        var order: [String] = []
        for n in 0..<6 {
            let file = mail.appendingPathComponent("new/m\(n).host")
            try "From: a@example.org\nSubject: \(n)\nX-Slow: \(String(repeating: "a", count: 40))!\n\nbody\n"
                .write(to: file, atomically: true, encoding: .utf8)
            let record = PendingRecord(path: "new/m\(n).host", tagOperations: [], rulesFile: rules.path)
            order.append(try queue.enqueue(record, message: FilePath(file.path)))
        }
        let applier = mailbox.applier
        let spent = applier.prepareBatch(order, known: [:], limit: 250, until: Monotonic.seconds - 1)
        #expect(spent.names == [order[0]], "the budget spent: only the first")
        #expect(spent.prepared.preevaluated[order[0]] != nil)
        let capped = applier.prepareBatch(order.reversed(), known: [:], limit: 3, until: Monotonic.seconds + 600)
        #expect(capped.names == Array(order.reversed().prefix(3)), "in the order given, up to the limit")
        #expect(Set(capped.prepared.preevaluated.keys) == Set(capped.names))
    }
}
