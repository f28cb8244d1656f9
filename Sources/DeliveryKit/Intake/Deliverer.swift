import MaildirKit
import MailParsing
import Notmuch
import Rules
import SystemPackage
import Threads

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
    /// A server's: deliveries are staged and committed in groups.
    private let groupCommits: GroupCommits?
    /// A server's: settings read at most once a second per mailbox.
    private let settingsCache: SettingsCache?

    /// `server`: made for many deliveries at once (`stage`, `finish`).
    public init(_ options: DeliveryOptions, server: Bool = false) {
        self.options = options
        groupCommits = server ? GroupCommits() : nil
        settingsCache = server ? SettingsCache() : nil
    }

    private func loadSettings(_ options: DeliveryOptions) throws(DeliveryError) -> DeliverySettings {
        if let settingsCache { return try settingsCache.settings(for: options, rulesCache: rules) }
        return try DeliverySettings(options: options, rulesCache: rules)
    }

    /// Delivers the message read from `input`. `envelope`, when given,
    /// replaces the options' (a server's MAIL FROM and RCPT TO).
    public func deliver(_ input: FileDescriptor, envelope: Envelope? = nil) throws(DeliveryError) -> DeliveryReport {
        var options = options
        if let envelope { options.envelope = envelope }
        return try deliver(input, options: options)
    }

    /// A message written into its maildir (synced, but its name in new/
    /// not yet), with what was settled on the way.
    fileprivate struct Written {
        var options: DeliveryOptions
        let settings: DeliverySettings
        let maildir: Maildir
        let file: Maildir.Delivered
        /// The rules' conditions that need no index, evaluated before the
        /// database is asked for: a slow rule never holds the write lock.
        let preevaluated: PreevaluatedLeaves?
        /// Counted in maildirsize when admitted.
        var measured: QuotaPolicy.Measured?
        /// A non-mail file that --keep keeps, as notmuch insert does.
        let keptNotMail: DeliveryError?
        /// Set by `plan`: the command line's way through the database.
        let plan: DeliverySession.Plan?
        /// From and Subject, read by the email check, for a log line
        /// whose report did not come from the index.
        var logHeaders: MessageHeaders?

        var mailbox: MaildirQuota { MaildirQuota(root: FilePath(settings.mailRoot)) }

        /// The message is not stored after all: its line in maildirsize goes.
        mutating func takeBackQuota() {
            if let counted = measured { mailbox.add(bytes: -counted.size, messages: -1) }
            measured = nil
        }
    }

    /// Selects the mailbox, reads the settings and writes the message into
    /// its maildir: the email check, the quota and the rules' conditions
    /// that need no index all happen before the fsyncs and the link, so a
    /// refused message never reaches new/ and nothing of it is left.
    /// `planning`: the command line plans its database work meanwhile.
    /// `wanted` false, asked before the file is synced and linked into
    /// new/, drops it there (a server that gave up on this delivery).
    private func write(_ input: FileDescriptor, options requested: DeliveryOptions, planning: Bool,
                       sameAs: FilePath? = nil, wanted: () -> Bool = { true },
                       timer: inout PhaseTimer) throws(DeliveryError) -> Written {
        var options = requested
        try VirtualMailbox.select(&options, ifAbsent: .create)
        let settings = try loadSettings(options)
        timer.mark("config")
        let maildir = try settings.maildir(options.folder, create: options.createFolder,
                                           worldReadable: options.worldReadable)
        // Planned once the input is read: a quiet delivery's database then
        // opens while the file is synced.
        var plan: DeliverySession.Plan?
        var keptNotMail: DeliveryError?
        var preevaluated: PreevaluatedLeaves?
        // The whole mail root is the mailbox a quota covers.
        let mailbox = MaildirQuota(root: FilePath(settings.mailRoot))
        var measured: QuotaPolicy.Measured?
        var logHeaders: MessageHeaders?
        let file: Maildir.Delivered
        do {
            file = try Delivery.write(input, to: maildir, worldReadable: options.worldReadable, syncingDirectory: false,
                                      sameAs: sameAs, beforeSync: { temporary in
                if let rejection = Delivery.emailRejection(temporary, headers: &logHeaders) {
                    guard options.keep, rejection.kind == .notAMessage else { return rejection }
                    keptNotMail = rejection
                    return nil
                }
                switch settings.quota.check(mailbox: mailbox, enforcing: !options.quotaExempt,
                                            lockWait: settings.lockTimeout, size: { (try? Stat(temporary))?.size }) {
                case .refused(let refusal): return refusal
                case .admitted(let figures): measured = figures
                }
                if !settings.rules.isEmpty {
                    preevaluated = settings.rules.preevaluate(DeliveryFacts(path: temporary.string, envelope: options.envelope,
                                                                            database: nil, messageID: nil))
                }
                if planning { plan = DeliverySession(settings: settings, options: options).plan() }
                if !wanted() { return DeliveryError(.temporary, "given up: the delivery did not finish in time") }
                return nil
            })
        } catch {
            if let plan { DeliverySession(settings: settings, options: options).cancel(plan) }
            if let counted = measured { mailbox.add(bytes: -counted.size, messages: -1) }
            throw error
        }
        var written = Written(options: options, settings: settings, maildir: maildir, file: file,
                              preevaluated: preevaluated, measured: measured, keptNotMail: keptNotMail, plan: plan,
                              logHeaders: logHeaders)
        // The same bytes were there already, and counted then.
        if file.adopted { written.takeBackQuota() }
        timer.mark("write")
        return written
    }

    /// A failed delivery's file: kept (--keep) only once its name is on
    /// disk; otherwise removed, unless it is not ours to remove.
    private func keepOrDiscard(_ failure: DeliveryError, _ written: inout Written) throws(DeliveryError) -> DeliveryReport {
        // A rule's folder may have taken it before the failure.
        let current = failure.location ?? written.file.path
        guard written.options.keep, failure.kind != .usage,
              (try? FileSystem.fsyncDirectory(current.directory)) != nil else {
            if !written.file.adopted && !failure.fileIsNamedElsewhere {
                Maildir.discard(current)
                written.takeBackQuota()
            }
            throw failure
        }
        return DeliveryReport(path: current.string, messageID: nil, tags: [], outcome: .keptUnindexed,
                              warning: "\(failure.message); kept '\(current)' for a later 'notmuch new'",
                              traces: [])
    }

    private func deliver(_ input: FileDescriptor, options requested: DeliveryOptions) throws(DeliveryError) -> DeliveryReport {
        var timer = PhaseTimer(path: requested.timingsFile)
        defer { timer.write() }
        var written = try write(input, options: requested, planning: true, timer: &timer)
        if let keptNotMail = written.keptNotMail { return try keepOrDiscard(keptNotMail, &written) }
        let session = DeliverySession(settings: written.settings, options: written.options)
        var report: DeliveryReport
        do {
            report = try session.deliver(written.file, plan: written.plan ?? session.plan(),
                                         preevaluated: written.preevaluated, timer: &timer)
            report.mailRoot = written.settings.mailRoot
        } catch {
            return try keepOrDiscard(error, &written)
        }
        settle(report, &written, requested: requested)
        // Not while a thread waits in libnotmuch for the lock: it could get
        // it and hold it, and a hook running notmuch would wait for ever.
        let wentThroughTheIndex = report.outcome != .queued && report.outcome != .keptUnindexed
        if wentThroughTheIndex, !report.abandonedLockWait, written.options.runHooks,
           let hooks = written.settings.hookDirectory {
            Hook.run("post-insert", in: hooks)
        }
        timer.mark("hook")
        return report
    }

    /// What follows a delivery that succeeded: a discarded message's quota
    /// line goes; a stored one may cross a warning threshold.
    private func settle(_ report: DeliveryReport, _ written: inout Written, requested: DeliveryOptions) {
        if report.outcome == .discarded {
            DeliveryLog.logger.notice("discarded \(report.messageID ?? "(no Message-ID)") by rule")
            written.takeBackQuota()
        } else if let measured = written.measured {
            // Its line went in when it was admitted: a crash since leaves at
            // worst a figure too high, which the next recount corrects.
            if !written.options.quotaExempt,
               let threshold = written.settings.quotaWarnings.claim(measured.after, limit: measured.limit,
                                                                    databasePath: written.settings.databasePath) {
                warn(measured, threshold: threshold, settings: written.settings, options: requested)
            }
        }
        written.maildir.removeStaleTemporaryFiles()
    }

    // MARK: - A server's deliveries

    /// A message durable in its maildir and queued for its database (its
    /// record not synced yet): `finish` waits for its commit, or syncs the
    /// record, before the server may promise anything.
    /// Sendable by hand: it goes from thread to thread, used by one at a
    /// time, and its parts that are not (a plan's background call) are
    /// never set for a server.
    public struct Staged: @unchecked Sendable {
        fileprivate let written: Written
        fileprivate let record: String
        fileprivate let committer: GroupCommitter
        fileprivate let requested: DeliveryOptions
        public var path: String { written.file.path.string }
        /// The mailbox's lock timeout: how long its commit is worth waiting for.
        public var lockTimeout: Double { written.settings.lockTimeout }
    }

    /// Writes and syncs the message for `envelope`'s recipient and queues
    /// it for a group commit (see `GroupCommitter`). Throws only when nothing
    /// is stored: the message must be refused or retried. Needs a Deliverer
    /// made with `groupCommits`. `sameAs`: the same message staged for
    /// another recipient, hard-linked rather than written again if it can be.
    /// `proceed` is asked once the message is written, before it is queued
    /// (from then on any process may commit it): false (the server gave up
    /// waiting and answered 451) removes the file again and throws, so a
    /// delivery that was stuck never stores a message its sender will retry.
    /// `wanted`, asked earlier (before the file reaches new/), lets a
    /// delivery given up already stop without making its file visible.
    public func stage(_ input: FileDescriptor, envelope: Envelope, sameAs: Staged? = nil,
                      wanted: () -> Bool = { true }, proceed: () -> Bool = { true }) throws(DeliveryError) -> Staged {
        guard let groupCommits else { preconditionFailure("stage needs a Deliverer made for a server") }
        var requested = options
        requested.envelope = envelope
        var timer = PhaseTimer(path: nil)
        var written = try write(input, options: requested, planning: false, sameAs: sameAs?.written.file.path,
                                wanted: wanted,
                                timer: &timer)
        guard proceed() else {
            if !written.file.adopted { Maildir.discard(written.file.path) }
            written.takeBackQuota()
            throw DeliveryError(.temporary, "given up: the delivery did not finish in time")
        }
        if let keptNotMail = written.keptNotMail { _ = try keepOrDiscard(keptNotMail, &written) }
        let session = DeliverySession(settings: written.settings, options: written.options)
        let record: String
        do {
            record = try session.stage(written.file)
        } catch {
            _ = try keepOrDiscard(error, &written)
            throw error
        }
        let committer = groupCommits.committer(for: session.applier)
        committer.submit(record, preevaluated: written.preevaluated, isMail: written.keptNotMail == nil,
                         applier: session.applier)
        return Staged(written: written, record: record, committer: committer, requested: requested)
    }

    /// Whether a message for `recipient` (of `size` bytes, 0 when not
    /// known) would be refused before its data is even sent: a recipient
    /// that can never have a mailbox, or a full one. Nil: send it. A
    /// mailbox not created yet has nothing to be full of.
    public func precheck(recipient: String, size: Int) -> DeliveryError? {
        var options = options
        options.envelope = Envelope(recipient: recipient)
        if let template = options.mailRootTemplate {
            let root: String
            do { root = try VirtualMailbox.path(template: template, recipient: recipient) } catch { return error }
            guard FileSystem.kind(of: FilePath(root)) == .directory, Database.exists(databasePath: root) else { return nil }
        }
        do {
            try VirtualMailbox.select(&options, ifAbsent: .refuse)
            let settings = try loadSettings(options)
            return settings.quota.precheck(mailbox: MaildirQuota(root: FilePath(settings.mailRoot)), size: Int64(size))
        } catch {
            // The delivery will say what is wrong, or defer; the data may come.
            return nil
        }
    }

    /// Whether each recipient has its own mailbox (a mail-root template).
    public var servesVirtualMailboxes: Bool { options.mailRootTemplate != nil }

    /// What a server counts deliveries per mailbox by: a virtual mailbox's
    /// directory, or "" for the one mailbox a personal server has.
    public func mailboxKey(recipient: String) -> String {
        guard let template = options.mailRootTemplate else { return "" }
        return (try? VirtualMailbox.path(template: template, recipient: recipient)) ?? recipient.lowercased()
    }

    /// Where a server spools a message while it arrives: the mail root's
    /// tmp/ (the maildirs' file system, ignored by their readers); for
    /// virtual mailboxes, the folder the mailboxes are made in.
    public func spoolDirectory() throws(DeliveryError) -> String {
        if let template = options.mailRootTemplate {
            // Any address shows the template's fixed part.
            return try VirtualMailbox.expand(template: template, recipient: "spool@spool").base
        }
        let settings = try loadSettings(options)
        let tmp = FilePath(settings.mailRoot).appending("tmp")
        return FileSystem.kind(of: tmp) == .directory ? tmp.string : settings.mailRoot
    }

    /// A server starting: the deliveries a killed server queued and never
    /// committed are applied now, not at the next message: the mailbox's,
    /// or every virtual mailbox's the template has made so far.
    public func applyLeftoverQueue() {
        guard let groupCommits else { return }
        for mailbox in mailboxes() {
            guard let settings = try? loadSettings(mailbox) else { continue }
            let session = DeliverySession(settings: settings, options: mailbox)
            guard !session.queue.names().isEmpty else { continue }
            groupCommits.committer(for: session.applier).kick(applier: session.applier)
        }
    }

    /// The options of each mailbox this Deliverer serves that exists now:
    /// its one mailbox, or every virtual mailbox the template has made.
    func mailboxes() -> [DeliveryOptions] {
        guard let template = options.mailRootTemplate else { return [options] }
        return VirtualMailbox.existing(template: template).map { root in
            var mailbox = options
            mailbox.config = .none
            mailbox.profile = nil
            mailbox.databasePath = root
            return mailbox
        }
    }

    func settings(for mailbox: DeliveryOptions) throws(DeliveryError) -> DeliverySettings {
        try loadSettings(mailbox)
    }

    /// Reads the configuration and the rules again from the next delivery
    /// on (a server's SIGHUP); without it they are read again within a
    /// second of a change.
    public func reload() {
        settingsCache?.clear()
    }

    /// Waits, up to `deadline` (Monotonic seconds), until no group commit
    /// is running: a server that stops lets its last commits finish.
    public func waitForCommits(until deadline: Double) {
        groupCommits?.waitUntilIdle(until: deadline)
    }

    /// Waits until `deadline` (Monotonic seconds) for the staged message's
    /// commit. The message is safe either way: past the deadline its record
    /// is made durable, it is committed later, and the report says
    /// `queued`. Throws only when that record cannot be made durable: the
    /// file stays, and the MTA's retry adopts it.
    public func finish(_ staged: Staged, until deadline: Double) throws(DeliveryError) -> DeliveryReport {
        var written = staged.written
        let path = written.file.path
        var report = staged.committer.wait(for: staged.record, until: deadline)
            ?? DeliveryReport.queuedReport(path, abandoned: false)
        if report.outcome == .queued {
            try DeliverySession(settings: written.settings, options: written.options).makeRecordDurable(staged.record)
        }
        // Applied by another process, or left queued: known by its file.
        if report.path.isEmpty || report.outcome == .queued {
            report = DeliveryReport(path: path.string, messageID: report.messageID, tags: report.tags,
                                    outcome: report.outcome, warning: report.warning, traces: [])
        }
        if report.from == nil, report.subject == nil, let headers = written.logHeaders {
            report.from = headers.values("From").first
            report.subject = headers.values("Subject").first
        }
        report.mailRoot = written.settings.mailRoot
        settle(report, &written, requested: staged.requested)
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
        options.sieve = .none
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

