import MailParsing
import Notmuch
import Rules
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// One process's time with the database: a bounded wait for the write
/// lock, then its own message and every queued one in one transaction.
struct LockedSession {
    let settings: DeliverySettings
    let options: DeliveryOptions
    let queue: PendingQueue

    init(settings: DeliverySettings, options: DeliveryOptions) {
        self.settings = settings
        self.options = options
        queue = PendingQueue(databasePath: settings.databasePath)
    }

    /// What a delivery settles once its message is written, before the
    /// slow part of making it durable (two fsyncs): whether it goes straight
    /// to the database, and if so, the database's opening, started at once
    /// so that it overlaps those fsyncs. Not earlier: the write lock must not
    /// be held while the message still streams in.
    struct Plan {
        let deadline: Double
        /// The quiet case: the lock is free, nobody is queued, and this
        /// delivery holds the flusher turn (or there is no database folder
        /// to queue in, and the open will say what is wrong).
        let direct: Bool
        let flusherTurn: FileDescriptor?
        let opening: BackgroundCall<DatabaseOpening>?
    }

    func plan() -> Plan {
        let deadline = Clock.now + settings.lockTimeout
        // Otherwise (the lock is held, others are queued, or another is
        // about to open) the delivery queues first, so that whoever opens
        // next takes this message along in its transaction.
        guard !Database.isWriteLockHeld(databasePath: settings.databasePath), queue.names().isEmpty else {
            return Plan(deadline: deadline, direct: false, flusherTurn: nil, opening: nil)
        }
        let flusherTurn = queue.tryBecomeFlusher()
        let direct = flusherTurn != nil || FileSystem.kind(of: queue.directory.directory) == .missing
        return Plan(deadline: deadline, direct: direct, flusherTurn: flusherTurn,
                    opening: direct ? startOpening() : nil)
    }

    /// The message could not be made durable after `plan`: let go of the
    /// database and of the flusher turn, and apply what others handed over
    /// meanwhile.
    func cancel(_ plan: Plan) {
        var lockWaitLeft = false
        if let opening = plan.opening {
            // Not the whole lock timeout: the delivery has failed already, and
            // an open that does not come at once is left to end with the process.
            switch opening.wait(upTo: min(max(plan.deadline - Clock.now, 0.01), 1)) {
            case .opened(let database)?: try? database.close()
            case .failed?: break
            case nil: lockWaitLeft = true
            }
        }
        guard let turn = plan.flusherTurn else { return }
        try? turn.close()
        if !lockWaitLeft { applyHandedOver() }
    }

    /// Indexes a durable message, or queues it when the lock does not come
    /// in time or the database cannot be opened. Throws only when the
    /// message can be neither indexed nor queued.
    func deliver(_ file: Delivery.DeliveredFile, plan: Plan, preevaluated: PreevaluatedLeaves? = nil,
                 timer: inout PhaseTimer) throws(DeliveryError) -> DeliveryReport {
        let deadline = plan.deadline
        var recordName: String?
        var flusherTurn = plan.flusherTurn
        let direct = plan.direct
        if !direct { recordName = try enqueue(file) }
        do {
            try syncDelivery(file, record: recordName)
        } catch {
            cancel(plan)
            throw error
        }
        if recordName != nil, flusherTurn == nil {
            // The record is durable. If another process holds the flusher
            // turn, the record is in its hands: a holder looks at the queue
            // again after letting go (`applyHandedOver`), so this process
            // can leave at once instead of waiting for a commit.
            guard let turn = queue.tryBecomeFlusher() else { return handedOver(file) }
            flusherTurn = turn
        }

        // With the turn held, records may be handed to us whatever happens
        // next: every way out lets go of the turn and looks again, unless
        // the database cannot be had at all.
        let outcome: Result<DeliveryReport, DeliveryError>
        do {
            outcome = .success(try indexHoldingTurn(file, recordName: recordName, deadline: deadline,
                                                    opening: plan.opening, preevaluated: preevaluated, timer: &timer))
        } catch {
            outcome = .failure(error)
        }
        try? flusherTurn?.close()
        switch outcome {
        case .success(var report):
            if report.outcome != .queued, applyHandedOver() { report.abandonedLockWait = true }
            return report
        case .failure(let error):
            // Our own message failed; the records handed to us still get
            // their try, if the database is free to be had.
            if !Database.isWriteLockHeld(databasePath: settings.databasePath) { applyHandedOver() }
            throw error
        }
    }

