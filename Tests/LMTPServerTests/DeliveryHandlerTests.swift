import DeliveryKit
import Foundation
import LMTP
@testable import LMTPServer
import NIOCore
import NIOEmbedded
import NIOPosix
import TestSupport
import Testing
import Threads

/// The spool and delivery handlers with a real `Deliverer` on a temporary
/// maildir and notmuch database: what a session hands them is checked,
/// stored, indexed and answered; the real `notmuch` CLI says what was
/// indexed. NIO's async testing channel, because the answers come back
/// from the server's thread pool.
@Suite struct DeliveryHandlerTests {
    /// A mail root with a notmuch database, made with the notmuch CLI.
    struct Mailbox {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("nd-lmtp-handler-\(UUID().uuidString)")
        var mail: URL { directory.appendingPathComponent("mail") }
        var config: URL { directory.appendingPathComponent("config") }

        init() throws {
            try FileManager.default.createDirectory(at: mail.appendingPathComponent("tmp"), withIntermediateDirectories: true)
            try "[database]\npath=\(mail.path)\n[new]\ntags=inbox;\n".write(to: config, atomically: true, encoding: .utf8)
            _ = try notmuch("new")
        }

        @discardableResult
        func notmuch(_ arguments: String...) throws -> String {
            try notmuchOutput(arguments, config: config.path, home: directory.path)
        }

        func remove() { try? FileManager.default.removeItem(at: directory) }
    }

    static let hasNotmuch = FileManager.default.isExecutableFile(atPath: "/usr/bin/notmuch")

    @Test(.enabled(if: hasNotmuch, "no notmuch CLI at /usr/bin/notmuch"))
    func aMessageIsCheckedStoredIndexedAndAnsweredPerRecipient() async throws {
        let mailbox = try Mailbox()
        defer { mailbox.remove() }
        var options = DeliveryOptions()
        options.config = .file(mailbox.config.path)
        options.runHooks = false
        let deliverer = Deliverer(options)
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        let delivery = TransactionDelivery(deliverer: deliverer, commitWait: nil, recipientDelimiters: "+",
                                           gate: MailboxGate(limit: 4))
        let spoolDirectory = mailbox.mail.appendingPathComponent("tmp").path
        let channel = try await NIOAsyncTestingChannel { channel in
            try channel.pipeline.syncOperations.addHandlers([
                SpoolHandler(directory: spoolDirectory),
                DeliveryHandler(delivery: delivery, pool: pool, session: "test", workTime: .seconds(60)),
            ])
        }

        let first = LMTPRecipient(address: "me@example.org", index: 0)
        try await channel.writeInbound(SessionRequest.checkRecipient(first, declaredSize: 100))
        let verdict = try await channel.waitForOutboundWrite(as: SessionAnswer.self)
        guard case .recipient(.accept) = verdict else {
            Issue.record("the recipient was not accepted: \(verdict)")
            try await pool.shutdownGracefully()
            return
        }

        // The same address twice: two replies, one message.
        let envelope = LMTPEnvelope(sender: "sender@example.org",
                                    recipients: [first, LMTPRecipient(address: "me@example.org", index: 1)])
        try await channel.writeInbound(SessionRequest.beginMessage(envelope))
        for piece in ["From: sender@example.org\nTo: me@example.org\n", "Subject: over LMTP\nMessage-ID: <handler@test>\n\nbody\n"] {
            try await channel.writeInbound(SessionRequest.messageBytes(Array(piece.utf8)))
        }
        try await channel.writeInbound(SessionRequest.endMessage(envelope))
        let answer = try await channel.waitForOutboundWrite(as: SessionAnswer.self)
        try await pool.shutdownGracefully()
        guard case .delivered(let replies) = answer else {
            Issue.record("no delivery replies: \(answer)")
            return
        }
        #expect(replies.map(\.code) == [250, 250])
        #expect(replies.allSatisfy { $0.lines.joined().contains("<me@example.org> test Saved") }, "\(replies)")

        deliverer.waitForCommits(until: Monotonic.seconds + 10)
        #expect(try mailbox.notmuch("count", "id:handler@test") == "1")
        #expect(try mailbox.notmuch("search", "--output=files", "id:handler@test").split(separator: "\n").count == 1)
        let raw = try mailbox.notmuch("show", "--format=raw", "id:handler@test")
        #expect(raw.hasPrefix("Return-Path: <sender@example.org>\nFrom: sender@example.org\n"), "\(raw)")
        #expect(!raw.contains("Delivered-To:"), "two recipients: no Delivered-To")
        _ = try await channel.finish()
    }
}
