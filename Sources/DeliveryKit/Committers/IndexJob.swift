import Notmuch
import Rules
import SystemPackage
import MaildirKit

/// The work on one message inside an atomic section: index the file, apply
/// `new.tags`, the rules and the command line's tags, move it to the folder
/// a rule chose, rename it for its maildir flags.
struct IndexJob {
    /// What the message is, which decides what the job does with it.
    enum Purpose {
        /// A message delivered now.
        case delivery
        /// A queued delivery: the message is marked with the record's name
        /// in the same transaction, so a record is applied exactly once even
        /// if the process dies between the commit and the record's removal.
        case queuedRecord(name: String)
        /// A message of an archive, with what the archive knew (its Status
        /// flags, applied after new.tags and before the rules). `inPlace`:
        /// its file was there before this run, so `notmuch new` may have
        /// indexed it; a file the import wrote itself saves that lookup.
        case archiveMessage(statusTags: [TagOperation], inPlace: Bool)
        /// `explain`: nothing is created, moved or marked.
        case explanation
    }

    let purpose: Purpose
    let request: MessageRequest
    let settings: DeliverySettings
    /// The mailbox's rules, or none for a message that runs none (a quota warning).
    let rules: RuleSet
    /// The rules' conditions that need no index, evaluated before the
    /// database was opened (`RuleSet.preevaluate` on `settings.rules`).
    var preevaluated: PreevaluatedLeaves?

    init(_ purpose: Purpose, request: MessageRequest, settings: DeliverySettings) {
        self.purpose = purpose
        self.request = request
        self.settings = settings
        rules = request.appliesRules ? settings.rules : .empty
    }

    /// Whether anything is written: the database, moves, renames.
    private var commit: Bool { if case .explanation = purpose { false } else { true } }

    private var recordName: String? { if case .queuedRecord(let name) = purpose { name } else { nil } }

    private var statusTags: [TagOperation] {
        if case .archiveMessage(let tags, _) = purpose { tags } else { [] }
    }

    /// Whether the report names the message's sender, subject and tags (for
    /// the log line); an import of thousands does without.
    private var describes: Bool { if case .archiveMessage = purpose { false } else { true } }

    /// Whether another process may have indexed the file before this job
    /// (`notmuch new` while we waited for the lock).
    private var mayBeIndexedAlready: Bool {
        if case .archiveMessage(_, let inPlace) = purpose { inPlace } else { true }
    }

    /// Marks a message whose delivery got its tags: a retried delivery of
    /// the same bytes then leaves it alone.
    static let deliveredProperty = "notmuch-deliver.delivered"

    /// The property that marks a message as done for a queue record. A
    /// linked entry's name can be longer than a Xapian term may be: its
    /// SHA-1 stands for it. Record files keep the name itself, as earlier
    /// versions marked them (a record they applied is not applied again).
    static func recordProperty(_ name: String) -> String {
        guard PendingRecord(fileName: name) != nil else { return "notmuch-deliver.record." + name }
        return "notmuch-deliver.record." + ContentChecksum.hex(of: Array(name.utf8))
    }

    /// Runs the job on the file at `location`, which follows the file when
    /// a rule's folder or a flag rename moves it (also when a later step
    /// fails, so that the caller knows what to clean up). The directories
    /// whose entries changed are added to `moves`, for the caller to sync
    /// before the commit.
    func run(in database: Database, location: inout FilePath, moves: inout [FilePath]) throws -> DeliveryReport {
        // Indexing a large message is where libnotmuch's memory goes.
        try CostlyMessageGate.shared.admitting(location) {
            try runAdmitted(in: database, location: &location, moves: &moves)
        }
    }