    /// Opens the database (within the deadline) and indexes the message
    /// with every queued record in one transaction; or queues the message
    /// when the database cannot be had. The database is closed on return.
    private func indexHoldingTurn(_ file: Delivery.DeliveredFile, recordName: String?, deadline: Double,
                                  opening: BackgroundCall<DatabaseOpening>?, preevaluated: PreevaluatedLeaves?,
                                  timer: inout PhaseTimer) throws(DeliveryError) -> DeliveryReport {
        // A delivery that queued first applies the whole queue: its rules'
        // slow part is done before asking for the lock. (A quiet delivery
        // found the queue empty, and its open is under way already.)
        var prepared = PreparedQueue()
        if opening == nil {
            var known: [String: PreevaluatedLeaves] = [:]
            if let recordName, let preevaluated { known[recordName] = preevaluated }
            prepared = prepareQueue(known: known)
        }
        let opening = opening ?? startOpening()
        guard let opened = opening.wait(upTo: max(deadline - Clock.now, 0.01)) else {
            if recordName == nil { try enqueueDurably(file) }
            return queued(file, reason: nil, abandoned: true)
        }
        let database: Database
        switch opened {
        case .opened(let value): database = value
        case .failed(let openError):
            if recordName == nil {
                do { try enqueueDurably(file) } catch {
                    throw DeliveryError(.temporary, "cannot open the notmuch database (\(openError)) "
                                        + "nor queue the message (\(error.message))")
                }
            }
            return queued(file, reason: "cannot open the notmuch database: \(openError); the message is delivered "
                          + "and queued: fix the database, then run 'notmuch-deliver flush'", abandoned: false)
        }
        timer.mark("open")

        var report: DeliveryReport?
        do {
            let applied = try applyQueue(in: database, prepared: prepared, timer: &timer) { moves in
                if recordName == nil {
                    var job = IndexJob(file: file, options: options, settings: settings, commit: true)
                    job.preevaluated = preevaluated
                    report = try job.run(in: database, moves: &moves)
                }
            }
            // Our own record, if another applied it already, is simply not
            // among them.
            if let recordName { report = applied.reports[recordName] }
        } catch {
            throw Delivery.classify(error, file: file)
        }
        return report ?? appliedElsewhere(file)
    }

    /// Opens the database for writing, waiting at most `seconds` for the
    /// lock. Nil when the time ran out: a thread is then left waiting in
    /// libnotmuch, and the process must not touch the database again.
    private func openForWriting(within seconds: Double) -> DatabaseOpening? {
        startOpening().wait(upTo: seconds)
    }

    private func startOpening() -> BackgroundCall<DatabaseOpening> {
        let options = self.options
        return BackgroundCall { () -> DatabaseOpening in
            do throws(NotmuchError) { return .opened(try options.openDatabase()) } catch { return .failed(error) }
        }
    }

    /// In one atomic section, `first` (a delivery's own message) and every
    /// queued record; then the renamed directories are synced, the commit
    /// made, and only then the applied records removed (those dropped as
    /// unusable among them). Returns their names, and the reports of those
    /// indexed.
    private func applyQueue(in database: Database, prepared: PreparedQueue, timer: inout PhaseTimer,
                            first: (inout [FilePath]) throws -> Void = { _ in })
        throws -> (applied: [String], reports: [String: DeliveryReport]) {
        var moves: [FilePath] = []
        var drained: (applied: [String], reports: [String: DeliveryReport]) = ([], [:])
        try database.atomically {
            try first(&moves)
            drained = try drain(database, prepared: prepared, moves: &moves)
        }
        timer.mark("index")
        // Renamed files' directories reach the disk before the commit that
        // names them.
        try Delivery.makeDurable(moves)
        try database.close()
        queue.remove(drained.applied)
        timer.mark("commit")
        return drained
    }

