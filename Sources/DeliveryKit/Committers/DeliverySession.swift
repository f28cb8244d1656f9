import Notmuch
import Rules
import SystemPackage
import MaildirKit
import Threads

/// One delivery's way through the database, once its message is written:
/// a bounded wait for the write lock, then its own message and every
/// queued one in one transaction; or, when the database cannot be had in
/// time, a durable record in the queue for whoever opens it next.
struct DeliverySession {
    let mailbox: Mailbox
    let request: MessageRequest
    var settings: DeliverySettings { mailbox.settings }
    var queue: PendingQueue { mailbox.queue }
    var applier: QueueApplier { mailbox.applier }

    init(mailbox: Mailbox, request: MessageRequest) {
        self.mailbox = mailbox
        self.request = request
    }

    /// What a delivery settles once its message is written, before the
    /// slow part of making it durable (two fsyncs). Not earlier: the write
    /// lock must not be held while the message still streams in.
    enum Plan {
        /// The quiet case: the lock is free and nobody is queued. The open
        /// is started at once, to overlap the fsyncs. `flusherTurn` is nil
        /// only when there is no database folder to queue in (the open will
        /// say what is wrong).
        case direct(deadline: Double, flusherTurn: FileDescriptor?, opening: BackgroundCall<DatabaseOpening>)
        /// The lock is held, others are queued, or another is about to
        /// open: the delivery queues first, so that whoever opens next
        /// takes this message along in its transaction.
        case queueFirst(deadline: Double)

        var deadline: Double {
            switch self {
            case .direct(let deadline, _, _), .queueFirst(let deadline): deadline
            }
        }
    }

    func plan() -> Plan {
        let deadline = Monotonic.seconds + settings.lockTimeout
        guard !Database.isWriteLockHeld(databasePath: settings.databasePath), queue.names().isEmpty else { return .queueFirst(deadline: deadline) }
        let flusherTurn = queue.tryBecomeFlusher()
        guard flusherTurn != nil || FileSystem.kind(of: queue.directory.directory) == .missing else {
            return .queueFirst(deadline: deadline)
        }
        return .direct(deadline: deadline, flusherTurn: flusherTurn, opening: mailbox.startOpening())
    }

    /// Indexes a durable message, or queues it when the lock does not come
    /// in time or the database cannot be opened. Throws only when the
    /// message can be neither indexed nor queued; the error's
    /// `fileIsNamedElsewhere` then says the file must stay.
    func deliver(_ file: Maildir.Delivered, plan: Plan, preevaluated: PreevaluatedLeaves? = nil,
                 timer: inout PhaseTimer) throws(DeliveryError) -> DeliveryReport {
        var recordName: String?
        var flusherTurn: FileDescriptor?
        var opening: BackgroundCall<DatabaseOpening>?
        switch plan {
        case .direct(_, let turn, let started):
            flusherTurn = turn
            opening = started
        case .queueFirst:
            recordName = try enqueue(file.path)
        }
        do {
            try syncDelivery(file.path, record: recordName)
        } catch {
            plan.cancel(in: mailbox)
            throw error
        }
        if recordName != nil {
            // The record is durable. If another process holds the flusher
            // turn, the record is in its hands: a holder looks at the queue
            // again after letting go (`applyHandedOver`), so this process
            // can leave at once instead of waiting for a commit.
            guard let turn = queue.tryBecomeFlusher() else { return handedOver(file.path) }
            flusherTurn = turn
        }

        // With the turn held, records may be handed to us whatever happens
        // next: every way out lets go of the turn and looks again, unless
        // the database cannot be had at all.
        let outcome: Result<DeliveryReport, DeliveryError>
        do {
            outcome = .success(try indexHoldingTurn(file.path, recordName: recordName, deadline: plan.deadline,
                                                    opening: opening, preevaluated: preevaluated, timer: &timer))
        } catch {
            outcome = .failure(error)
        }
        try? flusherTurn?.close()
        switch outcome {
        case .success(var report):
            if report.outcome != .queued, applier.applyHandedOver() { report.abandonedLockWait = true }
            return report
        case .failure(let error):
            // Our own message failed; the records handed to us still get
            // their try, if the database is free to be had.
            if !Database.isWriteLockHeld(databasePath: settings.databasePath) { applier.applyHandedOver() }
            // Queued first, the delivery had succeeded already: its record is
            // durable (and still queued, set aside, or applied by now).
            if recordName != nil { return queued(file.path, reason: "\(error.message); the message stays queued", abandoned: false) }
            throw error
        }
    }