    private func runAdmitted(in database: Database, location: inout FilePath, moves: inout [FilePath]) throws -> DeliveryReport {
        let original = location
        let path = original.string
        var message: Message
        var applyNewTags = true
        if mayBeIndexedAlready, let indexedBefore = try database.findMessage(filename: path) {
            // Someone indexed this very file first: `notmuch new`, while we
            // waited for the lock, or after a delivery died before finishing.
            // It gave new.tags; the rules and the command line are owed, once.
            if let recordName, try indexedBefore.property(Self.recordProperty(recordName)) != nil {
                return report(indexedBefore, at: location, duplicate: false, traces: [])
            }
            if try indexedBefore.property(Self.deliveredProperty) != nil {
                try markDone(indexedBefore)
                return report(indexedBefore, at: location, duplicate: true, traces: [])
            }
            message = indexedBefore
            applyNewTags = false
        } else {
            let indexed: Database.Indexed
            do throws(NotmuchError) {
                indexed = try database.indexFile(path, decrypt: request.filing.decrypt)
            } catch {
                // Not .fileError: a file libnotmuch could not open now (EMFILE,
                // EIO) may open next time; the caller retries it.
                if error.status == .fileNotEmail { throw Refused(error: error) }
                throw error
            }
            message = indexed.message
            if indexed.isDuplicate, commit, recordName != nil, let kept = sameBytesElsewhere(message, as: original) {
                // A retry of a delivery whose first copy a committed
                // transaction indexed and a rule filed (so the retry's file
                // did not meet it by name in new/): the MTA had no reply.
                // The same name is the same bytes (names are their
                // checksum): the message has them already; this copy goes.
                try database.removeFile(path)
                Maildir.discard(original)
                location = FilePath(kept)
                return report(message, at: location, duplicate: false, traces: [])
            }
            if indexed.isDuplicate {
                // A known Message-ID: this file is one more copy; its tags
                // stay as they are, and what they owe is not ours to settle.
                try markDone(message, delivered: false)
                if commit && settings.synchronizeFlags { try syncFlags(message, &location, &moves) }
                return report(message, at: location, duplicate: true, traces: [])
            }
        }
        // Frozen: libnotmuch rewrites the message's document once for the
        // lot instead of once per tag. Not around the rules: their `tag:`
        // queries must see what earlier rules did. Without rules, the
        // command line's tags and the marker join this one rewrite.
        let hasRules = !rules.isEmpty
        try message.withTagsFrozen {
            if applyNewTags {
                for operation in settings.newTags { try apply(operation, to: message) }
            }
            for operation in statusTags { try apply(operation, to: message) }
            if !hasRules { try applyCommandLineAndMark(message) }
        }

        var folder: String?
        // A Sieve fileinto without :create: the folder is used only if it exists.
        var folderMustExist = false
        // More files of the message, in these folders ("" the top level).
        var copies: [(folder: String, mustExist: Bool)] = []
        var traces: [RuleTrace] = []
        if hasRules {
            var discard = false
            let facts = DeliveryFacts(path: path, envelope: request.envelope, database: database, messageID: message.id)
            traces = try rules.evaluate(facts, preevaluated: preevaluated) { effect in
                switch effect {
                case .addTag(let tag): try apply(.add(tag), to: message)
                case .removeTag(let tag): try apply(.remove(tag), to: message)
                case .folder(let name): folder = name; folderMustExist = false
                case .existingFolder(let name): folder = name; folderMustExist = true
                case .copy(let name, let mustExist): copies.append((name, mustExist))
                case .discard: discard = true
                }
            }
            if discard {
                if commit {
                    try database.removeFile(path)
                    try FileSystem.unlink(original)
                    moves.append(original.directory)
                }
                return DeliveryReport(path: path, messageID: message.id, tags: [], outcome: .discarded,
                                      warning: nil, traces: traces)
            }
            try message.withTagsFrozen { try applyCommandLineAndMark(message) }
        }
        // `explain` only reports the folder; it creates and moves nothing.
        if commit, let folder, let maildir = movingTarget(folder, for: location, create: !folderMustExist) {
            let source = location
            let target: FilePath
            do {
                // Through the new/ that resolving checked: a symlink put in
                // its place since cannot lead the file out of the mail root.
                target = try maildir.moveIntoNew(source)
            } catch {
                // The message's fault (a name too long there, say), not the
                // database's: it stays where it was delivered.
                DeliveryLog.logger.error("rule folder '\(folder)' not used for \(source.string): \(error)")
                if commit && settings.synchronizeFlags { try syncFlags(message, &location, &moves) }
                return report(message, at: location, duplicate: false, traces: traces)
            }
            location = target
            moves += [source.directory, target.directory]
            // The new name first: removing the only name would remove the message.
            _ = try database.indexFile(target.string, decrypt: request.filing.decrypt)
            try database.removeFile(source.string)
            // libnotmuch caches a message's filenames; ask again for the current ones.
            guard let moved = try database.findMessage(id: message.id) else { throw NotmuchError(.fileError) }
            message = moved
        }
        if commit, !copies.isEmpty {
            try addCopies(copies, of: location, in: database, moves: &moves)
            guard let copied = try database.findMessage(id: message.id) else { throw NotmuchError(.fileError) }
            message = copied
        }
        if commit && settings.synchronizeFlags { try syncFlags(message, &location, &moves) }
        return report(message, at: location, duplicate: false, traces: traces)
    }

    /// Hard-links the stored file into each folder's new/ and indexes the
    /// link as another file of the message (one message, one set of tags,
    /// as notmuch keeps them). A folder that cannot take it is logged and
    /// skipped: the message is stored already.
    private func addCopies(_ copies: [(folder: String, mustExist: Bool)], of file: FilePath, in database: Database,
                           moves: inout [FilePath]) throws {
        for copy in copies {
            let maildir: Maildir
            do {
                maildir = try settings.maildir(copy.folder.isEmpty ? nil : copy.folder, create: !copy.mustExist)
            } catch {
                DeliveryLog.logger.notice("copy into '\(copy.folder)' not made (\(error.message))")
                continue
            }
            let target: FilePath
            do { target = try maildir.linkIntoNew(file) } catch {
                DeliveryLog.logger.error("copy of \(file.string) into '\(copy.folder)' not made: \(error)")
                continue
            }
            moves.append(target.directory)
            _ = try database.indexFile(target.string, decrypt: request.filing.decrypt)
        }
    }

