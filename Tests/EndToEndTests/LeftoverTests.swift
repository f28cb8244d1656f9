import Foundation
import Testing
import TestSupport

/// A delivery killed half-way leaves a file in tmp/; `flush`, the next
/// delivery and a server starting remove it, never a live writer's.
@Suite struct LeftoverTests {
    private static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, 255)
        return String(cString: buffer)
    }

    /// A name of the shape notmuch-deliver gives its files in tmp/.
    private func name(pid: Int32, seconds: Int = Int(Date().timeIntervalSince1970)) -> String {
        "\(seconds).M123456P\(pid)R5eedQ1.\(Self.hostName())"
    }

    private func leave(_ name: String, in fixture: MailFixture) throws {
        let path = fixture.mailRoot.appendingPathComponent("tmp/\(name)").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data("From: half\n".utf8)))
    }

    private func tmp(_ fixture: MailFixture) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: fixture.mailRoot.appendingPathComponent("tmp").path)) ?? [])
            .sorted()
    }

    @Test func flushRemovesADeadWritersFileAndKeepsALiveOnes() throws {
        let fixture = try MailFixture()
        #expect(try fixture.deliver(sampleMessage(id: "first@x")).status == 0)
        let dead = name(pid: try deadProcessID())
        // This test process is alive, and started before the name's time.
        let live = name(pid: getpid(), seconds: Int(Date().timeIntervalSince1970) + 1)
        try leave(dead, in: fixture)
        try leave(live, in: fixture)
        let flush = try fixture.command(["flush"])
        #expect(flush.status == 0, "\(flush.stderr)")
        #expect(tmp(fixture) == [live])
    }

    @Test func aDeliveryRemovesADeadWritersFileInItsMaildir() throws {
        let fixture = try MailFixture()
        #expect(try fixture.deliver(sampleMessage(id: "first@x")).status == 0)
        let dead = name(pid: try deadProcessID())
        try leave(dead, in: fixture)
        #expect(try fixture.deliver(sampleMessage(id: "second@x")).status == 0)
        #expect(tmp(fixture).isEmpty)
        #expect(try fixture.count() == 2)
    }
}