    /// Queues a message late (the open failed or timed out) and makes the
    /// record durable before the delivery reports success.
    private func enqueueDurably(_ file: Delivery.DeliveredFile) throws(DeliveryError) {
        let name = try enqueue(file)
        do { try queue.makeDurable(name) } catch {
            queue.remove([name])
            throw DeliveryError(.temporary, "cannot queue the message in '\(queue.directory)': \(error)")
        }
    }

    /// Makes the message's name in new/ durable, then its queue entry (for
    /// a linked entry, only the queue directory's fsync; see
    /// `PendingQueue.enqueue`). Done together, after both are written, so
    /// that on ext4 the first fsync's journal commit carries both. Until
    /// this returns the delivery has not succeeded, so a crash before is
    /// the MTA's to retry.
    private func syncDelivery(_ file: Delivery.DeliveredFile, record: String?) throws(DeliveryError) {
        let directory = file.current.directory
        do {
            try FileSystem.fsyncDirectory(directory)
            if let record { try queue.makeDurable(record) }
        } catch {
            if let record {
                // Already applied by a holder of the turn: the database
                // names the file, so it stays (a retry adopts it).
                if queue.contains(record) { queue.remove([record]) } else { file.indexedElsewhere = true }
            }
            throw DeliveryError(.temporary, "cannot sync the delivered message ('\(directory)'): \(error)")
        }
    }

    /// How long a delivery goes on applying records others handed over,
    /// before it leaves them to the next delivery: a steady stream of mail
    /// must not keep one process (and its MTA slot) for ever.
    static let handOverLimit = 60.0

    /// Deliveries that found the flusher turn taken left their records to
    /// its holder. Having let go of the turn, look again: while records
    /// wait and the turn can be had, apply them. A record queued as the
    /// turn was let go is seen here, or its own delivery got the turn.
    /// True when a lock wait timed out and left a thread in libnotmuch.
    @discardableResult
    private func applyHandedOver() -> Bool {
        let started = Clock.now
        while !queue.names().isEmpty, let turn = queue.tryBecomeFlusher() {
            defer { try? turn.close() }
            guard Clock.now - started < Self.handOverLimit else {
                DeliveryLog.logger.warning("leaving queued deliveries to the next delivery after \(Int(Self.handOverLimit)) s of applying them")
                return false
            }
            switch flushOnce(timeout: settings.lockTimeout) {
            case .applied:
                continue
            case .lockTimedOut:
                return true
            case .failed(let error):
                DeliveryLog.logger.error("queued deliveries not applied (\(error.message)); they wait for the next delivery or 'notmuch-deliver flush'")
                return false
            }
        }
        return false
    }

    /// For `flush`: applies the queue in one transaction.
    func flushQueue() throws(DeliveryError) -> Int {
        if let reason = queue.unusableReason() { throw DeliveryError(.temporary, reason) }
        switch flushOnce(timeout: settings.lockTimeout) {
        case .applied(let count): return count
        case .lockTimedOut:
            throw DeliveryError(.temporary, "the database is locked by another writer; nothing flushed, try again later")
        case .failed(let error): throw error
        }
    }

    /// What the opening thread hands over. Not `Result<Database,
    /// NotmuchError>`: building that generic type at run time has the Swift
    /// runtime look up `NotmuchError: Error` by scanning every conformance
    /// record in the binary, about 0.1 ms of each delivery's CPU.
    enum DatabaseOpening {
        case opened(Database)
        case failed(NotmuchError)
    }

    private enum FlushOutcome {
        case applied(Int)
        /// A thread is left waiting in libnotmuch: the process must end with _exit.
        case lockTimedOut
        case failed(DeliveryError)
    }

