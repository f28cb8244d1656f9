import Logging
import MailParsing
import Notmuch
import Rules
import SystemPackage

/// Delivers one message: durable in the maildir first, then indexed, tagged
/// by `new.tags`, the rules and the command line, moved to the folder a rule
/// chose, all in one atomic section committed before it returns. When the
/// database's write lock does not come within the lock timeout, or the
/// database cannot be opened, the message is queued instead; whoever holds
/// the lock next applies every queued message in one transaction.
public enum Delivery {
    public static func deliver(_ options: DeliveryOptions, input: FileDescriptor) throws(DeliveryError) -> DeliveryReport {
        var timer = PhaseTimer(path: options.timingsFile)
        defer { timer.write() }
        var options = options
        try VirtualMailbox.select(&options)
        let settings = try DeliverySettings(options: options)
        timer.mark("config")
        let maildir = try MailFolder.resolve(root: settings.mailRoot, name: options.folder,
                                             create: options.createFolder)
        let session = LockedSession(settings: settings, options: options)
        // Planned once the input is read: a quiet delivery's database then
        // opens while the file is synced. The session syncs new/ (with the
        // queue record, if it queues).
        var plan: LockedSession.Plan?
        // A non-mail file that --keep keeps, as notmuch insert does.
        var keptNotMail: DeliveryError?
        // The rules' headers, envelope and size conditions, evaluated before
        // the database is asked for: a slow rule never holds the write lock.
        var preevaluated: PreevaluatedLeaves?
        let file: DeliveredFile
        do {
            file = try write(input, to: maildir, worldReadable: options.worldReadable, syncingDirectory: false,
                             beforeSync: { temporary in
                if let rejection = emailRejection(temporary) {
                    guard options.keep, rejection.kind == .notAMessage else { return rejection }
                    keptNotMail = rejection
                    return nil
                }
                if !settings.rules.isEmpty {
                    preevaluated = settings.rules.preevaluate(DeliveryFacts(path: temporary.string, envelope: options.envelope,
                                                                            database: nil, messageID: nil))
                }
                plan = session.plan()
                return nil
            })
        } catch {
            if let plan { session.cancel(plan) }
            throw error
        }
        // Kept (--keep) only once its name is on disk; otherwise removed,
        // unless it is not ours to remove.
        func keepOrDiscard(_ failure: DeliveryError) throws(DeliveryError) -> DeliveryReport {
            let directory = file.current.directory
            guard options.keep, failure.kind != .usage, (try? FileSystem.fsyncDirectory(directory)) != nil else {
                if !file.adopted && !file.indexedElsewhere { Maildir.discard(file.current) }
                throw failure
            }
            return DeliveryReport(path: file.current.string, messageID: nil, tags: [], outcome: .keptUnindexed,
                                  warning: "\(failure.message); kept '\(file.current)' for a later 'notmuch new'",
                                  traces: [])
        }
        if let keptNotMail { return try keepOrDiscard(keptNotMail) }
        timer.mark("write")

        var report: DeliveryReport
        do {
            report = try session.deliver(file, plan: plan ?? session.plan(), preevaluated: preevaluated, timer: &timer)
            report.mailRoot = settings.mailRoot
        } catch {
            return try keepOrDiscard(error)
        }
        if report.outcome == .discarded {
            DeliveryLog.logger.notice("discarded \(report.messageID ?? "(no Message-ID)") by rule")
        }
        maildir.removeStaleTemporaryFiles()
        // Not while a thread waits in libnotmuch for the lock: it could get
        // it and hold it, and a hook running notmuch would wait for ever.
        let wentThroughTheIndex = report.outcome != .queued && report.outcome != .keptUnindexed
        if wentThroughTheIndex, !report.abandonedLockWait, options.runHooks, let hooks = settings.hookDirectory {
            Hook.run("post-insert", in: hooks)
        }
        timer.mark("hook")
        return report
    }

    /// Applies every queued delivery, in one transaction. For `flush` (and a
    /// post-new hook). Returns how many records were applied.
    public static func flush(_ options: DeliveryOptions) throws(DeliveryError) -> Int {
        var options = options
        try VirtualMailbox.select(&options)
        let settings = try DeliverySettings(options: options)
        let session = LockedSession(settings: settings, options: options)
        return try session.flushQueue()
    }

