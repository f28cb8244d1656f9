import MaildirKit
import Rules
import SystemPackage

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
        return try deliver(input, options: options)
    }

    private func deliver(_ input: FileDescriptor, options requested: DeliveryOptions) throws(DeliveryError) -> DeliveryReport {
        var options = requested
        var timer = PhaseTimer(path: options.timingsFile)
        defer { timer.write() }
        try VirtualMailbox.select(&options)
        let settings = try DeliverySettings(options: options, rulesCache: rules)
        timer.mark("config")
        let maildir = try MailFolder.resolve(root: settings.mailRoot, name: options.folder,
                                             create: options.createFolder, worldReadable: options.worldReadable)
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
        // The whole mail root is the mailbox a quota covers.
        let mailbox = MaildirQuota(root: FilePath(settings.mailRoot))
        // Counted in maildirsize when admitted: taken back if the message
        // is not stored after all.
        var measured: QuotaPolicy.Measured?
        func takeBackQuota() {
            if let counted = measured { mailbox.add(bytes: -counted.size, messages: -1) }
            measured = nil
        }
        let file: Maildir.Delivered
        do {
            file = try Delivery.write(input, to: maildir, worldReadable: options.worldReadable, syncingDirectory: false,
                                      beforeSync: { temporary in
                if let rejection = Delivery.emailRejection(temporary) {
                    guard options.keep, rejection.kind == .notAMessage else { return rejection }
                    keptNotMail = rejection
                    return nil
                }
                // Before the fsyncs and the link: a refused message never
                // reaches new/, and nothing of it is left.
                switch settings.quota.check(mailbox: mailbox, enforcing: !options.quotaExempt,
                                            size: { (try? Stat(temporary))?.size }) {
                case .refused(let refusal): return refusal
                case .admitted(let figures): measured = figures
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
            takeBackQuota()
            throw error
        }
        // The same bytes were there already, and counted then.
        if file.adopted { takeBackQuota() }
        // Kept (--keep) only once its name is on disk; otherwise removed,
        // unless it is not ours to remove.
        func keepOrDiscard(_ failure: DeliveryError) throws(DeliveryError) -> DeliveryReport {
            // A rule's folder may have taken it before the failure.
            let current = failure.location ?? file.path
            guard options.keep, failure.kind != .usage, (try? FileSystem.fsyncDirectory(current.directory)) != nil else {
                if !file.adopted && !failure.fileIsNamedElsewhere {
                    Maildir.discard(current)
                    takeBackQuota()
                }
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
            takeBackQuota()
        } else if let measured {
            // Its line went in when it was admitted: a crash since leaves at
            // worst a figure too high, which the next recount corrects.
            if !options.quotaExempt,
               let threshold = settings.quotaWarnings.claim(measured.after, limit: measured.limit,
                                                            databasePath: settings.databasePath) {
                warn(measured, threshold: threshold, settings: settings, options: requested)
            }
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

    /// Delivers the quota warning through this same Deliverer, into the
    /// mailbox's top-level folder, tagged as configured; no rule, hook or
    /// quota refusal stands in its way. Its failure is logged, never the
    /// delivery's: the message that crossed the threshold is safe already.
    private func warn(_ measured: QuotaPolicy.Measured, threshold: Int64, settings: DeliverySettings,
                      options requested: DeliveryOptions) {
        let text = settings.quotaWarnings.message(usage: measured.after, limit: measured.limit, threshold: threshold,
                                                  mailbox: settings.mailRoot, recipient: requested.envelope.recipient)
        // A template's placeholders could swell it past a pipe's buffer.
        guard text.utf8.count <= 60_000 else {
            DeliveryLog.logger.error("quota warning for \(threshold)% not delivered: the message would exceed 60000 bytes")
            return
        }
        var options = requested
        options.folder = nil
        options.createFolder = false
        options.rules = .none
        options.tagOperations = settings.quotaWarnings.tags
        options.runHooks = false
        options.keep = false
        options.quotaExempt = true
        options.envelope.sender = "MAILER-DAEMON"
        do {
            // Through a pipe: the text is far below a pipe's buffer (the
            // template is capped at 32 KiB), so writing it all first cannot block.
            let (reading, writing) = try FileDescriptor.pipe()
            defer { try? reading.close() }
            _ = text.utf8.withContiguousStorageIfAvailable { try? writing.writeEverything(UnsafeRawBufferPointer($0)) }
            try? writing.close()
            let report = try deliver(reading, options: options)
            DeliveryLog.logger.notice("quota warning delivered: \(threshold)% reached, \(report.path)")
        } catch {
            DeliveryLog.logger.error("quota warning for \(threshold)% not delivered: \(error)")
        }
    }
}
