import Foundation
import Testing

/// UTF-8 envelope addresses (RFC 6531) on the command line: delivered,
/// virtual mailboxes named in lower case and NFC; control characters and
/// what was not UTF-8 refused.
@Suite("UTF-8 recipients")
struct UTF8RecipientTests {
    @Test func aUTF8LocalPartNamesOneMailboxWhateverItsCaseAndComposition() throws {
        let fixture = try MailFixture.virtualOnly()
        let vmail = fixture.virtualRoot
        // Composed ö, decomposed o + U+0308, and upper case: one person, one mailbox.
        let spellings = ["jörg@bücher.example", "jo\u{308}rg+news@bu\u{308}cher.example", "JÖRG@BÜCHER.EXAMPLE"]
        for (n, recipient) in spellings.enumerated() {
            let result = try fixture.deliver(sampleMessage(id: "utf8-\(n)@example.org"),
                                             ["--mail-root", fixture.virtualTemplate, "--recipient", recipient])
            #expect(result.status == 0, "\(recipient): \(result.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: vmail.path) == ["bücher.example"])
        let domain = vmail.appendingPathComponent("bücher.example")
        #expect(try FileManager.default.contentsOfDirectory(atPath: domain.path) == ["jörg"])
        #expect(try fixture.notmuchIn(domain.appendingPathComponent("jörg"), "count", "*") == "3")
    }

    @Test(arguments: ["a\u{85}b@example.org", "a\u{9B}b@example.org", "ab@exa\u{2028}mple.org", "a\u{FFFD}b@example.org"])
    func aRecipientWithAControlCharacterOrNotUTF8IsRefused(recipient: String) throws {
        let stderr = try MailFixture(createDatabase: false).expectRefused(recipient: recipient)
        #expect(stderr.contains("control character") || stderr.contains("not valid UTF-8"), "\(stderr)")
    }

    @Test func aUTF8SenderIsTakenAndAControlCharacterInOneRefused() throws {
        let fixture = try MailFixture()
        let taken = try fixture.deliver(sampleMessage(id: "sender-utf8@example.org"), ["--sender", "jörg@bücher.example"])
        #expect(taken.status == 0, "\(taken.stderr)")
        let refused = try fixture.deliver(sampleMessage(id: "sender-c1@example.org"), ["--sender", "j\u{85}rg@example.org"])
        #expect(refused.status == 64, "\(refused.stderr)")
        #expect(refused.stderr.contains("the sender 'j\\x85rg@example.org' holds a control character"), "\(refused.stderr)")
    }
}
