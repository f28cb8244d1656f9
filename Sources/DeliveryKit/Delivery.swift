import Logging
import MailParsing
import Notmuch
import Rules
import Synchronization
import SystemPackage
import MaildirKit

/// The delivery core, built once by a front door from its options (config,
/// rules, mail root or mail-root template) and used for as many messages as
/// it has: the command line builds one and delivers once; a server builds
/// one and delivers many, for one mailbox or many.
///
/// Each message is made durable in the maildir first, then indexed, tagged
/// by `new.tags`, the rules and the command line, moved to the folder a rule
/// chose, all in one atomic section committed before `deliver` returns.
/// When the database's write lock does not come within the lock timeout, or
/// the database cannot be opened, the message is queued instead; whoever
/// holds the lock next applies every queued message in one transaction.
public final class Deliverer: Sendable {
    private let options: DeliveryOptions
    /// Rules files parsed once, read again only when they change.
    private let rules = RulesCache()

    public init(_ options: DeliveryOptions) {
        self.options = options
    }

    /// Delivers the message read from `input`. `envelope`, when given,
    /// replaces the options' (a server's MAIL FROM and RCPT TO).
    public func deliver(_ input: FileDescriptor, envelope: Envelope? = nil) throws(DeliveryError) -> DeliveryReport {
        var options = options
        if let envelope { options.envelope = envelope }
        var timer = PhaseTimer(path: options.timingsFile)
        defer { timer.write() }
        try VirtualMailbox.select(&options)
        let settings = try DeliverySettings(options: options, rulesCache: rules)
        timer.mark("config")
        let maildir = try MailFolder.resolve(root: settings.mailRoot, name: options.folder,
                                             create: options.createFolder)
        let session = DeliverySession(settings: settings, options: options)
        // Planned once the input is read: a quiet delivery's database then
        // opens while the file is synced. The session syncs new/ (with the
        // queue record, if it queues).
        var plan: DeliverySession.Plan?
        // A non-mail file that --keep keeps, as notmuch insert does.
        var keptNotMail: DeliveryError?
        // The rules' headers, envelope and size conditions, evaluated before
        // the database is asked for: a slow rule never holds the write lock.
        var preevaluated: PreevaluatedLeaves?
        let file: Maildir.Delivered
        do {
            file = try Delivery.write(input, to: maildir, worldReadable: options.worldReadable, syncingDirectory: false,
                                      beforeSync: { temporary in
                if let rejection = Delivery.emailRejection(temporary) {
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
            // A rule's folder may have taken it before the failure.
            let current = failure.location ?? file.path
            guard options.keep, failure.kind != .usage, (try? FileSystem.fsyncDirectory(current.directory)) != nil else {
                if !file.adopted && !failure.fileIsNamedElsewhere { Maildir.discard(current) }
                throw failure
            }
            return DeliveryReport(path: current.string, messageID: nil, tags: [], outcome: .keptUnindexed,
                                  warning: "\(failure.message); kept '\(current)' for a later 'notmuch new'",
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
}

/// The front doors' entry points that are not a Deliverer's: one delivery
/// (the command line), `flush`, `explain`, and what they share.
public enum Delivery {
    /// One message, from a Deliverer made for it.
    public static func deliver(_ options: DeliveryOptions, input: FileDescriptor) throws(DeliveryError) -> DeliveryReport {
        try Deliverer(options).deliver(input)
    }

    /// Applies every queued delivery, in one transaction. For `flush` (and a
    /// post-new hook). Returns how many records were applied.
    public static func flush(_ options: DeliveryOptions) throws(DeliveryError) -> Int {
        var options = options
        try VirtualMailbox.select(&options)
        let settings = try DeliverySettings(options: options)
        let queue = PendingQueue(databasePath: settings.databasePath)
        return try QueueApplier(settings: settings, options: options, queue: queue).flushQueue()
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
        let file = try write(input, to: scratch, worldReadable: false, scratch: true).path
        defer { Maildir.discard(file) }
        let database: Database
        do {
            database = try options.openDatabase()
        } catch {
            throw DeliveryError(.temporary, "cannot open the notmuch database: \(error)")
        }
        var moves: [FilePath] = []
        var location = file
        do {
            return try database.atomicSection {
                let job = IndexJob(.explanation, options: options, settings: settings)
                return .abort(try job.run(in: database, location: &location, moves: &moves))
            }
        } catch {
            throw classify(error, file: file)
        }
    }

    static func write(_ input: FileDescriptor, to maildir: Maildir, worldReadable: Bool,
                      scratch: Bool = false, syncingDirectory: Bool = true,
                      beforeSync: (FilePath) -> DeliveryError? = { _ in nil }) throws(DeliveryError) -> Maildir.Delivered {
        let permissions: FilePermissions = worldReadable ? [.ownerReadWrite, .groupRead, .otherRead] : .ownerReadWrite
        do {
            return try maildir.deliver(from: input, permissions: permissions, scratch: scratch,
                                       syncingDirectory: syncingDirectory, beforeSync: beforeSync)
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

    static func classify(_ error: Error, file: FilePath) -> DeliveryError {
        if let error = error as? DeliveryError { return error }
        if let refused = error as? IndexJob.Refused, refused.error.status == .fileNotEmail {
            return DeliveryError(.notAMessage, "the input is not an email message (no From, Subject or To header)")
        }
        return DeliveryError(.temporary, "cannot index '\(file)': \(error)")
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
