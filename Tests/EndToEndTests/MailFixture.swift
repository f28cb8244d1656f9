import Foundation
import Testing

/// A throwaway notmuch setup: its own config file, mail root and database,
/// driven through the built `notmuch-deliver` and the real `notmuch` CLI.
/// Runs are independent processes; the fixture is only read while they run.
final class MailFixture: @unchecked Sendable {
    let directory: URL
    let mailRoot: URL
    let configFile: URL

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    init(newTags: String = "unread;inbox;", synchronizeFlags: Bool = true, createDatabase: Bool = true,
         extraConfig: String = "") throws {
        directory = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("nd-test-\(UUID().uuidString)")
        mailRoot = directory.appendingPathComponent("mail")
        configFile = directory.appendingPathComponent("notmuch-config")
        try FileManager.default.createDirectory(at: mailRoot, withIntermediateDirectories: true)
        try writeConfig(newTags: newTags, synchronizeFlags: synchronizeFlags, extra: extraConfig)
        if createDatabase {
            let result = try notmuchResult(["new", "--quiet"])
            #expect(result.status == 0, "notmuch new failed: \(result.stderr)")
        }
    }

    /// (Re)writes the config file, e.g. with a value `notmuch new` would refuse.
    func writeConfig(newTags: String = "unread;inbox;", synchronizeFlags: Bool = true, extra: String = "") throws {
        let config = """
            [database]
            path=\(mailRoot.path)
            mail_root=\(mailRoot.path)
            [new]
            tags=\(newTags)
            [maildir]
            synchronize_flags=\(synchronizeFlags)
            \(extra)

            """
        try config.write(to: configFile, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// A fixture for virtual mailboxes only: no notmuch config file and no
    /// database, and an empty `virtualRoot` to deliver into with
    /// `--mail-root virtualTemplate`.
    static func virtualOnly() throws -> MailFixture {
        let fixture = try MailFixture(createDatabase: false)
        try FileManager.default.createDirectory(at: fixture.virtualRoot, withIntermediateDirectories: true)
        fixture.extraEnvironment = ["NOTMUCH_CONFIG": "/nonexistent/config"]
        return fixture
    }

    var virtualRoot: URL { directory.appendingPathComponent("vmail") }
    var virtualTemplate: String { virtualRoot.path + "/%d/%u" }

    /// A delivery to `recipient` under `virtualRoot` (made empty here) that
    /// must be refused as a usage error (64) before any mailbox is made: its stderr.
    func expectRefused(recipient: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try FileManager.default.createDirectory(at: virtualRoot, withIntermediateDirectories: true)
        let result = try deliver(sampleMessage(), ["--mail-root", virtualTemplate, "--recipient", recipient])
        #expect(result.status == 64, "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(try FileManager.default.contentsOfDirectory(atPath: virtualRoot.path).isEmpty,
                "a mailbox was made for \(recipient)", sourceLocation: sourceLocation)
        return result.stderr
    }

    /// The user mutes a thread by hand (`notmuch tag +muted` on its first
    /// message, id:root@example.org), then a reply to it
    /// (id:reply@example.org) is delivered.
    func deliverAReplyToAMutedThread(sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try deliver(sampleMessage(id: "root@example.org", subject: "Noisy")).status == 0,
                sourceLocation: sourceLocation)
        _ = try notmuch("tag", "+muted", "id:root@example.org")
        let reply = sampleMessage(id: "reply@example.org", subject: "Re: Noisy")
            .replacingOccurrences(of: "Message-ID:", with: "In-Reply-To: <root@example.org>\nMessage-ID:")
        #expect(try deliver(reply).status == 0, sourceLocation: sourceLocation)
    }

    /// Extra variables for the next runs, e.g. postfix's RECIPIENT.
    var extraEnvironment: [String: String] = [:]

