import Foundation
import Testing

@Suite("Delivering one message")
struct DeliveryTests {
    @Test func deliversIndexesAndTags() throws {
        let fixture = try MailFixture()
        let message = sampleMessage(id: "one@example.org", subject: "Quarterly numbers")
        let result = try fixture.deliver(message, ["--tag", "work", "+project", "-inbox"])
        #expect(result.status == 0)
        #expect(result.stderr.isEmpty && result.stdout.isEmpty, "a delivery must be silent: \(result.stderr)")
        #expect(try fixture.count("id:one@example.org") == 1)
        #expect(try fixture.tags("id:one@example.org") == ["project", "unread", "work"])
        let files = fixture.files()
        #expect(files.count == 1 && files[0].hasPrefix("new/"))
        #expect(try fixture.contents(files[0]) == Data(message.utf8))
        try fixture.expectNothingNew()
    }

    @Test func oneLogLinePerDelivery() throws {
        let fixture = try MailFixture()
        let message = sampleMessage(id: "logged@example.org", subject: "Budget \"draft\"")
        let result = try fixture.deliver(message, ["-v", "--folder=Sent", "--create-folder", "+sent"])
        #expect(result.status == 0)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)")
        let line = String(lines.first ?? "")
        for part in ["delivered id=<logged@example.org>", "from=\"Alice <alice@example.org>\"",
                     "subject=\"Budget 'draft'\"", "folder=Sent ", "tags=inbox,sent,unread", "outcome=indexed", "ms="] {
            #expect(line.contains(part), "\(part) missing in: \(line)")
        }
        let failed = try fixture.deliver("", ["-v"])
        #expect(failed.stderr.contains("failed outcome=refused status=65"), "\(failed.stderr)")
    }

    /// The log line's `outcome=` says how each kind of delivery ended.
    @Test func theLogLineNamesEachOutcome() throws {
        func outcome(_ result: MailFixture.Result) -> String? {
            let line = result.stderr.split(separator: "\n").first { $0.contains("delivered id=") }
            return line?.split(separator: " ").first { $0.hasPrefix("outcome=") }.map { String($0.dropFirst(8)) }
        }
        let fixture = try MailFixture()
        #expect(outcome(try fixture.deliver(sampleMessage(id: "o1@example.org"), ["-v"])) == "indexed")
        #expect(outcome(try fixture.deliver(sampleMessage(id: "o1@example.org", subject: "Again"), ["-v"])) == "duplicate")
        #expect(outcome(try fixture.deliver("just some text\n", ["-v", "--keep"])) == "kept-unindexed")

        let holder = try LockHolder(fixture)
        let queued = try fixture.deliver(sampleMessage(id: "o2@example.org"), ["-v", "--lock-timeout", "0.2"])
        holder.release()
        #expect(outcome(queued) == "queued", "\(queued.stderr)")

        try fixture.useRules("discard -- header:X-Virus~/infected/")
        #expect(outcome(try fixture.deliver("X-Virus: infected\n" + sampleMessage(id: "o3@example.org"), ["-v"])) == "discarded")
        #expect(try fixture.count("id:o2@example.org") == 1, "the next delivery took the queued one along")
        #expect(try fixture.count("id:o3@example.org") == 0)
    }

