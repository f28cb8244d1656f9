import Foundation
import Testing

/// Text from a message is one tag, one flag or one folder, never an
/// operation; and no folder, from any source, is the database or a
/// maildir's own tmp/, new/ or cur/ (issue 22, classes 2 and 4). Through
/// the built executable, checked with the real notmuch CLI.
@Suite("Values from the message and reserved folders")
struct MessageValuesTests {
    static let hostileListID = "x -inbox -unread +spam +deleted"

    private func useSieve(_ fixture: MailFixture, _ text: String, extra: String = "") throws -> URL {
        let path = try fixture.file("deliver.sieve", text)
        try fixture.writeConfig(extra: "[deliver]\nsieve=\(path.path)\n\(extra)")
        return path
    }

    /// Files inside the database's folder that sit in a maildir's new/ or cur/, or in tmp/.
    private func mailInsideTheDatabase(_ fixture: MailFixture) -> [String] {
        let database = fixture.mailRoot.appendingPathComponent(".notmuch").path
        guard let walker = FileManager.default.enumerator(atPath: database) else { return [] }
        var found: [String] = []
        while let entry = walker.nextObject() as? String {
            let parts = entry.split(separator: "/")
            if parts.dropLast().contains(where: { ["new", "cur", "tmp"].contains($0) }) { found.append(entry) }
        }
        return found
    }

    // MARK: Class 2: one tag, never an operation