    /// The environment a delivery sees: only this fixture's configuration.
    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["NOTMUCH_CONFIG"] = configFile.path
        env["HOME"] = directory.path
        env["XDG_CONFIG_HOME"] = directory.appendingPathComponent("xdg").path
        env.removeValue(forKey: "NOTMUCH_PROFILE")
        env.removeValue(forKey: "MAILDIR")
        for variable in ["RECIPIENT", "ORIGINAL_RECIPIENT", "SENDER", "EXTENSION"] { env.removeValue(forKey: variable) }
        env.merge(extraEnvironment) { $1 }
        return env
    }

    /// Runs notmuch-deliver with `input` on stdin, handed over in `chunks`
    /// separate writes with a pause between, as a slow pipe would.
    /// `environment`: instead of the fixture's, e.g. with a variable removed.
    @discardableResult
    func deliver(_ input: String, _ arguments: [String] = [], chunks: [Int]? = nil,
                 timeout: Double? = nil, environment: [String: String]? = nil) throws -> Result {
        try run(Self.deliverExecutable, arguments, input: Data(input.utf8), chunks: chunks, timeout: timeout,
                environment: environment)
    }

    /// Writes `text` to the file `name` in the fixture's directory: its URL.
    func file(_ name: String, _ text: String) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// Writes a rules file and names it in the config as deliver.rules.
    func useRules(_ text: String) throws {
        let path = try file("rules", text)
        try writeConfig(extra: "[deliver]\nrules=\(path.path)")
    }

    /// A fixture whose config names a rules file of `rules`.
    static func withRules(_ rules: String) throws -> MailFixture {
        let fixture = try MailFixture()
        try fixture.useRules(rules)
        return fixture
    }

    /// Runs notmuch-deliver with arguments and no input worth mentioning.
    func command(_ arguments: [String], input: String = "") throws -> Result {
        try run(Self.deliverExecutable, arguments, input: Data(input.utf8), chunks: nil)
    }

    @discardableResult
    func deliver(bytes: Data, _ arguments: [String] = []) throws -> Result {
        try run(Self.deliverExecutable, arguments, input: bytes, chunks: nil)
    }

    func notmuchResult(_ arguments: [String]) throws -> Result {
        try run(Self.notmuchExecutable, arguments, input: Data(), chunks: nil)
    }

    /// Runs the notmuch CLI; its stdout, trimmed.
    func notmuch(_ arguments: String...) throws -> String {
        let result = try notmuchResult(arguments)
        #expect(result.status == 0, "notmuch \(arguments) failed: \(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs the notmuch CLI on another mailbox (a virtual one), through a
    /// config file naming it: its stdout, trimmed.
    func notmuchIn(_ mailbox: URL, _ arguments: String...) throws -> String {
        let config = directory.appendingPathComponent("view-\(mailbox.lastPathComponent).conf")
        try "[database]\npath=\(mailbox.path)\n".write(to: config, atomically: true, encoding: .utf8)
        var view = environment
        view["NOTMUCH_CONFIG"] = config.path
        let result = try run(Self.notmuchExecutable, arguments, input: Data(), chunks: nil, environment: view)
        #expect(result.status == 0, "notmuch \(arguments) in \(mailbox.path) failed: \(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Tags of the messages matching `query`, sorted.
    func tags(_ query: String) throws -> [String] {
        try notmuch("search", "--output=tags", query).split(separator: "\n").map(String.init).sorted()
    }

    func count(_ query: String = "*") throws -> Int {
        Int(try notmuch("count", query)) ?? -1
    }

    /// Files under the mail root (outside .notmuch), relative to it, sorted.
    func files() -> [String] {
        let root = mailRoot.path
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        var result: [String] = []
        while let entry = walker.nextObject() as? String {
            if entry.hasPrefix(".notmuch") { continue }
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + entry, isDirectory: &isDirectory),
               !isDirectory.boolValue {
                result.append(entry)
            }
        }
        return result.sorted()
    }

    func contents(_ relativePath: String) throws -> Data {
        try Data(contentsOf: mailRoot.appendingPathComponent(relativePath))
    }

    /// `notmuch new` must find nothing: the database agrees with the maildir.
    func expectNothingNew(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let output = try notmuch("new")
        // "Found 0 total files" may come first on an empty database; renames
        // and removals would be reported on the last line.
        #expect(output.split(separator: "\n").last == "No new mail.",
                "notmuch new found something: \(output)", sourceLocation: sourceLocation)
    }

    static let notmuchExecutable = URL(fileURLWithPath: "/usr/bin/notmuch")

    static var deliverExecutable: URL {
        // The test bundle runs from the build directory, next to the executable.
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return testBinary.deletingLastPathComponent().appendingPathComponent("notmuch-deliver")
    }

    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    /// Runs a program, in the fixture's environment unless given another;
    /// one still running after `timeout` seconds is killed (its status then
    /// shows the signal), so a hang fails instead of blocking.
    func run(_ executable: URL, _ arguments: [String], input: Data, chunks: [Int]?,
             timeout: Double? = nil, environment: [String: String]? = nil) throws -> Result {
        Self.ignoreSIGPIPE
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment ?? self.environment
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        if let timeout {
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { [process] in
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
        }
        var offset = 0
        for size in chunks ?? [input.count] {
            let end = min(offset + size, input.count)
            // A child that exits early closes the pipe: EPIPE, not a crash.
            if end > offset { try? stdin.fileHandleForWriting.write(contentsOf: input.subdata(in: offset..<end)) }
            offset = end
            if chunks != nil { usleep(30_000) }
        }
        if offset < input.count {
            try? stdin.fileHandleForWriting.write(contentsOf: input.subdata(in: offset..<input.count))
        }
        try? stdin.fileHandleForWriting.close()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: out, as: UTF8.self),
                      stderr: String(decoding: err, as: UTF8.self))
    }
}

/// Makes `folder` a maildir: its tmp/, new/ and cur/ (and what is above them).
func makeMaildir(_ folder: URL) throws {
    for sub in ["tmp", "new", "cur"] {
        try FileManager.default.createDirectory(at: folder.appendingPathComponent(sub), withIntermediateDirectories: true)
    }
}

/// What the maildir `folder` holds in tmp/, new/ and cur/, as sub/name.
func maildirEntries(_ folder: URL) throws -> [String] {
    try ["tmp", "new", "cur"].flatMap { sub in
        try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent(sub).path).map { "\(sub)/\($0)" }
    }
}

/// A small, valid message.
func sampleMessage(id: String = "msg-\(UUID().uuidString)@example.org", subject: String = "Hello",
                   from: String = "Alice <alice@example.org>", body: String = "Hi Bob.\n") -> String {
    """
    From: \(from)
    To: Bob <bob@example.org>
    Subject: \(subject)
    Date: Mon, 24 Nov 2025 09:00:00 +0000
    Message-ID: <\(id)>

    \(body)
    """
}
