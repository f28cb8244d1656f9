import DeliveryKit
import Foundation
import SystemPackage
import Testing
import TestSupport

/// The delivery core as a server will use it: one Deliverer, many messages,
/// in one process.
@Suite("One Deliverer, many messages")
struct DelivererTests {
    let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("nd-deliverer-\(UUID().uuidString)")
    var mail: URL { directory.appendingPathComponent("mail") }
    var config: URL { directory.appendingPathComponent("config") }
    var rules: URL { directory.appendingPathComponent("rules") }

    private func notmuch(_ arguments: String...) throws -> String {
        try notmuchOutput(arguments, config: config.path, home: directory.path)
    }

    private func deliver(_ deliverer: Deliverer, id: String, envelope: Envelope? = nil) throws -> DeliveryReport {
        let file = directory.appendingPathComponent("in-\(id)")
        try "From: a@example.org\nTo: b@example.org\nSubject: \(id)\nMessage-ID: <\(id)>\n\nbody\n"
            .write(to: file, atomically: true, encoding: .utf8)
        let input = try FileDescriptor.open(FilePath(file.path), .readOnly)
        defer { try? input.close() }
        return try deliverer.deliver(input, envelope: envelope)
    }

    @Test func rulesAreReadAgainOnlyWhenTheFileChanges() throws {
        try FileManager.default.createDirectory(at: mail, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "+first -- *\n".write(to: rules, atomically: true, encoding: .utf8)
        try "[database]\npath=\(mail.path)\n[new]\ntags=inbox;\n[deliver]\nrules=\(rules.path)\n"
            .write(to: config, atomically: true, encoding: .utf8)
        _ = try notmuch("new")
        var options = DeliveryOptions()
        options.config = .file(config.path)
        options.runHooks = false
        let deliverer = Deliverer(options)

        #expect(try deliver(deliverer, id: "one@x").outcome == .indexed)
        #expect(try deliver(deliverer, id: "two@x").outcome == .indexed)
        // A new file in the rules' place (as editors save): the next message sees it.
        try "+second -- *\n".write(to: rules, atomically: true, encoding: .utf8)
        #expect(try deliver(deliverer, id: "three@x", envelope: Envelope(recipient: "me+x@example.org")).outcome == .indexed)

        #expect(try notmuch("search", "--output=tags", "id:one@x") == "first\ninbox")
        #expect(try notmuch("search", "--output=tags", "id:two@x") == "first\ninbox")
        #expect(try notmuch("search", "--output=tags", "id:three@x") == "inbox\nsecond")
        #expect(try notmuch("new").hasSuffix("No new mail."))
    }
}
