import Foundation
import Testing

@Suite("Sieve scripts at delivery")
struct SieveEndToEndTests {
    static let script = #"""
        require ["fileinto", "mailbox", "imap4flags", "variables", "envelope", "subaddress"];
        if header :is "X-Spam-Flag" "YES" {
            addflag ["$Junk", "\\Seen"];
            fileinto :create "Junk";
            stop;
        }
        # Before the fileinto: an action takes the flags set when it runs.
        if header :contains "Subject" "urgent" {
            addflag "\\Flagged";
        }
        if header :matches "List-Id" "*<*.lists.*>" {
            fileinto :create "lists/${2}";
        }
        if envelope :detail "to" "shop" {
            fileinto "shop";
        }
        if header :contains "X-Virus" "infected" { discard; }
        """#

    /// Writes the script and names it in the config as deliver.sieve, beside `extra` lines of [deliver].
    private func useSieve(_ fixture: MailFixture, _ text: String = Self.script, extra: String = "") throws -> URL {
        let path = try fixture.file("deliver.sieve", text)
        try fixture.writeConfig(extra: "[deliver]\nsieve=\(path.path)\n\(extra)")
        return path
    }

    @Test func spamGoesToJunkReadAndTaggedSpam() throws {
        let fixture = try MailFixture()
        _ = try useSieve(fixture)
        #expect(try fixture.deliver("X-Spam-Flag: YES\n" + sampleMessage(id: "spam@example.org")).status == 0)
        #expect(try fixture.tags("id:spam@example.org") == ["inbox", "spam"])
        let files = try fixture.notmuch("search", "--output=files", "id:spam@example.org")
        // \Seen: no unread, so cur/ with the S flag.
        #expect(files.contains("/Junk/cur/") && files.hasSuffix(":2,S"), "\(files)")
        try fixture.expectNothingNew()
    }

    @Test func listFolderFromMatchVariablesAndFlaggedFromAFlag() throws {
        let fixture = try MailFixture()
        _ = try useSieve(fixture)
        let message = "List-Id: Developers <dev.lists.example.org>\n" + sampleMessage(id: "list@example.org", subject: "urgent: build broken")
        #expect(try fixture.deliver(message).status == 0)
        #expect(try fixture.tags("id:list@example.org") == ["flagged", "inbox", "unread"])
        #expect(try fixture.count("folder:lists/dev") == 1)
        try fixture.expectNothingNew()
    }

    @Test func fileintoWithoutCreateUsesOnlyAnExistingFolder() throws {
        let fixture = try MailFixture()
        _ = try useSieve(fixture)
        #expect(try fixture.deliver(sampleMessage(id: "shop1@example.org"), ["--recipient", "me+shop@example.org"]).status == 0)
        #expect(fixture.files().allSatisfy { $0.hasPrefix("new/") }, "\(fixture.files())")
        for sub in ["cur", "new", "tmp"] {
            try FileManager.default.createDirectory(at: fixture.mailRoot.appendingPathComponent("shop/\(sub)"),
                                                    withIntermediateDirectories: true)
        }
        #expect(try fixture.deliver(sampleMessage(id: "shop2@example.org"), ["--recipient", "me+shop@example.org"]).status == 0)
        #expect(try fixture.count("folder:shop") == 1)
        #expect(try fixture.count("folder:shop and id:shop2@example.org") == 1)
    }

    /// Several stores are several files of one message: a `fileinto :copy`
    /// keeps the implicit keep, so the message is in both folders, with one
    /// set of tags; a store into a folder that does not exist (no :create)
    /// is skipped.
    @Test func severalStoresAreSeveralFilesOfOneMessage() throws {
        let fixture = try MailFixture()
        _ = try useSieve(fixture, #"""
            require ["fileinto", "copy", "mailbox", "imap4flags"];
            fileinto :copy :create :flags "\Flagged" "lists/dev";
            fileinto :copy "missing";
            """#)
        #expect(try fixture.deliver(sampleMessage(id: "copies@example.org")).status == 0)
        let files = try fixture.notmuch("search", "--output=files", "id:copies@example.org").split(separator: "\n")
        #expect(files.count == 2, "\(files)")
        #expect(files.contains { $0.contains("/lists/dev/") } && files.contains { !$0.contains("/lists/") }, "\(files)")
        #expect(try fixture.count("*") == 1)
        #expect(try fixture.tags("id:copies@example.org") == ["flagged", "inbox", "unread"])
        #expect(!fixture.files().contains { $0.hasPrefix("missing/") })
        try fixture.expectNothingNew()
    }

    @Test func discardStoresNothing() throws {
        let fixture = try MailFixture()
        _ = try useSieve(fixture)
        #expect(try fixture.deliver("X-Virus: infected\n" + sampleMessage(id: "virus@example.org")).status == 0)
        #expect(try fixture.count() == 0)
        #expect(fixture.files().isEmpty)
    }

    @Test func commandLineScriptAndDotSeparator() throws {
        let fixture = try MailFixture()
        try fixture.writeConfig(extra: "[deliver]\nsieve_separator=.")
        let path = try fixture.file("other.sieve", #"require ["fileinto", "mailbox"]; fileinto :create "INBOX.Lists.dev";"#)
        #expect(try fixture.deliver(sampleMessage(id: "dot@example.org"), ["--sieve", path.path]).status == 0)
        #expect(try fixture.count("folder:Lists/dev") == 1)
        // --no-rules turns the script off too.
        #expect(try fixture.deliver(sampleMessage(id: "off@example.org"), ["--sieve", path.path, "--no-rules"]).status == 0)
        #expect(try fixture.count("folder:\"\" and id:off@example.org") == 1)
    }

    @Test func sieveRunsBeforeTheRulesAndBothFeedOneTagSet() throws {
        let fixture = try MailFixture()
        let rules = try fixture.file("rules", "+seen-spam -- tag:spam\n")
        _ = try useSieve(fixture, extra: "rules=\(rules.path)")
        #expect(try fixture.deliver("X-Spam-Flag: YES\n" + sampleMessage(id: "both@example.org")).status == 0)
        #expect(try fixture.tags("id:both@example.org") == ["inbox", "seen-spam", "spam"])
    }

    @Test func brokenScriptCostsNoMail() throws {
        let fixture = try MailFixture()
        _ = try useSieve(fixture, "require \"vacation\";\nif true {\n")
        let result = try fixture.deliver(sampleMessage(id: "broken@example.org"), ["-v"])
        #expect(result.status == 0)
        #expect(result.stderr.contains("deliver.sieve:3:1: expected '}' to close the '{' at line 2, column 9"), "\(result.stderr)")
        #expect(try fixture.tags("id:broken@example.org") == ["inbox", "unread"])
    }

    @Test func notmuchExtensionQueriesTheDatabaseAndTags() throws {
        let fixture = try MailFixture()
        _ = try useSieve(fixture, #"""
            require "vnd.notmuch";
            if notmuch "thread:{tag:muted}" { tag "+muted -inbox -unread"; }
            """#)
        try fixture.deliverAReplyToAMutedThread()
        #expect(try fixture.tags("id:reply@example.org") == ["muted"])
    }

    @Test func virtualMailboxHasItsOwnScript() throws {
        let fixture = try MailFixture(createDatabase: false)
        fixture.extraEnvironment = ["NOTMUCH_CONFIG": "/nonexistent/config"]
        let vmail = fixture.directory.appendingPathComponent("vmail")
        let mailbox = vmail.appendingPathComponent("one.example/alice")
        try FileManager.default.createDirectory(at: mailbox.appendingPathComponent(".notmuch"), withIntermediateDirectories: true)
        try #"require ["fileinto", "mailbox"]; fileinto :create "Archive";"#
            .write(to: mailbox.appendingPathComponent(".notmuch/deliver.sieve"), atomically: true, encoding: .utf8)
        let result = try fixture.deliver(sampleMessage(id: "v@example.org"),
                                         ["--mail-root", vmail.path + "/%d/%u", "--recipient", "alice@one.example"])
        #expect(result.status == 0, "\(result.stderr)")
        let archived = try FileManager.default.contentsOfDirectory(atPath: mailbox.appendingPathComponent("Archive/new").path)
        #expect(archived.count == 1)
    }

    @Test func aQueuedDeliveryKeepsItsScript() throws {
        let fixture = try MailFixture()
        let path = fixture.directory.appendingPathComponent("queued.sieve")
        try #"require ["fileinto", "mailbox", "imap4flags"]; addflag "$Junk"; fileinto :create "Junk";"#
            .write(to: path, atomically: true, encoding: .utf8)
        let holder = try LockHolder(fixture)
        #expect(try fixture.deliver(sampleMessage(id: "queued@example.org"), ["--sieve", path.path, "--lock-timeout", "0.2"]).status == 0)
        #expect(try fixture.count() == 0, "queued, not indexed")
        holder.release()
        // flush has no --sieve: the record names the script.
        #expect(try fixture.command(["flush"]).status == 0)
        #expect(try fixture.tags("id:queued@example.org") == ["inbox", "spam", "unread"])
        #expect(try fixture.count("folder:Junk") == 1)
        try fixture.expectNothingNew()
    }

    @Test func importRunsTheScriptOnEveryMessage() throws {
        let fixture = try MailFixture()
        let script = fixture.directory.appendingPathComponent("import.sieve")
        try #"""
            require ["fileinto", "mailbox", "imap4flags", "variables"];
            if header :matches "Subject" "message *" { addflag "n${1}"; }
            if header :is "Subject" "message 3" { fileinto :create "Three"; }
            """#.write(to: script, atomically: true, encoding: .utf8)
        let archive = try fixture.file("archive.mbox", ImportTests.archive(5).mbox)
        let result = try fixture.command(["import", "--sieve", script.path, archive.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try fixture.count("tag:n2 and id:imp-2@example.org") == 1)
        #expect(try fixture.count("folder:Three and tag:n3") == 1)
        try fixture.expectNothingNew()
    }

    @Test func explainShowsTheScriptsSteps() throws {
        let fixture = try MailFixture()
        _ = try useSieve(fixture)
        let result = try fixture.command(["explain"], input: "X-Spam-Flag: YES\n" + sampleMessage(id: "explain@example.org"))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Sieve script \(fixture.directory.path)/deliver.sieve:"), "\(result.stdout)")
        #expect(result.stdout.contains("line 2: header is true"))
        #expect(result.stdout.contains("line 4: fileinto \"Junk\""), "\(result.stdout)")
        #expect(result.stdout.contains("=> +spam -unread folder:Junk"))
        #expect(result.stdout.contains("folder: Junk"))
        #expect(try fixture.count() == 0)
    }
}

@Suite("check-rules on Sieve scripts")
struct CheckSieveTests {
    @Test func reportsErrorsWithTheirPlace() throws {
        let fixture = try MailFixture(createDatabase: false)
        let path = fixture.directory.appendingPathComponent("filters.sieve")
        try "require [\"fileinto\", \"reject\"];\nif header :frob \"a\" \"b\" { fileinto \"x\"; }\nredirect \"a@b\";\n"
            .write(to: path, atomically: true, encoding: .utf8)
        let result = try fixture.command(["check-rules", path.path])
        #expect(result.status == 1)
        #expect(result.stderr.split(separator: "\n").map(String.init) == [
            "\(path.path):1:9: unsupported extension 'reject': notmuch-deliver cannot refuse a message it was handed (reject at the MTA)",
            "\(path.path):2:11: header: unknown tagged argument ':frob'",
            "\(path.path):3:1: redirect is not supported: notmuch-deliver sends no mail",
        ])
    }

    @Test func acceptsAGoodScriptAndPrintsItsActions() throws {
        let fixture = try MailFixture(createDatabase: false)
        let path = try fixture.file("filters", SieveEndToEndTests.script)
        let checked = try fixture.command(["check-rules", "--sieve", path.path])
        #expect(checked.status == 0, "\(checked.stderr)")
        #expect(checked.stdout == "\(path.path): Sieve script, no errors\n")
        let message = try fixture.file("m.eml", "X-Spam-Flag: YES\n" + sampleMessage())
        let acted = try fixture.command(["check-rules", "--sieve-actions", message.path, path.path])
        #expect(acted.stdout == "store Junk $junk \\seen\n", "\(acted.stderr)")
    }
}