    /// The queue of the database these options name: for `flush --list`,
    /// `--retry` and `--drop`, which act on set-aside records.
    public static func queue(_ options: DeliveryOptions) throws(DeliveryError) -> PendingQueue {
        var options = options
        try VirtualMailbox.select(&options)
        return PendingQueue(databasePath: try DeliverySettings(options: options).databasePath)
    }

    /// Runs the whole delivery but stores nothing: the message goes through
    /// a scratch file in the mail root's tmp/ and an atomic section that is
    /// never committed. For `explain`.
    public static func explain(_ options: DeliveryOptions, input: FileDescriptor) throws(DeliveryError) -> DeliveryReport {
        var options = options
        try VirtualMailbox.select(&options)
        let settings = try DeliverySettings(options: options)
        let scratch = try MailFolder.resolve(root: settings.mailRoot, name: nil, create: false)
        let file = try write(input, to: scratch, worldReadable: false, scratch: true)
        defer { Maildir.discard(file.current) }
        let database: Database
        do {
            database = try options.openDatabase()
        } catch {
            throw DeliveryError(.temporary, "cannot open the notmuch database: \(error)")
        }
        var moves: [FilePath] = []
        do {
            return try database.atomicSection {
                let job = IndexJob(file: file, options: options, settings: settings, commit: false)
                return .abort(try job.run(in: database, moves: &moves))
            }
        } catch {
            throw classify(error, file: file)
        }
    }

    /// Where the delivered file is now: rules and flags may move it.
    final class DeliveredFile {
        let original: FilePath
        var current: FilePath
        /// The same bytes were there already (a retried delivery): the file
        /// is not ours to remove if this delivery fails.
        let adopted: Bool
        /// Another process indexed it from our queue record before this
        /// delivery failed: the database names it, so it stays too.
        var indexedElsewhere = false
        init(_ path: FilePath, adopted: Bool = false) { original = path; current = path; self.adopted = adopted }
    }

    static func write(_ input: FileDescriptor, to maildir: Maildir, worldReadable: Bool,
                      scratch: Bool = false, syncingDirectory: Bool = true,
                      beforeSync: (FilePath) -> DeliveryError? = { _ in nil }) throws(DeliveryError) -> DeliveredFile {
        let permissions: FilePermissions = worldReadable ? [.ownerReadWrite, .groupRead, .otherRead] : .ownerReadWrite
        do {
            let delivered = try maildir.deliver(from: input, permissions: permissions, scratch: scratch,
                                                syncingDirectory: syncingDirectory, beforeSync: beforeSync)
            return DeliveredFile(delivered.path, adopted: delivered.adopted)
        } catch {
            switch error {
            case .rejected(let error):
                throw error
            case .emptyInput:
                throw DeliveryError(.notAMessage, "empty input: no message on standard input")
            case .read(let errno):
                throw DeliveryError(.temporary, "cannot read the message from standard input: \(errno)")
            case .write(let errno, let path):
                throw DeliveryError(.temporary, "cannot write '\(path)': \(errno)")
            }
        }
    }

    /// Refuses a file libnotmuch would not index, before anything is
    /// reported: the answer must not depend on whether the database was
    /// free (a queued non-email would otherwise get 0, and the same message
    /// 65 a moment later).
    static func emailRejection(_ file: FilePath) -> DeliveryError? {
        switch EmailCheck.verdict(forFile: file.string) {
        case .email:
            return nil
        case .notEmail:
            return DeliveryError(.notAMessage, "the input is not an email message (no From, Subject or To header)")
        case .unreadable(let code):
            return DeliveryError(.temporary, "cannot read back '\(file)': \(Errno(rawValue: code))")
        }
    }

    static func classify(_ error: Error, file: DeliveredFile) -> DeliveryError {
        if let error = error as? DeliveryError { return error }
        if let refused = error as? IndexJob.Refused, refused.error.status == .fileNotEmail {
            return DeliveryError(.notAMessage, "the input is not an email message (no From, Subject or To header)")
        }
        return DeliveryError(.temporary, "cannot index '\(file.current)': \(error)")
    }

    /// Renames and removals inside the transaction touched these
    /// directories; once committed, their entries must reach the disk.
    static func makeDurable(_ directories: [FilePath]) throws(DeliveryError) {
        var seen = Set<FilePath>()
        for directory in directories where seen.insert(directory).inserted {
            do { try FileSystem.fsyncDirectory(directory) } catch {
                throw DeliveryError(.temporary, "cannot sync '\(directory)': \(error)")
            }
        }
    }
}
