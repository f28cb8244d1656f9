import Foundation
import Synchronization
import Testing

/// Mailbox quotas through the built executable, the mailbox's real
/// `maildirsize` and the real notmuch CLI.
@Suite struct QuotaTests {
    /// A message of about 300 bytes, different each time.
    private func message(_ index: Int) -> String {
        sampleMessage(id: "quota-\(index)-\(UUID().uuidString)@example.org", subject: "Message \(index)",
                      body: String(repeating: "x", count: 100) + "\n")
    }

    private func quotaFile(_ mail: MailFixture) throws -> String {
        try String(contentsOf: mail.mailRoot.appendingPathComponent("maildirsize"), encoding: .utf8)
    }

    /// The sum of the file's lines after the first.
    private func summed(_ mail: MailFixture) throws -> (bytes: Int, messages: Int) {
        var bytes = 0, messages = 0
        for line in try quotaFile(mail).split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            bytes += Int(fields[0])!
            messages += Int(fields[1])!
        }
        return (bytes, messages)
    }

    /// What the mailbox really holds, counted here independently.
    private func counted(_ mail: MailFixture) throws -> (bytes: Int, messages: Int) {
        var bytes = 0, messages = 0
        for file in mail.files() where file.hasPrefix("new/") || file.hasPrefix("cur/") {
            bytes += try mail.contents(file).count
            messages += 1
        }
        return (bytes, messages)
    }

    private func tmpIsEmpty(_ mail: MailFixture) -> Bool {
        mail.files().allSatisfy { !$0.hasPrefix("tmp/") }
    }

    /// Fills the mailbox one message at a time until the first refusal.
    private func fill(_ mail: MailFixture, _ arguments: [String] = []) throws -> (delivered: Int, refusal: MailFixture.Result) {
        for index in 0..<50 {
            let result = try mail.deliver(message(index), arguments)
            if result.status != 0 { return (index, result) }
        }
        Issue.record("never refused")
        return (50, MailFixture.Result(status: 0, stdout: "", stderr: ""))
    }

    @Test func aFullMailboxDefersWith75AndKeepsNothingOfTheRefusedMessage() throws {
        let mail = try MailFixture(extraConfig: "[deliver]\nquota=2k\nquota_grace=0")
        let (delivered, refusal) = try fill(mail)
        #expect(refusal.status == 75)
        #expect(refusal.stderr.contains("is full"))
        #expect(delivered >= 5 && delivered <= 7)
        #expect(try mail.count() == delivered)
        #expect(tmpIsEmpty(mail))
        let usage = try counted(mail)
        #expect(usage.messages == delivered)
        #expect(usage.bytes <= 2048)
        #expect(try summed(mail) == usage)
        #expect(try quotaFile(mail).hasPrefix("2048S\n"))
        try mail.expectNothingNew()
    }

    @Test func thePermanentSwitchBouncesWith77() throws {
        let mail = try MailFixture(extraConfig: "[deliver]\nquota=2k\nquota_grace=0")
        #expect(try fill(mail, ["--quota-permanent"]).refusal.status == 77)
        try mail.writeConfig(extra: "[deliver]\nquota=2k\nquota_grace=0\nquota_permanent=true")
        let again = try mail.deliver(message(99))
        #expect(again.status == 77)
        #expect(tmpIsEmpty(mail))
    }

    /// The command line's limit wins over the configuration's.
    @Test func theCommandLineLimitComesFirst() throws {
        let mail = try MailFixture(extraConfig: "[deliver]\nquota=1M")
        let (delivered, refusal) = try fill(mail, ["--quota", "3C"])
        #expect(delivered == 3)
        #expect(refusal.status == 75)
        #expect(try quotaFile(mail).hasPrefix("3C\n"))
    }

    /// With a grace, one message may take the mailbox past the limit while
    /// it was under it; the next is refused.
    @Test func theGraceLetsOneLastMessageThrough() throws {
        let mail = try MailFixture()
        let size = Data(message(0).utf8).count
        // Room for one and a half messages: the second fits only by the grace.
        let limit = size * 3 / 2
        #expect(try mail.deliver(message(1), ["--quota", "\(limit)"]).status == 0)
        try mail.writeConfig(extra: "[deliver]\nquota_grace=0")
        #expect(try mail.deliver(message(2), ["--quota", "\(limit)"]).status == 75)
        try mail.writeConfig(extra: "[deliver]\nquota_grace=50")
        #expect(try mail.deliver(message(3), ["--quota", "\(limit)"]).status == 0)
        #expect(try mail.deliver(message(4), ["--quota", "\(limit)"]).status == 75)
        #expect(try mail.count() == 2)
    }

    /// A mailbox another tool manages keeps its quota: the limit and the
    /// usage come from its courier-style maildirsize.
    @Test func aCourierMaildirsizeIsObeyed() throws {
        let mail = try MailFixture()
        try "10000S,100C\n9000 40\n1000 2\n".write(to: mail.mailRoot.appendingPathComponent("maildirsize"),
                                                  atomically: true, encoding: .utf8)
        let refusal = try mail.deliver(message(1))
        #expect(refusal.status == 75)
        #expect(refusal.stderr.contains("10000 bytes in 42 messages"))
        #expect(try quotaFile(mail) == "10000S,100C\n9000 40\n1000 2\n")
        #expect(try mail.count() == 0)
    }

    @Test func badSettingsDeferBeforeAnythingIsWritten() throws {
        let mail = try MailFixture()
        for bad in ["quota=lots", "quota=0", "quota=-5M", "quota_grace=150", "quota_grace=ten",
                    "quota_permanent=maybe", "quota=1e99"] {
            try mail.writeConfig(extra: "[deliver]\n\(bad)")
            let result = try mail.deliver(message(1))
            #expect(result.status == 75, "\(bad)")
            #expect(result.stderr.contains("configuration error"), "\(bad)")
        }
        try mail.writeConfig()
        #expect(try mail.deliver(message(1), ["--quota", "12Q"]).status == 64)
        #expect(mail.files().isEmpty)
    }

    /// Eight deliveries at once: every one appends its line, and the sum
    /// equals a recount of the mailbox.
    @Test func concurrentDeliveriesAreCountedRight() throws {
        let mail = try MailFixture(extraConfig: "[deliver]\nquota=10M")
        #expect(try mail.deliver(message(0)).status == 0)
        let statuses = Mutex<[Int32]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            let status = (try? mail.deliver(message(index + 1)).status) ?? -1
            statuses.withLock { $0.append(status) }
        }
        #expect(statuses.withLock { $0 } == Array(repeating: 0, count: 8))
        #expect(try counted(mail).messages == 9)
        #expect(try summed(mail) == counted(mail))
    }

    /// No quota anywhere: no maildirsize is made.
    @Test func noQuotaWritesNoFile() throws {
        let mail = try MailFixture()
        #expect(try mail.deliver(message(1)).status == 0)
        #expect(!FileManager.default.fileExists(atPath: mail.mailRoot.appendingPathComponent("maildirsize").path))
    }

    private func stateFile(_ mail: MailFixture) -> URL {
        mail.mailRoot.appendingPathComponent(".notmuch/notmuch-deliver-quota-warning")
    }

    /// 300-byte messages into 5000 bytes with warnings at 30 and 60 %: one
    /// warning at each, none in between, none repeated the same day.
    @Test func warningsComeOncePerThreshold() throws {
        let mail = try MailFixture(extraConfig: "[deliver]\nquota=5000\nquota_warn=30;60")
        var warnings: [Int] = []
        for index in 0..<10 {
            #expect(try mail.deliver(message(index)).status == 0)
            warnings.append(try mail.count("tag:quota-warning"))
        }
        // Each warning is a message too, and counts against the quota.
        let first = try #require(warnings.firstIndex(of: 1))
        let second = try #require(warnings.firstIndex(of: 2))
        #expect(first < second)
        #expect(warnings.last == 2)
        #expect(try mail.notmuch("search", "--output=messages", "tag:quota-warning", "subject:full")
                    .split(separator: "\n").count == 2)
        #expect(try summed(mail) == counted(mail))
    }

    /// Still above a threshold a day later: reminded once more, then not.
    @Test func aWarningRepeatsAfterADay() throws {
        let mail = try MailFixture(extraConfig: "[deliver]\nquota=4000\nquota_warn=5")
        #expect(try mail.deliver(message(0)).status == 0)
        #expect(try mail.count("tag:quota-warning") == 1)
        #expect(try mail.deliver(message(1)).status == 0)
        #expect(try mail.count("tag:quota-warning") == 1)
        let yesterday = Int(Date().timeIntervalSince1970) - 25 * 3600
        try "5 \(yesterday)\n".write(to: stateFile(mail), atomically: true, encoding: .utf8)
        #expect(try mail.deliver(message(2)).status == 0)
        #expect(try mail.count("tag:quota-warning") == 2)
        #expect(try mail.deliver(message(3)).status == 0)
        #expect(try mail.count("tag:quota-warning") == 2)
    }

    /// A virtual mailbox has no configuration of its own: the thresholds
    /// come from the command line (as for the LMTP server), and the warning
    /// lands in that mailbox's own database.
    @Test func aVirtualMailboxIsWarnedFromTheCommandLine() throws {
        let mail = try MailFixture.virtualOnly()
        let vmail = mail.virtualRoot
        let arguments = ["--mail-root", mail.virtualTemplate, "--recipient", "dana@example.org",
                         "--quota", "1000", "--quota-warn", "40"]
        #expect(try mail.deliver(message(0), arguments).status == 0)
        let mailbox = vmail.appendingPathComponent("example.org/dana")
        func count(_ query: String) throws -> String {
            try mail.notmuchIn(mailbox, "count", query)
        }
        #expect(try count("tag:quota-warning") == "0")
        #expect(try mail.deliver(message(1), arguments).status == 0)
        #expect(try count("tag:quota-warning") == "1")
        #expect(try count("*") == "3")
        #expect(try mail.deliver(message(2), Array(arguments.dropLast()) + ["40,x"]).status == 75)
    }

    /// A warning is the system's message, not the user's mail: neither the
    /// user's rules nor their Sieve script file or tag it. (The LMTP
    /// server's case, with its settings cached per mailbox: lmtp.py's
    /// quota_warning.)
    @Test func aWarningIsNotFiledByTheUsersRulesOrScript() throws {
        let mail = try MailFixture()
        let rules = try mail.file("rules", "+ruled -- *\n")
        let script = mail.directory.appendingPathComponent("script.sieve")
        try "require [\"vnd.notmuch\", \"fileinto\", \"mailbox\"]; tag \"+sieved\"; fileinto :create \"Filed\";\n"
            .write(to: script, atomically: true, encoding: .utf8)
        try mail.writeConfig(extra: "[deliver]\nquota=4000\nquota_warn=5\nrules=\(rules.path)\nsieve=\(script.path)")
        for index in 0..<2 { #expect(try mail.deliver(message(index)).status == 0) }
        #expect(try mail.count("tag:quota-warning") == 1)
        #expect(try mail.count("tag:ruled and tag:sieved and folder:Filed") == 2)
        #expect(try mail.count("tag:quota-warning and (tag:ruled or tag:sieved)") == 0)
        #expect(try mail.count("tag:quota-warning and folder:\"\"") == 1)
    }

    /// Looking at a virtual mailbox that no delivery has made yet makes
    /// nothing: `quota` and `explain` say there is none.
    @Test func lookingAtAnAbsentVirtualMailboxCreatesNothing() throws {
        let mail = try MailFixture.virtualOnly()
        let vmail = mail.virtualRoot
        let mailbox = ["--mail-root", mail.virtualTemplate, "--recipient", "anyone@example.org"]
        for command in [["quota"], ["explain"]] {
            let result = try mail.deliver(message(0), command + mailbox)
            #expect(result.status == 67, "\(command): \(result.status) \(result.stderr)")
            #expect(result.stderr.contains("has no mailbox yet"), "\(command): \(result.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: vmail.path).isEmpty)
        #expect(try mail.deliver(message(1), mailbox).status == 0)
        #expect(try mail.deliver(message(2), ["quota"] + mailbox).status == 0)
    }

    /// The administrator's template, with its placeholders filled in, and
    /// the configured tags.
    @Test func aTemplateAndTagsAreUsed() throws {
        let mail = try MailFixture()
        let template = mail.directory.appendingPathComponent("warning.txt")
        try "From: postmaster@example.org\nTo: {recipient}\nSubject: at {percent}% (over {threshold}%)\n\n{usage} of {limit}, {messages} messages in {mailbox}\n"
            .write(to: template, atomically: true, encoding: .utf8)
        try mail.writeConfig(extra: "[deliver]\nquota=1000\nquota_warn=5\nquota_warning_tags=full;-inbox\n"
                             + "quota_warning_template=\(template.path)")
        #expect(try mail.deliver(message(0), ["--recipient", "bob@example.org"]).status == 0)
        #expect(try mail.tags("tag:full") == ["full", "unread"])
        let shown = try mail.notmuch("show", "--format=raw", "tag:full")
        let size = Data(message(0).utf8).count
        #expect(shown.contains("To: bob@example.org"))
        #expect(shown.contains("Subject: at \(size * 100 / 1000)% (over 5%)"))
        #expect(shown.contains("\(size) of 1000 bytes, 1 messages in \(mail.mailRoot.path)"))
        #expect(shown.contains("Message-ID: <quota-warning."))
    }

    @Test func badWarningSettingsDefer() throws {
        let mail = try MailFixture()
        for bad in ["quota_warn=0", "quota_warn=101", "quota_warn=80;high", "quota_warning_template=relative.txt"] {
            try mail.writeConfig(extra: "[deliver]\nquota=1M\n\(bad)")
            let result = try mail.deliver(message(1))
            #expect(result.status == 75, "\(bad)")
            #expect(result.stderr.contains("configuration error"), "\(bad)")
        }
        #expect(mail.files().isEmpty)
    }

    /// `quota` reports the file's figures (here a line added by hand, as
    /// another tool would), and `--recalculate` the mailbox's own.
    @Test func theQuotaCommandReportsAndRecalculates() throws {
        let mail = try MailFixture(extraConfig: "[deliver]\nquota=10k,5C")
        #expect(try mail.deliver(message(1)).status == 0)
        let size = Data(message(1).utf8).count
        let handle = try FileHandle(forWritingTo: mail.mailRoot.appendingPathComponent("maildirsize"))
        handle.seekToEndOfFile()
        handle.write(Data("100 1\n".utf8))
        try handle.close()

        let text = try mail.command(["quota"])
        #expect(text.status == 0)
        #expect(text.stdout.contains("usage: \(size + 100) bytes in 2 messages"))
        #expect(text.stdout.contains("limit: 10240 bytes, 5 messages (from deliver.quota)"))
        #expect(text.stdout.contains("used: 40%"))

        let json = try mail.command(["quota", "--json", "--recalculate"])
        #expect(json.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["bytes"] as? Int == size)
        #expect(object["messages"] as? Int == 1)
        #expect(object["limit_bytes"] as? Int == 10240)
        #expect(object["limit_messages"] as? Int == 5)
        #expect(object["percent"] as? Int == 20)
        #expect(object["mailbox"] as? String == mail.mailRoot.path)
        #expect(try quotaFile(mail) == "10240S,5C\n\(size) 1\n")
    }

    /// Without any limit: counted, and no file written.
    @Test func theQuotaCommandWithoutALimit() throws {
        let mail = try MailFixture()
        #expect(try mail.deliver(message(1)).status == 0)
        let json = try mail.command(["quota", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["messages"] as? Int == 1)
        #expect(object["percent"] is NSNull)
        #expect(!FileManager.default.fileExists(atPath: mail.mailRoot.appendingPathComponent("maildirsize").path))
    }

    /// Mailbox folders named on the command line (virtual mailboxes, no
    /// configuration): each reported, its limit from its own maildirsize,
    /// one JSON object per line.
    @Test func theQuotaCommandForNamedMailboxes() throws {
        let mail = try MailFixture()
        var boxes: [URL] = []
        for (name, limit) in [("alice", "1000S,4C"), ("bob", "2000S")] {
            let box = mail.directory.appendingPathComponent("vmail/\(name)")
            try makeMaildir(box)
            try Data(repeating: 65, count: 300).write(to: box.appendingPathComponent("new/one"))
            try "\(limit)\n300 1\n".write(to: box.appendingPathComponent("maildirsize"), atomically: true, encoding: .utf8)
            boxes.append(box)
        }
        let result = try mail.command(["quota", "--json"] + boxes.map(\.path))
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 2, "\(result.stdout)")
        let objects = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(objects.map { $0["percent"] as? Int } == [30, 15])
        #expect(objects.map { $0["limit_source"] as? String } == ["maildirsize", "maildirsize"])
        #expect(objects[1]["limit_messages"] is NSNull)
        #expect(try mail.command(["quota", mail.directory.appendingPathComponent("nowhere").path]).status == 64)
    }

    /// Twelve deliveries at once into room for five: exactly five get in,
    /// the rest defer, nothing is left in tmp/, and the file agrees with the
    /// mailbox. (Each reserves its line under the mailbox's lock; the window
    /// without it is narrow, and this test alone does not catch its loss.)
    @Test func concurrentDeliveriesStopAtTheLimit() throws {
        for limit in ["5C", "\(Data(message(10).utf8).count * 5)"] {
            let mail = try MailFixture(extraConfig: "[deliver]\nquota=\(limit)\nquota_grace=0")
            let statuses = Mutex<[Int32]>([])
            DispatchQueue.concurrentPerform(iterations: 12) { index in
                let status = (try? mail.deliver(message(index + 10)).status) ?? -1
                statuses.withLock { $0.append(status) }
            }
            let all = statuses.withLock { $0 }
            #expect(all.filter { $0 == 0 }.count == 5, "\(limit): \(all)")
            #expect(all.filter { $0 == 75 }.count == 7, "\(limit): \(all)")
            #expect(try counted(mail).messages == 5)
            #expect(try summed(mail) == counted(mail))
            #expect(tmpIsEmpty(mail))
        }
    }
}
