import Testing
@testable import notmuch_deliver

/// The quick reader must agree with ArgumentParser on every line it accepts,
/// and hand everything unusual over to it.
struct QuickCommandLineTests {
    static let accepted: [[String]] = [
        [],
        ["--folder", "Sent", "--tag", "sent", "--tag", "outbox"],
        ["--folder=Lists/dev", "--create-folder", "--remove-tag=inbox"],
        ["--config", "/etc/nm", "--profile", "work", "--rules", "/r", "--no-rules"],
        ["--recipient", "a+b@example.org", "--sender", "s@example.org", "--mail-root", "/srv/vmail/%d/%u"],
        ["--decrypt", "nostash", "--lock-timeout", "2.5", "--log", "/tmp/log"],
        ["--keep", "-n", "--world-readable", "-v"],
        ["--no-hooks", "--verbose", "--lock-timeout=0"],
        ["--tag", "a", "--remove-tag", "b", "--tag", "c"],
        ["--quota", "2G,100000C", "--quota-permanent"],
        ["--quota=500M"],
        ["--quota", "1G", "--quota-warn", "80,95"],
    ]

    @Test("same request as ArgumentParser", arguments: accepted)
    func agrees(arguments: [String]) throws {
        let quick = try #require(QuickCommandLine.deliveryRequest(arguments))
        let reference = try Deliver.parse(arguments).request
        #expect(quick == reference)
    }

    static let handedOver: [[String]] = [
        ["--help"], ["-h"], ["--version"], ["--generate-completion-script", "bash"],
        ["--folder"], ["--folder", "--keep"], ["--folder", "a", "--folder", "b"],
        ["--keep", "--keep"], ["--keep=yes"], ["--decrypt", "maybe"], ["--lock-timeout", "soon"],
        ["--quota"], ["--quota-permanent=yes"], ["--quota", "--keep"],
        ["--fodler", "Sent"], ["inbox"], ["--"], ["-x"],
    ]

    /// `--folder=` (or an empty value) is the top-level folder, as for
    /// notmuch insert; ArgumentParser, which calls it a missing value, gets
    /// it rewritten by the tag-operation split.
    @Test func anEmptyFolderIsTheTopLevel() throws {
        for arguments in [["--folder="], ["--folder", ""]] {
            let (_, rest) = NotmuchDeliver.splitTagOperations(arguments)
            #expect(QuickCommandLine.deliveryRequest(rest)?.filing.folder == "")
            #expect(try Deliver.parse(rest).request.filing.folder == "")
        }
    }

    @Test("leaves the unusual to ArgumentParser", arguments: handedOver)
    func handsOver(arguments: [String]) {
        #expect(QuickCommandLine.deliveryRequest(arguments) == nil)
    }

    @Test("tag operations are split off before either parser runs")
    func tagOperationsSplit() throws {
        let (operations, rest) = NotmuchDeliver.splitTagOperations(["--folder", "-x", "+a", "-inbox", "-n", "--tag", "t"])
        #expect(operations == ["+a", "-inbox"])
        #expect(rest == ["--folder", "-x", "-n", "--tag", "t"])
    }
}
