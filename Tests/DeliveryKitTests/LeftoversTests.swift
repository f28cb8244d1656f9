import Foundation
import SystemPackage
import Testing
import MaildirKit
import TestSupport

/// What a killed delivery leaves in tmp/ goes; what a live one is writing,
/// and what another host's delivery may still be writing, stays.
@Suite struct LeftoversTests {
    private let manager = FileManager.default

    private func scratchTmp() throws -> URL {
        let url = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("nd-leftovers-\(UUID().uuidString)")
        try manager.createDirectory(at: url.appendingPathComponent("mail/tmp"), withIntermediateDirectories: true)
        return url.appendingPathComponent("mail/tmp")
    }

    /// A name as `MaildirName.unique()` makes it, for another pid and time.
    private func name(pid: Int32, seconds: Int, host: String? = nil) -> String {
        let unique = MaildirName.unique()
        let parts = unique.split(separator: ".", maxSplits: 2)
        let middle = parts[1]
        let r = middle.firstIndex(of: "R")!
        return "\(seconds).\(middle[..<middle.firstIndex(of: "P")!])P\(pid)\(middle[r...]).\(host ?? String(parts[2]))"
    }

    private func sleeper() throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["60"]
        try process.run()
        return process
    }

    private func sweep(_ tmp: URL) throws -> [String] {
        let fd = try FileDescriptor.open(FilePath(tmp.path), .readOnly, options: [.directory])
        defer { try? fd.close() }
        Leftovers.sweep(tmp: fd)
        return try manager.contentsOfDirectory(atPath: tmp.path).sorted()
    }

    private func touch(_ tmp: URL, _ name: String, age: TimeInterval = 0) throws {
        let path = tmp.appendingPathComponent(name).path
        #expect(manager.createFile(atPath: path, contents: Data("partial".utf8)))
        if age > 0 { try manager.setAttributes([.modificationDate: Date().addingTimeInterval(-age)], ofItemAtPath: path) }
    }

    @Test func aDeadWritersFileGoesAtOnce() throws {
        let tmp = try scratchTmp()
        let now = Int(Date().timeIntervalSince1970)
        let dead = name(pid: try deadProcessID(), seconds: now)
        try touch(tmp, dead)
        #expect(try sweep(tmp).isEmpty)
    }

    @Test func aLiveWritersFileStays() throws {
        let tmp = try scratchTmp()
        let now = Int(Date().timeIntervalSince1970)
        let writer = try sleeper()
        defer { writer.terminate(); writer.waitUntilExit() }
        let live = name(pid: writer.processIdentifier, seconds: now + 1)
        let mine = MaildirName.unique()
        try touch(tmp, live)
        try touch(tmp, mine)
        #expect(try sweep(tmp) == [live, mine].sorted())
    }

    /// The pid is alive but its process started after the file was named:
    /// the pid was reused, the writer is gone.
    @Test func aReusedPidDoesNotKeepAFile() throws {
        let tmp = try scratchTmp()
        let writer = try sleeper()
        defer { writer.terminate(); writer.waitUntilExit() }
        let old = name(pid: writer.processIdentifier, seconds: Int(Date().timeIntervalSince1970) - 600)
        try touch(tmp, old)
        #expect(try sweep(tmp).isEmpty)
    }

    /// Another host's delivery (a maildir on NFS) cannot be asked: its
    /// files wait for the 36 hours; other programs' names are never touched.
    @Test func anotherHostsFilesWaitFor36Hours() throws {
        let tmp = try scratchTmp()
        let now = Int(Date().timeIntervalSince1970)
        let young = name(pid: try deadProcessID(), seconds: now, host: "elsewhere.example")
        let old = name(pid: try deadProcessID(), seconds: now - 40 * 3600, host: "elsewhere.example")
        let foreign = "\(now).M1P2.elsewhere.example"
        try touch(tmp, young, age: 35 * 3600)
        try touch(tmp, old, age: 37 * 3600)
        try touch(tmp, foreign, age: 40 * 3600)
        #expect(try sweep(tmp) == [foreign, young].sorted())
    }

    @Test func aTreeIsSweptBelowTheRootButNotTheDatabase() throws {
        let tmp = try scratchTmp()
        let root = tmp.deletingLastPathComponent()
        for folder in ["Lists/tmp", ".notmuch/tmp", "Lists/new"] {
            try manager.createDirectory(at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        let now = Int(Date().timeIntervalSince1970)
        let dead = name(pid: try deadProcessID(), seconds: now)
        for folder in ["tmp", "Lists/tmp", ".notmuch/tmp", "Lists/new"] {
            try touch(root.appendingPathComponent(folder), dead)
        }
        #expect(Leftovers.sweepTree(FilePath(root.path)) == 2)
        #expect(manager.fileExists(atPath: root.appendingPathComponent(".notmuch/tmp/\(dead)").path))
        #expect(manager.fileExists(atPath: root.appendingPathComponent("Lists/new/\(dead)").path))
    }
}