    @Test func staleTemporaryFilesAreCleanedAfter36Hours() throws {
        let fixture = try MailFixture()
        let tmp = fixture.mailRoot.appendingPathComponent("tmp")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        let old = tmp.appendingPathComponent("1700000000.M1P9R1Q1.host")
        let young = tmp.appendingPathComponent("1700000001.M1P9R1Q2.host")
        let foreign = tmp.appendingPathComponent("1700000000.12345_1.otherhost")
        for file in [old, young, foreign] { try Data("x".utf8).write(to: file) }
        let longAgo = Date(timeIntervalSinceNow: -37 * 3600)
        try FileManager.default.setAttributes([.modificationDate: longAgo], ofItemAtPath: old.path)
        try FileManager.default.setAttributes([.modificationDate: longAgo], ofItemAtPath: foreign.path)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -35 * 3600)],
                                              ofItemAtPath: young.path)
        #expect(try fixture.deliver(sampleMessage()).status == 0)
        #expect(!FileManager.default.fileExists(atPath: old.path))
        #expect(FileManager.default.fileExists(atPath: young.path))
        #expect(FileManager.default.fileExists(atPath: foreign.path))
    }

    @Test func newTagsComeFirstThenTheCommandLine() throws {
        let fixture = try MailFixture(newTags: "new;unread;")
        #expect(try fixture.deliver(sampleMessage(id: "order@example.org"), ["-new", "+later"]).status == 0)
        #expect(try fixture.tags("id:order@example.org") == ["later", "unread"])
    }

    @Test func removeTagOptionRemoves() throws {
        let fixture = try MailFixture()
        #expect(try fixture.deliver(sampleMessage(id: "rm@example.org"), ["--remove-tag", "inbox"]).status == 0)
        #expect(try fixture.tags("id:rm@example.org") == ["unread"])
    }

    @Test func newTagsEntryStartingWithMinusIsAConfigError() throws {
        let fixture = try MailFixture()
        try fixture.writeConfig(newTags: "unread;-inbox;")
        let result = try fixture.deliver(sampleMessage())
        #expect(result.status == 75)
        #expect(result.stderr.contains("new.tags"))
        #expect(fixture.files().isEmpty)
    }

    @Test func envelopeLineIsRemovedAndTheRestKeptByteForByte() throws {
        let fixture = try MailFixture()
        let message = "Return-Path: <alice@example.org>\n" + sampleMessage(id: "env@example.org")
        let input = "From alice@example.org  Mon Nov 24 09:00:00 2025\n" + message
        #expect(try fixture.deliver(input).status == 0)
        let files = fixture.files()
        #expect(files.count == 1)
        #expect(try fixture.contents(files[0]) == Data(message.utf8))
        #expect(try fixture.count("id:env@example.org") == 1)
    }

    @Test(arguments: [[1, 1, 1, 1, 1, 1], [3, 2, 40], [4], [5], [30, 1]])
    func envelopeLineInSmallWrites(chunks: [Int]) throws {
        let fixture = try MailFixture()
        let message = sampleMessage(id: "slow@example.org")
        #expect(try fixture.deliver("From MAILER-DAEMON Mon Nov 24 09:00:00 2025\n" + message, chunks: chunks).status == 0)
        let files = fixture.files()
        #expect(files.count == 1)
        #expect(try fixture.contents(files[0]) == Data(message.utf8))
    }

    @Test func aHeaderThatStartsWithFromIsNotAnEnvelope() throws {
        let fixture = try MailFixture()
        let message = sampleMessage(id: "from-header@example.org")
        #expect(message.hasPrefix("From: "))
        #expect(try fixture.deliver(message, chunks: [2, 2, 2]).status == 0)
        #expect(try fixture.contents(fixture.files()[0]) == Data(message.utf8))
    }

    @Test func crlfMessage() throws {
        let fixture = try MailFixture()
        let message = sampleMessage(id: "crlf@example.org").replacingOccurrences(of: "\n", with: "\r\n")
        #expect(try fixture.deliver("From a@b Mon Nov 24 09:00:00 2025\r\n" + message).status == 0)
        #expect(try fixture.contents(fixture.files()[0]) == Data(message.utf8))
        #expect(try fixture.count("id:crlf@example.org") == 1)
    }
}

@Suite("Maildir flags")
struct MaildirFlagTests {
    @Test func flaggedAndReadMoveToCur() throws {
        let fixture = try MailFixture()
        #expect(try fixture.deliver(sampleMessage(id: "f@example.org"), ["+flagged"]).status == 0)
        #expect(try fixture.deliver(sampleMessage(id: "s@example.org"), ["-unread"]).status == 0)
        let files = try fixture.notmuch("search", "--output=files", "id:f@example.org")
        #expect(files.contains("/cur/") && files.hasSuffix(":2,F"))
        let read = try fixture.notmuch("search", "--output=files", "id:s@example.org")
        #expect(read.contains("/cur/") && read.hasSuffix(":2,S"))
        #expect(fixture.files().filter { $0.hasPrefix("cur/") }.count == 2)
        #expect(try fixture.tags("id:f@example.org") == ["flagged", "inbox", "unread"])
        try fixture.expectNothingNew()
        #expect(try fixture.tags("id:s@example.org") == ["inbox"])
    }

