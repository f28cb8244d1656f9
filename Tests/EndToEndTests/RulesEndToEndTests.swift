import Foundation
import Testing

@Suite("Rules at delivery")
struct RulesEndToEndTests {
    static let rules = """
        # SpamAssassin or rspamd
        +spam -inbox folder:Junk stop -- header:X-Spam-Flag~/^yes$/ or header:X-Spam~/^yes$/
        +lists/$1 -inbox -- header:List-Id~/<([^.>]+)\\./
        +muted -inbox -unread folder:Muted -- thread:{tag:muted}
        +shopping folder:shop -- extension:shop
        discard -- header:X-Virus~/infected/
        """

    @Test func spamGoesToJunkWithExactlyTheRuleTags() throws {
        let fixture = try MailFixture.withRules(Self.rules)
        var message = "X-Spam-Flag: YES\n" + sampleMessage(id: "spam@example.org")
        #expect(try fixture.deliver(message).status == 0)
        message = "X-Spam: yes\nList-Id: <dev.lists.example.org>\n" + sampleMessage(id: "rspamd@example.org")
        #expect(try fixture.deliver(message).status == 0)
        #expect(try fixture.tags("id:spam@example.org") == ["spam", "unread"])
        // stop: the list rule after the spam rule did not run.
        #expect(try fixture.tags("id:rspamd@example.org") == ["spam", "unread"])
        #expect(fixture.files().allSatisfy { $0.hasPrefix("Junk/new/") })
        #expect(try fixture.count("folder:Junk") == 2)
        try fixture.expectNothingNew()
    }

    @Test func mailingListTagFromTheHeader() throws {
        let fixture = try MailFixture.withRules(Self.rules)
        let message = "List-Id: Developers <dev.lists.example.org>\n" + sampleMessage(id: "list@example.org")
        #expect(try fixture.deliver(message).status == 0)
        #expect(try fixture.tags("id:list@example.org") == ["lists/dev", "unread"])
    }

    @Test func hostileListIdCannotMakeAnArbitraryTag() throws {
        let fixture = try MailFixture.withRules(Self.rules)
        let message = "List-Id: <-inbox +spam\u{7}.evil>\n" + sampleMessage(id: "evil@example.org")
        #expect(try fixture.deliver(message).status == 0)
        let tags = try fixture.tags("id:evil@example.org")
        #expect(tags == ["lists/inbox_+spam", "unread"])
    }

    @Test func queryRuleOnAThreadDeliveredBeforeMovesFileAndIndexEntry() throws {
        let fixture = try MailFixture.withRules(Self.rules)
        try fixture.deliverAReplyToAMutedThread()
        #expect(try fixture.tags("id:reply@example.org") == ["muted"])
        // Moved, then renamed for the flags: read, so cur/ with S.
        let files = try fixture.notmuch("search", "--output=files", "id:reply@example.org")
        #expect(files.contains("/Muted/cur/") && files.hasSuffix(":2,S"), "\(files)")
        #expect(fixture.files().filter { $0.hasPrefix("Muted/") }.count == 1)
        #expect(fixture.files().count == 2)
        try fixture.expectNothingNew()
    }

    @Test func extensionFromPostfixEnvironmentAndFromTheCommandLine() throws {
        let fixture = try MailFixture.withRules(Self.rules)
        fixture.extraEnvironment = ["RECIPIENT": "me+shop@example.org", "EXTENSION": "shop"]
        #expect(try fixture.deliver(sampleMessage(id: "env@example.org")).status == 0)
        fixture.extraEnvironment = [:]
        #expect(try fixture.deliver(sampleMessage(id: "cli@example.org"), ["--recipient", "me+shop@example.org"]).status == 0)
        #expect(try fixture.deliver(sampleMessage(id: "plain@example.org"), ["--recipient", "me@example.org"]).status == 0)
        #expect(try fixture.count("folder:shop and tag:shopping") == 2)
        #expect(try fixture.tags("id:plain@example.org") == ["inbox", "unread"])
        try fixture.expectNothingNew()
    }

