import DeliveryKit
import Foundation
import Notmuch
@testable import Watch
import TestSupport

/// A mail root with a notmuch config and an empty database, made with the
/// notmuch CLI's library; messages written straight into it.
final class MailFixture {
    let directory: URL
    let config: String
    var root: String { directory.appendingPathComponent("mail").path }

    init(ignore: String = ".mbsyncstate;/^ignored-/") throws {
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("nd-watch-\(UUID().uuidString)")
        config = directory.appendingPathComponent("config").path
        try FileManager.default.createDirectory(atPath: directory.appendingPathComponent("mail").path,
                                                withIntermediateDirectories: true)
        try """
            [database]
            path=\(directory.appendingPathComponent("mail").path)
            [new]
            tags=unread;inbox;
            ignore=\(ignore)
            [maildir]
            synchronize_flags=true

            """.write(toFile: config, atomically: true, encoding: .utf8)
        try Database.create(config: .file(config)).close()
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    var options: DeliveryOptions {
        var options = DeliveryOptions()
        options.config = .file(config)
        options.rules = .none
        options.sieve = .none
        return options
    }

    /// Makes each folder a maildir (cur/, new/, tmp/).
    func maildir(_ folders: String...) throws {
        for folder in folders {
            for sub in ["cur", "new", "tmp"] {
                try FileManager.default.createDirectory(atPath: "\(root)/\(folder)/\(sub)", withIntermediateDirectories: true)
            }
        }
    }

    @discardableResult
    func write(_ relative: String, id: String) throws -> String {
        let path = "\(root)/\(relative)"
        try "From: a@example.org\nTo: b@example.org\nSubject: \(id)\nMessage-ID: <\(id)>\n\nbody\n"
            .write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    func reconciler() throws -> Reconciler { try Reconciler(options: options) }

    /// What the database says, through the notmuch CLI.
    func notmuch(_ arguments: String...) throws -> String {
        try notmuchOutput(arguments, config: config)
    }

    func tags(_ id: String) throws -> Set<String> {
        Set(try notmuch("search", "--output=tags", "id:\(id)").split(separator: "\n").map(String.init))
    }

    func files(_ id: String) throws -> Set<String> {
        Set(try notmuch("search", "--output=files", "id:\(id)").split(separator: "\n")
            .map { String($0.dropFirst(root.count + 1)) })
    }
}