    private func flushOnce(timeout: Double) -> FlushOutcome {
        if queue.names().isEmpty { return .applied(0) }
        let prepared = prepareQueue()
        guard let opened = openForWriting(within: timeout) else { return .lockTimedOut }
        let database: Database
        switch opened {
        case .opened(let value): database = value
        case .failed(let error): return .failed(DeliveryError(.temporary, "cannot open the notmuch database: \(error)"))
        }
        var unused = PhaseTimer(path: nil)
        do {
            return .applied(try applyQueue(in: database, prepared: prepared, timer: &unused).applied.count)
        } catch {
            return .failed(DeliveryError(.temporary, "flush failed, the queue is kept: \(error)"))
        }
    }

    /// Applies every queued record inside the caller's atomic section.
    /// A record that fails for a reason of its own (its file is gone, is
    /// not mail, libnotmuch refuses it) is set aside with that reason, so
    /// that the others are applied; its file stays where it is. Only a
    /// failure of the database or the disk aborts the whole transaction and
    /// keeps the queue for the next try.
    private func drain(_ database: Database, prepared: PreparedQueue,
                       moves: inout [FilePath]) throws -> (applied: [String], reports: [String: DeliveryReport]) {
        var applied: [String] = []
        var reports: [String: DeliveryReport] = [:]
        var rulesByPath = prepared.rulesByPath
        for name in queue.names() {
            let record: PendingRecord
            do { record = try queue.read(name) } catch {
                // Only a record file cut short by a crash before its fsync,
                // whose delivery therefore never reported success.
                DeliveryLog.logger.error("queue record \(name) is unreadable (\(error)); dropped")
                applied.append(name)
                continue
            }
            let recorded = FilePath(settings.mailRoot).appending(record.path)
            guard let path = locate(record) else {
                try setAside(name, "its message file \(recorded.string) is gone (moved or deleted before the record was applied)")
                reports[name] = DeliveryReport.queuedReport(recorded, abandoned: false)
                continue
            }
            switch EmailCheck.verdict(forFile: path.string) {
            case .email:
                break
            case .notEmail:
                try setAside(name, "\(path.string) is not an email message (no From, Subject or To header); the file is kept")
                reports[name] = DeliveryReport.queuedReport(path, abandoned: false)
                continue
            case .unreadable(let code):
                try setAside(name, "cannot read \(path.string): \(Errno(rawValue: code))")
                reports[name] = DeliveryReport.queuedReport(path, abandoned: false)
                continue
            }
            var recordOptions = options
            recordOptions.tagOperations = record.tagOperations.compactMap { try? TagOperation(parsing: $0) }
            recordOptions.envelope = record.envelope
            recordOptions.decrypt = record.decrypt.flatMap(DecryptPolicy.init(rawValue:))
            var recordSettings = settings
            recordSettings.rules = rules(of: record, cache: &rulesByPath)
            var job = IndexJob(file: Delivery.DeliveredFile(path), options: recordOptions, settings: recordSettings,
                               commit: true, recordName: name)
            job.preevaluated = prepared.preevaluated[name]
            do {
                reports[name] = try job.run(in: database, moves: &moves)
            } catch let refused as IndexJob.Refused {
                try setAside(name, "libnotmuch refused \(path.string): \(refused)")
                reports[name] = DeliveryReport.queuedReport(path, abandoned: false)
                continue
            }
            applied.append(name)
        }
        return (applied, reports)
    }

    /// What a transaction that applies the queue can settle before the
    /// database is asked for: each record's rules, read once, and their
    /// conditions that need no index, evaluated against its file. A slow
    /// rule then runs while nobody waits for the write lock.
    struct PreparedQueue {
        var rulesByPath: [String: RuleSet] = [:]
        var preevaluated: [String: PreevaluatedLeaves] = [:]
    }

    /// `known`: records whose delivery evaluated them already, against
    /// this session's own rules.
    func prepareQueue(known: [String: PreevaluatedLeaves] = [:]) -> PreparedQueue {
        var prepared = PreparedQueue(preevaluated: known)
        for name in queue.names() where known[name] == nil {
            guard let record = try? queue.read(name), let path = locate(record) else { continue }
            let rules = rules(of: record, cache: &prepared.rulesByPath)
            guard !rules.isEmpty else { continue }
            prepared.preevaluated[name] = rules.preevaluate(DeliveryFacts(path: path.string, envelope: record.envelope,
                                                                          database: nil, messageID: nil))
        }
        return prepared
    }