    @Test func extensionFromDeliveredToWhenNothingElseSaysIt() throws {
        let fixture = try MailFixture.withRules(Self.rules)
        let message = "Delivered-To: me+shop@example.org\n" + sampleMessage(id: "dt@example.org")
        #expect(try fixture.deliver(message).status == 0)
        #expect(try fixture.count("folder:shop and id:dt@example.org") == 1)
    }

    @Test func commandLineTagsComeLast() throws {
        let fixture = try MailFixture.withRules("-inbox +ruled -- *\n")
        #expect(try fixture.deliver(sampleMessage(id: "last@example.org"), ["+inbox"]).status == 0)
        #expect(try fixture.tags("id:last@example.org") == ["inbox", "ruled", "unread"])
    }

    @Test func laterRulesSeeEarlierTags() throws {
        let fixture = try MailFixture.withRules("+work -- from:alice@example.org\n+important -- tag:work and tag:unread\n")
        #expect(try fixture.deliver(sampleMessage(id: "chain@example.org")).status == 0)
        #expect(try fixture.tags("id:chain@example.org") == ["important", "inbox", "unread", "work"])
    }

    @Test func discardStoresNothingAndIsLogged() throws {
        let fixture = try MailFixture.withRules(Self.rules)
        let result = try fixture.deliver("X-Virus: infected\n" + sampleMessage(id: "virus@example.org"), ["-v"])
        #expect(result.status == 0)
        #expect(result.stderr.contains("discarded virus@example.org"))
        #expect(fixture.files().isEmpty)
        #expect(try fixture.count() == 0)
        try fixture.expectNothingNew()
    }

    @Test func aQueryLibnotmuchRejectsDoesNotStopMail() throws {
        let fixture = try MailFixture.withRules("+never -- date:bogusdate..\n+always -- *\n")
        let result = try fixture.deliver(sampleMessage(id: "badquery@example.org"), ["-v"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("taken as not matching"))
        #expect(try fixture.tags("id:badquery@example.org") == ["always", "inbox", "unread"])
    }

    @Test func aRuleFolderOutsideTheRootKeepsTheMailWhereItIs() throws {
        let fixture = try MailFixture()
        let outside = fixture.directory.appendingPathComponent("outside")
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: fixture.mailRoot.appendingPathComponent("Escape"),
                                                   withDestinationURL: outside)
        try fixture.useRules("+moved folder:Escape -- *\n")
        let result = try fixture.deliver(sampleMessage(id: "escape@example.org"))
        #expect(result.status == 0, "a rule's folder must not bounce mail: \(result.stderr)")
        #expect(fixture.files().first?.hasPrefix("new/") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside.path).isEmpty)
        #expect(try fixture.tags("id:escape@example.org") == ["inbox", "moved", "unread"])
        try fixture.expectNothingNew()
    }

    @Test func brokenRulesFileStillDelivers() throws {
        let fixture = try MailFixture.withRules("+ok -- *\n+spam folder:Junk -- header:X-Spam~/(/\n")
        let quiet = try fixture.deliver(sampleMessage(id: "typo@example.org"), ["+cli"])
        #expect(quiet.status == 0)
        #expect(quiet.stderr.isEmpty, "the error goes to the log, not to stderr: \(quiet.stderr)")
        // Not even the good rule applies: half a rules file is worse than none.
        #expect(try fixture.tags("id:typo@example.org") == ["cli", "inbox", "unread"])
        #expect(fixture.files().first?.hasPrefix("new/") == true)
        let verbose = try fixture.deliver(sampleMessage(id: "typo2@example.org"), ["-v"])
        #expect(verbose.status == 0)
        #expect(verbose.stderr.contains("rules:2:36: invalid regular expression"), "\(verbose.stderr)")
        try fixture.expectNothingNew()
    }

    @Test func missingRulesFileStillDelivers() throws {
        let fixture = try MailFixture()
        let result = try fixture.deliver(sampleMessage(id: "norules@example.org"), ["--rules", "/nonexistent/rules", "-v"])
        #expect(result.status == 0)
        #expect(result.stderr.contains("/nonexistent/rules"))
        #expect(try fixture.count("id:norules@example.org") == 1)
    }