    /// Another file of `message`, still there, named as `file` is (before
    /// any `:2,` flags): a copy of the same bytes.
    private func sameBytesElsewhere(_ message: Message, as file: FilePath) -> String? {
        func stem(_ path: String) -> Substring? {
            FilePath(path).lastComponent.map { Substring($0.string).split(separator: ":", maxSplits: 1).first ?? "" }
        }
        // Only a delivery's checksum name (40 hex digits, then the host).
        guard let name = stem(file.string), name.count > 41,
              name.prefix(40).allSatisfy(\.isHexDigit), name.dropFirst(40).first == "." else { return nil }
        return message.filenames.first { $0 != file.string && stem($0) == name && FileSystem.kind(of: FilePath($0)) != .missing }
    }

    /// The command line's tag operations, last, then the marker that the
    /// delivery is done (properties stay with the document through a move).
    private func applyCommandLineAndMark(_ message: Message) throws {
        for operation in request.filing.tagOperations { try apply(operation, to: message) }
        try markDone(message)
    }

    private func markDone(_ message: Message, delivered: Bool = true) throws {
        guard commit else { return }
        if delivered { try message.addProperty(Self.deliveredProperty, value: "1") }
        if let recordName { try message.addProperty(Self.recordProperty(recordName), value: "1") }
    }

    /// A tag libnotmuch refuses (too long, say, when a rule built it from
    /// the message) is this message's problem only: it is logged and left
    /// out, and the message gets every tag that is valid.
    private func apply(_ operation: TagOperation, to message: Message) throws {
        do throws(NotmuchError) {
            switch operation {
            case .add(let tag): try message.addTag(tag)
            case .remove(let tag): try message.removeTag(tag)
            }
        } catch {
            guard Self.refusesTag(error.status) else { throw error }
            DeliveryLog.logger.error("message \(message.id): tag operation '\(operation)' not applied: \(error)")
        }
    }

    private static func refusesTag(_ status: Status) -> Bool {
        status == .tagTooLong || status == .illegalArgument || status == .nullPointer
    }

    /// libnotmuch would not index the file (it is not mail), and changed
    /// nothing: the failure is this message's alone.
    struct Refused: Error, CustomStringConvertible {
        let error: NotmuchError
        var description: String { "\(error)" }
    }

    /// The rule's folder (created if missing), or nil if the file is there
    /// already, or if the folder cannot be used (say, a symlink out of the
    /// mail root): the mail then stays where it is, and the reason is
    /// logged; a rule's folder must not bounce mail.
    private func movingTarget(_ folder: String, for file: FilePath, create: Bool) -> Maildir? {
        let maildir: Maildir
        do {
            maildir = try settings.maildir(folder, create: create)
        } catch where !create {
            // As Pigeonhole without :create: the implicit keep.
            DeliveryLog.logger.notice("Sieve fileinto '\(folder)' without :create not used (\(error.message)); the message stays in the default folder")
            return nil
        } catch {
            DeliveryLog.logger.error("rule folder '\(folder)' not used: \(error.message)")
            return nil
        }
        guard let name = file.lastComponent else { return nil }
        return maildir.new.appending(name) == file ? nil : maildir
    }

    private func syncFlags(_ message: Message, _ location: inout FilePath, _ moves: inout [FilePath]) throws {
        try message.syncTagsToMaildirFlags()
        let renamed = Self.currentPath(of: location, among: message.filenames)
        if renamed != location {
            moves += [location.directory, renamed.directory]
            location = renamed
        }
    }

    private func report(_ message: Message, at location: FilePath, duplicate: Bool,
                        traces: [RuleTrace]) -> DeliveryReport {
        var report = DeliveryReport(path: location.string, messageID: describes ? message.id : nil,
                                    tags: describes ? message.tags : [], outcome: duplicate ? .duplicate : .indexed,
                                    warning: nil, traces: traces)
        if describes {
            report.from = message.header("from")
            report.subject = message.header("subject")
        }
        return report
    }

    /// The file's name after a flag rename keeps its unique part (before ':2,').
    static func currentPath(of original: FilePath, among filenames: [String]) -> FilePath {
        guard let base = original.lastComponent?.string else { return original }
        let unique = base.split(separator: ":", maxSplits: 1).first.map(String.init) ?? base
        for name in filenames {
            let path = FilePath(name)
            guard let last = path.lastComponent?.string else { continue }
            if last == unique || last.hasPrefix(unique + ":") { return path }
        }
        return original
    }
}
