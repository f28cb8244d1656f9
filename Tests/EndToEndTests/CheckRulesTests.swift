import Foundation
import Testing

/// `check-rules` finds the rules file as a delivery does, a virtual
/// mailbox's own included.
@Suite("check-rules finds the rules a delivery applies")
struct CheckRulesTests {
    /// A fixture whose notmuch config names rules of its own (one rule),
    /// and a virtual mailbox for carol@example.org holding `ownRules`.
    private func virtualMailbox(ownRules: String?) throws -> (MailFixture, template: String, mailbox: URL) {
        let fixture = try MailFixture()
        try fixture.useRules("+configured -- *\n")
        let vmail = fixture.directory.appendingPathComponent("vmail")
        let mailbox = vmail.appendingPathComponent("example.org/carol")
        try FileManager.default.createDirectory(at: vmail, withIntermediateDirectories: true)
        if let ownRules {
            try FileManager.default.createDirectory(at: mailbox.appendingPathComponent(".notmuch"),
                                                    withIntermediateDirectories: true)
            try ownRules.write(to: mailbox.appendingPathComponent(".notmuch/deliver.rules"),
                               atomically: true, encoding: .utf8)
        }
        return (fixture, vmail.path + "/%d/%u", mailbox)
    }

    @Test func aVirtualMailboxsOwnRulesAreChecked() throws {
        let (fixture, template, mailbox) = try virtualMailbox(ownRules: "+a -- *\n+b folder:shop -- extension:shop\n")
        let own = mailbox.appendingPathComponent(".notmuch/deliver.rules").path
        // The recipient's case and +extension name the same mailbox, as for a delivery.
        let result = try fixture.command(["check-rules", "--mail-root", template, "--recipient", "Carol+shop@example.org"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "\(own): 2 rules, no errors\n")
        // Without --mail-root: the config's rules, as before.
        #expect(try fixture.command(["check-rules"]).stdout.hasSuffix("/rules: 1 rules, no errors\n"))
    }

    @Test func errorsInAVirtualMailboxsRulesFail() throws {
        let (fixture, template, mailbox) = try virtualMailbox(ownRules: "+a -- *\n+b header:X~/y/\n")
        let own = mailbox.appendingPathComponent(".notmuch/deliver.rules").path
        let result = try fixture.command(["check-rules", "--mail-root", template, "--recipient", "carol@example.org"])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("\(own):2:4: expected an action"), "\(result.stderr)")
    }

    @Test func aMailboxWithoutRulesHasNoneToCheckAndIsNotCreated() throws {
        let (fixture, template, _) = try virtualMailbox(ownRules: nil)
        let result = try fixture.command(["check-rules", "--mail-root", template, "--recipient", "carol@example.org"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("no rules file"), "\(result.stderr)")
        // The config's rules are not a virtual mailbox's: not checked instead.
        #expect(result.stdout.isEmpty, "\(result.stdout)")
        let vmail = fixture.directory.appendingPathComponent("vmail").path
        #expect(try FileManager.default.contentsOfDirectory(atPath: vmail).isEmpty)
    }

    @Test func mailRootAndRecipientGoTogether() throws {
        let (fixture, template, _) = try virtualMailbox(ownRules: "+a -- *\n")
        #expect(try fixture.command(["check-rules", "--mail-root", template]).status == 64)
        #expect(try fixture.command(["check-rules", "--recipient", "carol@example.org"]).status == 64)
        let refused = try fixture.command(["check-rules", "--mail-root", template, "--recipient", "../etc@example.org"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("cannot name a mailbox"), "\(refused.stderr)")
    }

    @Test func aMissingConfigFileIsSaid() throws {
        let fixture = try MailFixture()
        let result = try fixture.command(["check-rules", "--config", "/nonexistent/config"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("config file '/nonexistent/config' not found"), "\(result.stderr)")
    }
}