    @Test func rulesOptionOverridesAndNoRulesDisables() throws {
        let fixture = try MailFixture.withRules("+configured -- *\n")
        let other = try fixture.file("other.rules", "+other -- *\n")
        #expect(try fixture.deliver(sampleMessage(id: "a@x"), ["--rules", other.path]).status == 0)
        #expect(try fixture.deliver(sampleMessage(id: "b@x"), ["--no-rules"]).status == 0)
        #expect(try fixture.deliver(sampleMessage(id: "c@x")).status == 0)
        #expect(try fixture.tags("id:a@x") == ["inbox", "other", "unread"])
        #expect(try fixture.tags("id:b@x") == ["inbox", "unread"])
        #expect(try fixture.tags("id:c@x") == ["configured", "inbox", "unread"])
    }

    @Test func theRulesFileIsReadOncePerDelivery() throws {
        // Each load of a broken rules file logs its error once: one line, one load.
        // (A FIFO, readable only once, showed this before FIFOs were refused.)
        let fixture = try MailFixture()
        let rules = try fixture.file("broken.rules", "+ok -- *\n+broken header:X\n")
        let log = fixture.directory.appendingPathComponent("deliver.log")
        let result = try fixture.deliver(sampleMessage(id: "once@example.org"), ["--rules", rules.path, "--log", log.path])
        #expect(result.status == 0)
        let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.filter { $0.contains("\(rules.path):2:") }.count == 1, "\(lines)")
        #expect(try fixture.tags("id:once@example.org") == ["inbox", "unread"])
    }

    @Test func checkRules() throws {
        let fixture = try MailFixture()
        let good = try fixture.file("good.rules", Self.rules)
        let ok = try fixture.command(["check-rules", good.path])
        #expect(ok.status == 0)
        #expect(ok.stdout == "\(good.path): 5 rules, no errors\n")
        let bad = try fixture.file("bad.rules", "+a -- *\n+b header:X~/y/\n")
        let failed = try fixture.command(["check-rules", bad.path])
        #expect(failed.status == 1)
        #expect(failed.stderr.hasPrefix("\(bad.path):2:4: expected an action"), "\(failed.stderr)")
        // Without an argument: the configured file.
        try fixture.useRules("+x -- *\n")
        #expect(try fixture.command(["check-rules"]).stdout.hasSuffix(": 1 rules, no errors\n"))
    }

    @Test func explainShowsWhyAndStoresNothing() throws {
        let fixture = try MailFixture.withRules(Self.rules)
        let message = "List-Id: <dev.lists.example.org>\n" + sampleMessage(id: "explain@example.org")
        let result = try fixture.command(["explain", "--recipient", "me+shop@example.org", "+cli"], input: message)
        #expect(result.status == 0, "\(result.stderr)")
        let expected = """
            message: explain@example.org
            line 2: no match: +spam -inbox folder:Junk stop -- header:X-Spam-Flag~/^yes$/ or header:X-Spam~/^yes$/
                no : header:X-Spam-Flag~/^yes$/ (no X-Spam-Flag header)
                no : header:X-Spam~/^yes$/ (no X-Spam header)
            line 3: matches: +lists/$1 -inbox -- header:List-Id~/<([^.>]+)\\./
                yes: header:List-Id~/<([^.>]+)\\./ (List-Id: <dev.lists.example.org>)
                => +lists/dev -inbox
            line 4: no match: +muted -inbox -unread folder:Muted -- thread:{tag:muted}
                no : thread:{tag:muted}
            line 5: matches: +shopping folder:shop -- extension:shop
                yes: extension:shop (+shop)
                => +shopping folder:shop
            line 6: no match: discard -- header:X-Virus~/infected/
                no : header:X-Virus~/infected/ (no X-Virus header)
            tags: cli lists/dev shopping unread
            folder: shop

            """
        #expect(result.stdout == expected)
        #expect(fixture.files().isEmpty)
        #expect(try fixture.count() == 0)
        try fixture.expectNothingNew()
    }
}