    /// The rules a record names: this delivery's, or another file's, read
    /// once per transaction (at apply time, as documented).
    private func rules(of record: PendingRecord, cache: inout [String: RuleSet]) -> RuleSet {
        let path = record.rulesFile ?? ""
        if path == settings.rulesPath ?? "" { return settings.rules }
        if let known = cache[path] { return known }
        let loaded = path.isEmpty ? RuleSet.empty : RulesLoader.loadLogging(path: path)
        cache[path] = loaded
        return loaded
    }

    /// Where a record's file is now; a mail client may have marked it read
    /// meanwhile (new/X became cur/X:2,S). Nil when it is gone.
    private func locate(_ record: PendingRecord) -> FilePath? {
        let recorded = FilePath(settings.mailRoot).appending(record.path)
        return FileSystem.kind(of: recorded) != .missing ? recorded : Maildir.renamedForFlags(recorded)
    }

    /// Takes a record out of the queue for good, with its reason, where
    /// `flush --list` shows it.
    private func setAside(_ name: String, _ reason: String) throws {
        DeliveryLog.logger.error("queued delivery set aside: \(reason); see 'notmuch-deliver flush --list'")
        try queue.setAside(name, reason: reason)
    }

    private func enqueue(_ file: Delivery.DeliveredFile) throws(DeliveryError) -> String {
        var relative = file.current.string
        let root = settings.mailRoot.hasSuffix("/") ? settings.mailRoot : settings.mailRoot + "/"
        if relative.hasPrefix(root) { relative.removeFirst(root.count) }
        let record = PendingRecord(path: relative, tagOperations: options.tagOperations.map(\.description),
                                   rulesFile: settings.rulesPath ?? "", recipient: options.envelope.recipient,
                                   sender: options.envelope.sender,
                                   recipientExtension: options.envelope.recipientExtension,
                                   decrypt: options.decrypt?.rawValue)
        do {
            return try queue.enqueue(record, message: file.current, linking: queueLinksAreSafe)
        } catch {
            throw DeliveryError(.temporary, "cannot queue the message in '\(queue.directory)': \(error)")
        }
    }

    /// A queue entry that is a link to a message is a message file too:
    /// only where `notmuch new` does not look (under a `.notmuch` folder, or
    /// outside the mail root).
    private var queueLinksAreSafe: Bool {
        let queue = queue.directory.string
        let root = settings.mailRoot.hasSuffix("/") ? settings.mailRoot : settings.mailRoot + "/"
        return !queue.hasPrefix(root) || queue.contains("/.notmuch/")
    }

    private func queued(_ file: Delivery.DeliveredFile, reason: String?, abandoned: Bool) -> DeliveryReport {
        let message = reason ?? "the database's write lock did not come within \(settings.lockTimeout) s; "
            + "the message is delivered and queued for the next delivery or 'notmuch-deliver flush'"
        DeliveryLog.logger.warning("\(file.current.string): \(message)")
        return DeliveryReport.queuedReport(file.current, abandoned: abandoned)
    }

    /// Queued, and in the hands of the process that holds the flusher turn.
    private func handedOver(_ file: Delivery.DeliveredFile) -> DeliveryReport {
        DeliveryLog.logger.info("\(file.current.string): queued for the delivery now applying the queue")
        return DeliveryReport.queuedReport(file.current, abandoned: false)
    }

    /// Another process applied our queued record first.
    private func appliedElsewhere(_ file: Delivery.DeliveredFile) -> DeliveryReport {
        DeliveryReport(path: file.current.string, messageID: nil, tags: [], outcome: .indexed,
                       warning: nil, traces: [])
    }
}

/// Monotonic time, for deadlines and the log.
public enum Clock {
    public static var milliseconds: Double { now * 1000 }

    public static var now: Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1_000_000_000
    }
}