    @Test func aSieveTagFromListIdIsOneTag() throws {
        let fixture = try MailFixture()
        _ = try useSieve(fixture, #"""
            require ["variables", "vnd.notmuch"];
            if header :matches "List-Id" "*" { tag "+lists/${1}"; }
            """#)
        let message = "List-Id: \(Self.hostileListID)\n" + sampleMessage(id: "list-id@example.org")
        let result = try fixture.deliver(message)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try fixture.tags("id:list-id@example.org") == ["inbox", "lists/x_-inbox_-unread_+spam_+deleted", "unread"])
        // Still unread: not renamed into cur/ with the S flag.
        #expect(fixture.files().count == 1 && fixture.files()[0].hasPrefix("new/"), "\(fixture.files())")
        try fixture.expectNothingNew()
    }

    @Test func aSieveFlagFromTheMessageIsNeverSeenOrJunk() throws {
        let fixture = try MailFixture()
        _ = try useSieve(fixture, #"""
            require ["variables", "imap4flags"];
            if header :matches "X-Flags" "*" { addflag "${1}"; }
            if header :matches "X-Label" "*" { addflag "${1}"; }
            """#)
        let message = "X-Flags: \\Seen $Junk\nX-Label: Work Later\n" + sampleMessage(id: "flags@example.org")
        #expect(try fixture.deliver(message).status == 0)
        #expect(try fixture.tags("id:flags@example.org") == ["inbox", "unread", "work_later"])
        try fixture.expectNothingNew()
    }

    /// vnd.notmuch's test: a value from the message is one phrase of the query.
    @Test func aSieveQueryFromTheMessageIsOnePhrase() throws {
        let fixture = try MailFixture()
        _ = try useSieve(fixture, #"""
            require ["variables", "vnd.notmuch"];
            if header :matches "X-Who" "*" { if notmuch "from:${1}" { tag "+known"; } }
            """#)
        #expect(try fixture.deliver("X-Who: nobody or tag:inbox\n" + sampleMessage(id: "q1@example.org")).status == 0)
        #expect(try fixture.tags("id:q1@example.org") == ["inbox", "unread"])
        #expect(try fixture.deliver("X-Who: alice@example.org\n" + sampleMessage(id: "q2@example.org")).status == 0)
        #expect(try fixture.tags("id:q2@example.org") == ["inbox", "known", "unread"])
    }

    /// explain shows each step on one line, whatever the header holds.
    @Test func explainKeepsHeaderTextOnItsLine() throws {
        let fixture = try MailFixture()
        let script = try useSieve(fixture, #"""
            require ["variables", "vnd.notmuch"];
            if header :matches "Subject" "*" { tag "+s/${1}"; }
            """#)
        let message = sampleMessage(id: "explain@example.org", subject: "=?utf-8?q?x=0Atags:_forged?=")
        let result = try fixture.command(["explain", "--sieve", script.path], input: message)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(!lines.contains { $0.hasPrefix("tags: forged") }, "\(result.stdout)")
        #expect(lines.contains { $0.hasPrefix("tags: ") && $0.contains("s/x_tags__forged") }, "\(result.stdout)")
    }

    // MARK: Class 4: folders that are not folders

    @Test(arguments: [".notmuch", ".notmuch/xapian", "tmp", "new", "cur", "lists/tmp", "a/.notmuch/b"])
    func theCommandLineRefusesReservedFolders(folder: String) throws {
        let fixture = try MailFixture()
        let result = try fixture.deliver(sampleMessage(id: "cli@example.org"), ["--folder=\(folder)", "--create-folder"])
        #expect(result.status == 64, "\(folder): \(result.stderr)")
        #expect(result.stderr.hasPrefix("notmuch-deliver: folder ") && result.stderr.contains("reserved"), "\(result.stderr)")
        #expect(fixture.files().isEmpty, "\(fixture.files())")
        #expect(mailInsideTheDatabase(fixture).isEmpty)
        #expect(try fixture.count() == 0)
    }

    /// A symlink inside the mail root that leads into the database is
    /// judged where it leads.
    @Test func aFolderLinkedIntoTheDatabaseIsRefused() throws {
        let fixture = try MailFixture()
        try FileManager.default.createSymbolicLink(at: fixture.mailRoot.appendingPathComponent("box"),
                                                   withDestinationURL: fixture.mailRoot.appendingPathComponent(".notmuch"))
        let result = try fixture.deliver(sampleMessage(id: "linked@example.org"), ["--folder=box", "--create-folder"])
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.contains("leads to '.notmuch'"), "\(result.stderr)")
        #expect(mailInsideTheDatabase(fixture).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: fixture.mailRoot.appendingPathComponent(".notmuch/new").path))
    }

    @Test func aFolderDeeperThanTheQuotaCountsIsRefused() throws {
        let fixture = try MailFixture()
        let deep = Array(repeating: "d", count: 64).joined(separator: "/")
        let result = try fixture.deliver(sampleMessage(id: "deep@example.org"), ["--folder=\(deep)", "--create-folder"])
        #expect(result.status == 64, "\(result.stderr)")
        let fine = Array(repeating: "d", count: 63).joined(separator: "/")
        #expect(try fixture.deliver(sampleMessage(id: "deep@example.org"), ["--folder=\(fine)", "--create-folder"]).status == 0)
    }

    @Test func importRefusesReservedFolders() throws {
        let fixture = try MailFixture()
        let mbox = try fixture.file("in.mbox", "From alice@example.org Mon Nov 24 09:00:00 2025\n" + sampleMessage(id: "imp@example.org"))
        for folder in ["tmp", ".notmuch"] {
            for dryRun in [false, true] {
                let result = try fixture.command(["import", "--folder", folder, "--create-folder"] + (dryRun ? ["--dry-run"] : []) + [mbox.path])
                #expect(result.status == 64, "\(folder) dry-run \(dryRun): \(result.status) \(result.stderr)")
            }
        }
        #expect(fixture.files().isEmpty && mailInsideTheDatabase(fixture).isEmpty)
    }

    /// The database's folder when it is inside the mail root but not named .notmuch.
    @Test func theDatabaseFolderInsideTheRootIsRefused() throws {
        let fixture = try MailFixture(createDatabase: false)
        try FileManager.default.createDirectory(at: fixture.mailRoot.appendingPathComponent("db"), withIntermediateDirectories: true)
        let config = """
            [database]
            path=\(fixture.mailRoot.path)/db
            mail_root=\(fixture.mailRoot.path)
            [new]
            tags=unread;inbox;

            """
        try config.write(to: fixture.configFile, atomically: true, encoding: .utf8)
        #expect(try fixture.notmuchResult(["new", "--quiet"]).status == 0)
        #expect(try fixture.deliver(sampleMessage(id: "first@example.org")).status == 0)
        let result = try fixture.deliver(sampleMessage(id: "db@example.org"), ["--folder=db/x", "--create-folder"])
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.contains("database"), "\(result.stderr)")
    }

    @Test(arguments: ["tmp", "new", "cur", "notmuch"])
    func aRuleFolderFromACaptureNeverNamesAReservedFolder(capture: String) throws {
        let fixture = try MailFixture()
        // `.$1`, as a Maildir++ habit would write it: `notmuch` makes `.notmuch`.
        try fixture.useRules("+filed folder:$1 -- header:X-Folder~/^(tmp|new|cur)$/\n+filed folder:.$1 -- header:X-Folder~/^(notmuch)$/\n")
        let result = try fixture.deliver("X-Folder: \(capture)\n" + sampleMessage(id: "rule-\(capture)@example.org"), ["-v"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("not used") && result.stderr.contains("reserved"), "\(result.stderr)")
        let files = fixture.files()
        #expect(files.count == 1 && files[0].hasPrefix("new/") && files[0].split(separator: "/").count == 2, "\(files)")
        #expect(mailInsideTheDatabase(fixture).isEmpty)
        #expect(try fixture.tags("id:rule-\(capture)@example.org") == ["filed", "inbox", "unread"])
        try fixture.expectNothingNew()
    }

    @Test(arguments: [".notmuch", "tmp", "new", "cur", ".."])
    func aSieveFolderFromTheMessageNeverNamesAReservedFolder(name: String) throws {
        let fixture = try MailFixture()
        _ = try useSieve(fixture, #"""
            require ["variables", "fileinto", "mailbox"];
            if header :matches "X-Folder" "*" { fileinto :create "${1}"; }
            """#)
        let result = try fixture.deliver("X-Folder: \(name)\n" + sampleMessage(id: "sieve-folder@example.org"), ["-v"])
        #expect(result.status == 0, "\(result.stderr)")
        let files = fixture.files()
        #expect(files.count == 1 && files[0].hasPrefix("new/") && files[0].split(separator: "/").count == 2, "\(files)")
        #expect(mailInsideTheDatabase(fixture).isEmpty, "\(mailInsideTheDatabase(fixture))")
        try fixture.expectNothingNew()
    }

    /// A value from the message is one folder level: its `/` cannot reach
    /// into the database (the name that stopped every quota warning).
    @Test func aSieveFolderFromTheMessageIsOneLevel() throws {
        let fixture = try MailFixture()
        _ = try useSieve(fixture, #"""
            require ["variables", "fileinto", "mailbox"];
            if header :matches "X-Folder" "*" { fileinto :create "${1}"; }
            """#)
        let name = ".notmuch/notmuch-deliver-quota-warning"
        #expect(try fixture.deliver("X-Folder: \(name)\n" + sampleMessage(id: "one-level@example.org")).status == 0)
        // (MailFixture.files() leaves out names starting with .notmuch.)
        let new = fixture.mailRoot.appendingPathComponent(".notmuch_notmuch-deliver-quota-warning/new").path
        #expect(try FileManager.default.contentsOfDirectory(atPath: new).count == 1)
        #expect(fixture.files().isEmpty, "\(fixture.files())")
        #expect(mailInsideTheDatabase(fixture).isEmpty, "\(mailInsideTheDatabase(fixture))")
        try fixture.expectNothingNew()
    }

    @Test func aSieveAbsoluteNameIsRefused() throws {
        let fixture = try MailFixture()
        let script = try useSieve(fixture, #"""
            require ["fileinto", "mailbox"];
            fileinto :create "/tmp/abs";
            """#)
        let result = try fixture.deliver(sampleMessage(id: "abs@example.org"), ["-v"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("absolute"), "\(result.stderr)")
        #expect(fixture.files().count == 1 && fixture.files()[0].hasPrefix("new/"), "\(fixture.files())")
        let explained = try fixture.command(["explain"], input: sampleMessage(id: "abs2@example.org"))
        #expect(explained.stdout.contains("folder: (default): '/tmp/abs' is not used: folder '/tmp/abs' is absolute"),
                "\(explained.stdout)")
        let check = try fixture.command(["check-rules", "--sieve", script.path])
        #expect(check.status == 1)
        #expect(check.stderr.contains("\(script.path):2: fileinto \"/tmp/abs\""), "\(check.stderr)")
    }

    @Test func checkRulesRefusesReservedFoldersWithTheirLine() throws {
        let fixture = try MailFixture()
        let rules = try fixture.file("rules", "+a -- *\n+b folder:lists/tmp -- *\n")
        let result = try fixture.command(["check-rules", rules.path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("\(rules.path):2:"), "\(result.stderr)")
        let sieve = try fixture.file("s.sieve", "require \"fileinto\";\nfileinto \".notmuch\";\n")
        let sieveResult = try fixture.command(["check-rules", sieve.path])
        #expect(sieveResult.status == 1)
        #expect(sieveResult.stderr.contains("\(sieve.path):2: fileinto \".notmuch\""), "\(sieveResult.stderr)")
    }

    /// A rule filing into tmp/ by header text hid mail from the quota's
    /// recount: 9 messages went into a 3-message mailbox.
    @Test func theQuotaCountsWhereverARuleFiles() throws {
        let fixture = try MailFixture()
        let rules = try fixture.file("rules", "folder:$1 -- header:X-Folder~/^(.*)$/\n")
        try fixture.writeConfig(extra: "[deliver]\nrules=\(rules.path)\nquota=3C\nquota_grace=0")
        var delivered = 0
        for index in 0..<9 {
            // No maildirsize: each delivery recounts the mailbox.
            try? FileManager.default.removeItem(at: fixture.mailRoot.appendingPathComponent("maildirsize"))
            let result = try fixture.deliver("X-Folder: tmp\n" + sampleMessage(id: "q\(index)@example.org"))
            if result.status == 0 { delivered += 1 } else { #expect(result.status == 75, "\(result.stderr)") }
        }
        #expect(delivered == 3)
        #expect(try fixture.count() == 3)
    }
}