    /// Opens the database (within the deadline) and indexes the message
    /// with every queued record in one transaction; or queues the message
    /// when the database cannot be had. The database is closed on return.
    private func indexHoldingTurn(_ file: FilePath, recordName: String?, deadline: Double,
                                  opening: BackgroundCall<DatabaseOpening>?, preevaluated: PreevaluatedLeaves?,
                                  timer: inout PhaseTimer) throws(DeliveryError) -> DeliveryReport {
        // A delivery that queued first applies the whole queue: its rules'
        // slow part is done before asking for the lock. (A quiet delivery
        // found the queue empty, and its open is under way already.)
        var prepared = QueueApplier.PreparedQueue()
        if opening == nil {
            var known: [String: PreevaluatedLeaves] = [:]
            if let recordName, let preevaluated { known[recordName] = preevaluated }
            prepared = applier.prepareQueue(known: known, until: Monotonic.seconds + settings.lockTimeout / 2)
        }
        let opening = opening ?? mailbox.startOpening()
        guard let opened = opening.wait(upTo: max(deadline - Monotonic.seconds, 0.01)) else {
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
        var location = file
        do {
            let applied = try applier.applyQueue(in: database, prepared: prepared, timer: &timer) { moves in
                if recordName == nil {
                    var job = IndexJob(.delivery, request: request, settings: settings)
                    job.preevaluated = preevaluated
                    report = try job.run(in: database, location: &location, moves: &moves)
                }
            }
            // Our own record, if another applied it already, is simply not
            // among them.
            if let recordName { report = applied.reports[recordName] }
        } catch {
            var failure = IndexOutcome.classify(error, file: location)
            failure.location = location
            throw failure
        }
        return report ?? appliedElsewhere(file)
    }

    /// A server's delivery: the message's name in new/ is made durable and
    /// the message queued; a group commit applies it. The record is not
    /// synced: the reply waits for the commit, and a record only has to be
    /// durable when the reply goes before it (`makeRecordDurable`); a crash
    /// before the reply leaves the MTA to retry, and the retry adopts the
    /// file. Returns the record's name.
    func stage(_ file: Maildir.Delivered) throws(DeliveryError) -> String {
        let name = try enqueue(file.path)
        try syncDelivery(file.path, record: name, recordDurable: false)
        return name
    }

    /// A staged record whose commit did not come in time: durable before
    /// the reply says the message is queued.
    func makeRecordDurable(_ name: String) throws(DeliveryError) {
        do { try queue.makeDurable(name) } catch {
            var failure = DeliveryError(.temporary, "cannot sync the queue '\(queue.directory)': \(error)")
            // Its file is named in the queue (and perhaps applied by now): it stays.
            failure.fileIsNamedElsewhere = true
            throw failure
        }
    }

    /// Queues a message late (the open failed or timed out) and makes the
    /// record durable before the delivery reports success.
    private func enqueueDurably(_ file: FilePath) throws(DeliveryError) {
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
    private func syncDelivery(_ file: FilePath, record: String?, recordDurable: Bool = true) throws(DeliveryError) {
        let directory = file.directory
        do {
            try FileSystem.fsyncDirectory(directory)
            if let record, recordDurable { try queue.makeDurable(record) }
        } catch {
            var failure = DeliveryError(.temporary, "cannot sync the delivered message ('\(directory)'): \(error)")
            if let record {
                // Already applied by a holder of the turn: the database
                // names the file, so it stays (a retry adopts it).
                if queue.contains(record) { queue.remove([record]) } else { failure.fileIsNamedElsewhere = true }
            }
            throw failure
        }
    }

    private func enqueue(_ file: FilePath) throws(DeliveryError) -> String {
        var relative = file.string
        let root = settings.mailRoot.hasSuffix("/") ? settings.mailRoot : settings.mailRoot + "/"
        if relative.hasPrefix(root) { relative.removeFirst(root.count) }
        let rules = request.appliesRules
        let record = PendingRecord(path: relative, tagOperations: request.filing.tagOperations.map(\.description),
                                   rulesFile: rules ? settings.rulesPath ?? "" : "",
                                   recipient: request.envelope.recipient, sender: request.envelope.sender,
                                   recipientExtension: request.envelope.recipientExtension,
                                   decrypt: request.filing.decrypt?.rawValue, sieveFile: rules ? settings.sievePath : nil)
        do {
            return try queue.enqueue(record, message: file, linking: queueLinksAreSafe)
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
        return !queue.hasPrefix(root) || queue.contains("/\(Database.folderName)/")
    }

    private func queued(_ file: FilePath, reason: String?, abandoned: Bool) -> DeliveryReport {
        let message = reason ?? "the database's write lock did not come within \(settings.lockTimeout) s; "
            + "the message is delivered and queued for the next delivery or 'notmuch-deliver flush'"
        DeliveryLog.logger.warning("\(file.string): \(message)")
        return DeliveryReport.queuedReport(file, abandoned: abandoned)
    }

    /// Queued, and in the hands of the process that holds the flusher turn.
    private func handedOver(_ file: FilePath) -> DeliveryReport {
        DeliveryLog.logger.info("\(file.string): queued for the delivery now applying the queue")
        return DeliveryReport.queuedReport(file, abandoned: false)
    }

    /// Another process applied our queued record first.
    private func appliedElsewhere(_ file: FilePath) -> DeliveryReport {
        DeliveryReport(path: file.string, messageID: nil, tags: [], outcome: .indexed, warning: nil, traces: [])
    }
}

extension DeliverySession.Plan {
    /// The message could not be made durable after this plan: let go of the
    /// database and of the flusher turn, and apply what others handed over
    /// meanwhile.
    func cancel(in mailbox: Mailbox) {
        guard case .direct(let deadline, let flusherTurn, let opening) = self else { return }
        // Not the whole lock timeout: the delivery has failed already, and
        // an open that does not come at once is left to end with the process.
        var lockWaitLeft = false
        switch opening.wait(upTo: min(max(deadline - Monotonic.seconds, 0.01), 1)) {
        case .opened(let database)?: try? database.close()
        case .failed?: break
        case nil: lockWaitLeft = true
        }
        guard let flusherTurn else { return }
        try? flusherTurn.close()
        if !lockWaitLeft { mailbox.applier.applyHandedOver() }
    }
}
