@testable import DeliveryKit
import Foundation
import SystemPackage
import Testing

/// One delivery path, many messages, in one process.
@Suite("One Deliverer, many messages")
struct DelivererTests {
    @Test func rulesAreReadAgainOnlyWhenTheFileChanges() throws {
        let fixture = try MailboxFixture(rules: "+first -- *\n")
        defer { fixture.remove() }
        // Mailboxes that cache nothing: each message finds its settings,
        // and the rules come from the one RulesCache.
        let path = DeliveryPath(Mailboxes(fixture.options), committer: DirectCommit())
        func deliver(_ id: String, envelope: Envelope = Envelope()) throws -> DeliveryReport {
            let input = try fixture.input(MailboxFixture.message(id))
            defer { try? input.close() }
            var timer = PhaseTimer(path: nil)
            return try path.deliver(input, request: MessageRequest(envelope: envelope, filing: Filing()), timer: &timer)
        }

        #expect(try deliver("one@x").outcome == .indexed)
        #expect(try deliver("two@x").outcome == .indexed)
        // A new file in the rules' place (as editors save): the next message sees it.
        try "+second -- *\n".write(to: fixture.rules, atomically: true, encoding: .utf8)
        #expect(try deliver("three@x", envelope: Envelope(recipient: "me+x@example.org")).outcome == .indexed)

        #expect(try fixture.notmuch("search", "--output=tags", "id:one@x") == "first\ninbox")
        #expect(try fixture.notmuch("search", "--output=tags", "id:two@x") == "first\ninbox")
        #expect(try fixture.notmuch("search", "--output=tags", "id:three@x") == "inbox\nsecond")
        #expect(try fixture.notmuch("new").hasSuffix("No new mail."))
    }
}