    /// An MTA retries a delivery that was killed after its file was linked;
    /// meanwhile the reader has read the first copy (new/ → cur/…:2,S).
    /// Without flag sync (with it, the second copy's flag rename would land
    /// on the first copy's name and hide a missed check).
    @Test func retryAfterTheFirstCopyWasReadStoresNothingTwice() throws {
        let fixture = try MailFixture(synchronizeFlags: false)
        let message = sampleMessage(id: "retry-read@example.org")
        #expect(try fixture.deliver(message).status == 0)
        let first = try #require(fixture.files().first)
        try FileManager.default.moveItem(at: fixture.mailRoot.appendingPathComponent(first),
                                         to: fixture.mailRoot.appendingPathComponent("cur/" + first.dropFirst(4) + ":2,S"))
        _ = try fixture.notmuch("new", "--quiet")
        #expect(try fixture.deliver(message).status == 0)
        #expect(fixture.files() == ["cur/" + first.dropFirst(4) + ":2,S"])
        #expect(try fixture.notmuch("search", "--output=files", "id:retry-read@example.org").split(separator: "\n").count == 1)
        try fixture.expectNothingNew()
    }

    @Test func withoutSyncTheFileStaysInNew() throws {
        let fixture = try MailFixture(synchronizeFlags: false)
        #expect(try fixture.deliver(sampleMessage(id: "nosync@example.org"), ["+flagged", "-unread"]).status == 0)
        let files = fixture.files()
        #expect(files.count == 1 && files[0].hasPrefix("new/") && !files[0].contains(":2,"))
        #expect(try fixture.tags("id:nosync@example.org") == ["flagged", "inbox"])
        try fixture.expectNothingNew()
    }
}

@Suite("Folders")
struct FolderTests {
    @Test func existingFolder() throws {
        let fixture = try MailFixture()
        try makeMaildir(fixture.mailRoot.appendingPathComponent("Sent"))
        #expect(try fixture.deliver(sampleMessage(id: "sent@example.org"), ["--folder=Sent", "--tag", "sent"]).status == 0)
        #expect(fixture.files().first?.hasPrefix("Sent/new/") == true)
        #expect(try fixture.count("folder:Sent") == 1)
        try fixture.expectNothingNew()
    }

    @Test func missingFolderIsRefusedWithoutCreateFolder() throws {
        let fixture = try MailFixture()
        let result = try fixture.deliver(sampleMessage(), ["--folder", "Archive"])
        #expect(result.status == 75)
        #expect(result.stderr.contains("--create-folder"))
        #expect(fixture.files().isEmpty)
    }

    @Test func createFolderMakesNestedPrivateMaildirs() throws {
        let fixture = try MailFixture()
        let result = try fixture.deliver(sampleMessage(id: "nested@example.org"),
                                         ["--folder=lists/dev", "--create-folder"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try fixture.count("folder:lists/dev") == 1)
        for path in ["lists", "lists/dev", "lists/dev/new", "lists/dev/cur", "lists/dev/tmp"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: fixture.mailRoot.appendingPathComponent(path).path)
            #expect((attributes[.posixPermissions] as? Int) == 0o700, "\(path)")
        }
        try fixture.expectNothingNew()
    }

    @Test(arguments: ["../outside", "/tmp", "a/../../b", "Sent/.."])
    func foldersOutsideTheRootAreRefused(folder: String) throws {
        let fixture = try MailFixture()
        let result = try fixture.deliver(sampleMessage(), ["--folder", folder, "--create-folder"])
        #expect(result.status == 64)
        #expect(result.stderr.contains(folder))
        #expect(fixture.files().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: fixture.directory.appendingPathComponent("outside").path))
    }

    @Test func symlinkOutOfTheRootIsRefused() throws {
        let fixture = try MailFixture()
        let outside = fixture.directory.appendingPathComponent("elsewhere")
        try makeMaildir(outside)
        try FileManager.default.createSymbolicLink(at: fixture.mailRoot.appendingPathComponent("escape"), withDestinationURL: outside)
        let result = try fixture.deliver(sampleMessage(), ["--folder", "escape"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("outside the mail root"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside.appendingPathComponent("new").path).isEmpty)
    }
}

@Suite("Duplicates, odd input and failures")
struct FailureTests {
    @Test func duplicateMessageIDKeepsTheFileAndLeavesTagsAlone() throws {
        let fixture = try MailFixture()
        let message = sampleMessage(id: "dup@example.org")
        #expect(try fixture.deliver(message, ["+first"]).status == 0)
        // The same Message-ID with other bytes (another route, another Received:).
        #expect(try fixture.deliver("Received: by another.example\n" + message, ["+second", "-inbox"]).status == 0)
        #expect(fixture.files().count == 2)
        #expect(try fixture.count("id:dup@example.org") == 1)
        #expect(try fixture.notmuch("count", "--output=files", "id:dup@example.org") == "2")
        #expect(try fixture.tags("id:dup@example.org") == ["first", "inbox", "unread"])
        try fixture.expectNothingNew()
    }

