@testable import DeliveryKit
import Foundation
import SystemPackage
import Testing
import MaildirKit

/// A resolved Maildir writes through the directories it opened: a symlink
/// swapped in after the check cannot redirect what is written.
@Suite struct MaildirDescriptorTests {
    private let manager = FileManager.default

    private func scratchDirectory() throws -> URL {
        let url = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("nd-maildir-\(UUID().uuidString)")
        try manager.createDirectory(at: url.appendingPathComponent("mail"), withIntermediateDirectories: true)
        return url
    }

    /// Moves the real new/ aside and puts a symlink out of the root in its
    /// place, as an attacker racing the delivery would.
    private func swapNewForALinkOut(_ base: URL) throws -> (aside: URL, outside: URL) {
        let new = base.appendingPathComponent("mail/box/new")
        let aside = base.appendingPathComponent("mail/box/new-aside")
        let outside = base.appendingPathComponent("outside")
        try manager.createDirectory(at: outside, withIntermediateDirectories: true)
        try manager.moveItem(at: new, to: aside)
        try manager.createSymbolicLink(at: new, withDestinationURL: outside)
        return (aside, outside)
    }

    /// mail/box resolved (and made) as a delivery resolves it, then its new/
    /// swapped for a link out: the resolved maildir, where the real new/
    /// went, and where the link leads.
    private func resolveThenSwapNew(_ base: URL) throws -> (maildir: Maildir, aside: URL, outside: URL) {
        let maildir = try MailFolder.resolve(root: base.appendingPathComponent("mail").path, name: "box", create: true,
                                             databaseFolder: nil)
        let (aside, outside) = try swapNewForALinkOut(base)
        return (maildir, aside, outside)
    }

    /// A small message written in `base`, open for reading, as a delivery's input.
    private func openMessage(in base: URL) throws -> FileDescriptor {
        let message = base.appendingPathComponent("message")
        try "From: a@example.org\nSubject: x\n\nbody\n".write(to: message, atomically: true, encoding: .utf8)
        return try FileDescriptor.open(FilePath(message.path), .readOnly)
    }

    @Test func aDeliveryGoesWhereTheCheckWasMade() throws {
        let base = try scratchDirectory()
        defer { try? manager.removeItem(at: base) }
        let (maildir, aside, outside) = try resolveThenSwapNew(base)
        let fd = try openMessage(in: base)
        defer { try? fd.close() }
        _ = try maildir.deliver(from: fd, permissions: .ownerReadWrite)
        #expect(try manager.contentsOfDirectory(atPath: outside.path).isEmpty)
        #expect(try manager.contentsOfDirectory(atPath: aside.path).count == 1)
    }

    @Test func aMoveGoesWhereTheCheckWasMade() throws {
        let base = try scratchDirectory()
        defer { try? manager.removeItem(at: base) }
        let (maildir, aside, outside) = try resolveThenSwapNew(base)
        let file = base.appendingPathComponent("mail/somefile")
        try "x".write(to: file, atomically: true, encoding: .utf8)
        _ = try maildir.moveIntoNew(FilePath(file.path))
        #expect(try manager.contentsOfDirectory(atPath: outside.path).isEmpty)
        #expect(try manager.contentsOfDirectory(atPath: aside.path) == ["somefile"])
    }

    @Test func resolvingAgainRefusesTheLink() throws {
        let base = try scratchDirectory()
        defer { try? manager.removeItem(at: base) }
        _ = try resolveThenSwapNew(base)
        #expect(throws: FolderError.self) {
            try MailFolder.resolve(root: base.appendingPathComponent("mail").path, name: "box", create: true, databaseFolder: nil)
        }
    }

    @Test func aMaildirMadeFromAPathRefusesALinkOutToo() throws {
        let base = try scratchDirectory()
        defer { try? manager.removeItem(at: base) }
        let folder = base.appendingPathComponent("mail/box")
        for sub in ["new", "cur"] {
            try manager.createDirectory(at: folder.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        let outside = base.appendingPathComponent("outside")
        try manager.createDirectory(at: outside, withIntermediateDirectories: true)
        try manager.createSymbolicLink(at: folder.appendingPathComponent("tmp"), withDestinationURL: outside)
        let fd = try openMessage(in: base)
        defer { try? fd.close() }
        #expect(throws: Maildir.WriteError.self) {
            try Maildir(FilePath(folder.path)).deliver(from: fd, permissions: .ownerReadWrite)
        }
        #expect(try manager.contentsOfDirectory(atPath: outside.path).isEmpty)
        #expect(try manager.contentsOfDirectory(atPath: folder.appendingPathComponent("new").path).isEmpty)
    }
}