    @Test func theSameBytesAgainAreNotStoredTwice() throws {
        // An MTA retrying a delivery it saw fail sends the very same bytes.
        let fixture = try MailFixture()
        let message = sampleMessage(id: "again@example.org")
        #expect(try fixture.deliver(message, ["+first"]).status == 0)
        #expect(try fixture.deliver(message, ["+second"]).status == 0)
        #expect(fixture.files().count == 1)
        #expect(try fixture.tags("id:again@example.org") == ["first", "inbox", "unread"])
        try fixture.expectNothingNew()
    }

    /// The file a delivery of `message` stores: new/SHA1.HOST.
    private func contentName(_ message: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha1sum")
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        try input.fileHandleForWriting.write(contentsOf: Data(message.utf8))
        try input.fileHandleForWriting.close()
        let digest = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).prefix(40)
        process.waitUntilExit()
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        let escaped = String(cString: host).replacingOccurrences(of: "/", with: "\\057")
            .replacingOccurrences(of: ":", with: "\\072")
        return "\(digest).\(escaped)"
    }

    @Test(arguments: [false, true])
    func aRetryAfterADeliveryKilledMidwayAdoptsItsFile(indexedByNotmuchNew: Bool) throws {
        // A delivery killed after its file reached new/ but before it could
        // exit 0 leaves the file; the MTA's retry must not make a second copy,
        // and the message must still get its rules' and command line's tags.
        let fixture = try MailFixture()
        try fixture.useRules("+ruled -- from:alice@example.org\n")
        let message = sampleMessage(id: "orphan@example.org")
        let orphan = fixture.mailRoot.appendingPathComponent("new/" + (try contentName(message)))
        try FileManager.default.createDirectory(at: orphan.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(message.utf8).write(to: orphan)
        if indexedByNotmuchNew { _ = try fixture.notmuch("new") }
        let result = try fixture.deliver(message, ["+cli"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(fixture.files() == ["new/" + orphan.lastPathComponent])
        #expect(try fixture.tags("id:orphan@example.org") == ["cli", "inbox", "ruled", "unread"])
        try fixture.expectNothingNew()
    }

    @Test func messageWithoutMessageID() throws {
        let fixture = try MailFixture()
        let message = "From: Alice <alice@example.org>\nSubject: no id here\n\nbody\n"
        #expect(try fixture.deliver(message).status == 0)
        #expect(try fixture.count("subject:\"no id here\"") == 1)
        try fixture.expectNothingNew()
    }

    @Test func eightBitAndMalformedHeaders() throws {
        let fixture = try MailFixture()
        var bytes = Data("From: J\u{f6}rg <jorg@example.org>\nSubject: caf".utf8)
        bytes.append(contentsOf: [0xE9, 0xFF, 0xFE])  // Latin-1 and invalid UTF-8
        bytes.append(Data("\nTo: =?bogus?Q?broken\nMessage-ID: <8bit@example.org>\nno colon here\n\nbody\n".utf8))
        let result = try fixture.deliver(bytes: bytes)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try fixture.count("id:8bit@example.org") == 1)
        #expect(try fixture.contents(fixture.files()[0]) == bytes)
        try fixture.expectNothingNew()
    }

    @Test(arguments: ["", "From MAILER-DAEMON Mon Nov 24 09:00:00 2025\n"])
    func emptyInputIsADataError(input: String) throws {
        let fixture = try MailFixture()
        let result = try fixture.deliver(input)
        #expect(result.status == 65)
        #expect(result.stderr.contains("empty input"))
        #expect(fixture.files().isEmpty)
    }

    @Test func notAnEmailIsADataErrorAndLeavesNothing() throws {
        let fixture = try MailFixture()
        let result = try fixture.deliver("just some text\nwithout any header\n")
        #expect(result.status == 65)
        #expect(result.stderr.contains("not an email"))
        #expect(fixture.files().isEmpty)
        #expect(try fixture.count() == 0)
    }

    @Test func notAnEmailIsKeptWithKeep() throws {
        let fixture = try MailFixture()
        let result = try fixture.deliver("just some text\n", ["--keep"])
        #expect(result.status == 0)
        #expect(fixture.files().count == 1)
    }

    @Test func missingDatabaseTempfailsAndLeavesNothing() throws {
        // No database and nowhere to queue: nothing can be promised, so defer.
        let fixture = try MailFixture(createDatabase: false)
        let result = try fixture.deliver(sampleMessage())
        #expect(result.status == 75)
        #expect(result.stderr.contains("cannot open the notmuch database"), "\(result.stderr)")
        #expect(fixture.files().isEmpty)
    }

    @Test func keepLeavesTheFileWhenTheDatabaseCannotBeOpened() throws {
        let fixture = try MailFixture(createDatabase: false)
        let message = sampleMessage(id: "kept@example.org")
        let result = try fixture.deliver(message, ["--keep"])
        #expect(result.status == 0)
        #expect(result.stderr.contains("kept"))
        let files = fixture.files()
        #expect(files.count == 1)
        #expect(try fixture.contents(files[0]) == Data(message.utf8))
        // The kept file is found by the next `notmuch new`.
        _ = try fixture.notmuch("new")
        #expect(try fixture.count("id:kept@example.org") == 1)
    }

    @Test func missingConfigFileTempfails() throws {
        let fixture = try MailFixture()
        let result = try fixture.deliver(sampleMessage(), ["--config", fixture.directory.appendingPathComponent("nope").path])
        #expect(result.status == 75)
        #expect(result.stderr.contains("nope"))
        #expect(fixture.files().isEmpty)
    }

    @Test(arguments: [["+"], ["--frobnicate"], ["tag-without-sign"]])
    func badCommandLinesAreUsageErrors(arguments: [String]) throws {
        let fixture = try MailFixture()
        let result = try fixture.deliver(sampleMessage(), arguments)
        #expect(result.status == 64)
        #expect(fixture.files().isEmpty)
    }
}

@Suite("Modes and hooks")
struct ModeAndHookTests {
    private func mode(_ fixture: MailFixture) throws -> Int {
        let path = fixture.mailRoot.appendingPathComponent(fixture.files()[0]).path
        return try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int ?? -1
    }

    @Test func privateByDefault() throws {
        let fixture = try MailFixture()
        #expect(try fixture.deliver(sampleMessage()).status == 0)
        #expect(try mode(fixture) == 0o600)
    }

    @Test func worldReadable() throws {
        let fixture = try MailFixture()
        #expect(try fixture.deliver(sampleMessage(), ["--world-readable"]).status == 0)
        #expect(try mode(fixture) == 0o644 & ~Int(currentUmask()))
    }

    /// Installs a post-insert hook whose shell `body` is given the path of a
    /// marker file it may write (to show it ran, and what it saw); that path.
    private func installHook(_ fixture: MailFixture, body: (String) -> String) throws -> URL {
        let marker = fixture.directory.appendingPathComponent("hook-ran")
        let hooks = fixture.mailRoot.appendingPathComponent(".notmuch/hooks")
        try FileManager.default.createDirectory(at: hooks, withIntermediateDirectories: true)
        let hook = hooks.appendingPathComponent("post-insert")
        try "#!/bin/sh\n\(body(marker.path))\n".write(to: hook, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: hook.path)
        return marker
    }

    @Test func postInsertHookRunsAfterTheCommit() throws {
        let fixture = try MailFixture()
        // The hook sees the message in the database: it ran after the commit.
        let marker = try installHook(fixture) { "notmuch count id:hook@example.org > '\($0)'; echo noise; echo noise >&2" }
        let result = try fixture.deliver(sampleMessage(id: "hook@example.org"))
        #expect(result.status == 0)
        #expect(result.stdout.isEmpty && result.stderr.isEmpty)
        #expect(try String(contentsOf: marker, encoding: .utf8) == "1\n")
    }

    @Test func failingHookDoesNotFailTheDelivery() throws {
        let fixture = try MailFixture()
        let marker = try installHook(fixture) { "touch '\($0)'; exit 3" }
        let result = try fixture.deliver(sampleMessage(id: "hookfail@example.org"))
        #expect(result.status == 0)
        #expect(try fixture.count("id:hookfail@example.org") == 1)
        // It did run and fail: the status above is not from a hook never started.
        #expect(FileManager.default.fileExists(atPath: marker.path))
    }

    @Test func noHooksSkipsTheHook() throws {
        let fixture = try MailFixture()
        let marker = try installHook(fixture) { "touch '\($0)'" }
        #expect(try fixture.deliver(sampleMessage(), ["--no-hooks"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: marker.path))
        // The same hook runs without --no-hooks: its absence above was the option's doing.
        #expect(try fixture.deliver(sampleMessage()).status == 0)
        #expect(FileManager.default.fileExists(atPath: marker.path))
    }
}

private func currentUmask() -> mode_t {
    let mask = umask(0o022)
    umask(mask)
    return mask
}
