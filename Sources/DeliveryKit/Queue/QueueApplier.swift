import MailParsing
import Notmuch
import Rules
import SystemPackage
import MaildirKit
import Threads

/// Applies the queue of deliveries that waited for the database: every
/// record in one transaction, each exactly once, with the tags, rules and
/// folder its delivery would have given it; a record stopped by a fault of
/// its own is set aside. Used by the delivery holding the flusher turn, by
/// the hand-over loop after it, and by `flush`.
struct QueueApplier {
    let mailbox: Mailbox
    var settings: DeliverySettings { mailbox.settings }
    var queue: PendingQueue { mailbox.queue }

    /// In one atomic section, `first` (a delivery's own message) and every
    /// queued record; then the renamed directories are synced, the commit
    /// made, and only then the applied records removed (those dropped as
    /// unusable among them). Returns their names, and the reports of those
    /// indexed.
    /// `limit`: at most this many records, those named in `preferred`
    /// first (in its order), then the queue's; the others wait for the
    /// next transaction.
    func applyQueue(in database: Database, prepared: PreparedQueue, timer: inout PhaseTimer, limit: Int? = nil,
                    preferred: [String] = [], first: (inout [FilePath]) throws -> Void = { _ in })
        throws -> (applied: [String], reports: [String: DeliveryReport]) {
        var moves: [FilePath] = []
        var drained: (applied: [String], reports: [String: DeliveryReport]) = ([], [:])
        try database.atomically {
            try first(&moves)
            drained = try drain(database, prepared: prepared, limit: limit, preferred: preferred, moves: &moves)
            timer.mark("index")
            // Renamed files' directories reach the disk before the commit
            // that names them; inside the section, so that a failed sync
            // leaves it open and the database's destruction cancels it.
            try IndexOutcome.makeDurable(moves)
        }
        try database.close()
        queue.remove(drained.applied, syncing: false)
        timer.mark("commit")
        return drained
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
    func applyHandedOver() -> Bool {
        let started = Monotonic.seconds
        while !queue.names().isEmpty, let turn = queue.tryBecomeFlusher() {
            defer { try? turn.close() }
            guard Monotonic.seconds - started < Self.handOverLimit else {
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
        if queue.names().isEmpty { return 0 }
        // One applier at a time, as among deliveries: a holder of the turn
        // looks at the queue again after letting go, so what is queued now
        // is in its hands (and two appliers would each see the other's
        // records between a commit and their removal).
        guard let turn = queue.tryBecomeFlusher() else {
            DeliveryLog.logger.info("another process holds the flusher turn and applies the queue")
            return 0
        }
        let outcome = flushOnce(timeout: settings.lockTimeout)
        try? turn.close()
        switch outcome {
        case .applied(let count):
            // Deliveries that found the turn taken meanwhile left their
            // records to this flush.
            applyHandedOver()
            return count
        case .lockTimedOut:
            throw DeliveryError(.temporary, "the database is locked by another writer; nothing flushed, try again later")
        case .failed(let error): throw error
        }
    }

    private enum FlushOutcome {
        case applied(Int)
        /// A thread is left waiting in libnotmuch: the process must end with _exit.
        case lockTimedOut
        case failed(DeliveryError)
    }

    private func flushOnce(timeout: Double) -> FlushOutcome {
        if queue.names().isEmpty { return .applied(0) }
        let prepared = prepareQueue(until: Monotonic.seconds + timeout / 2)
        // Nil when the time ran out: a thread is then left waiting in
        // libnotmuch, and the process must not touch the database again.
        guard let opened = mailbox.startOpening().wait(upTo: timeout) else { return .lockTimedOut }
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
    private func drain(_ database: Database, prepared: PreparedQueue, limit: Int?, preferred: [String],
                       moves: inout [FilePath]) throws -> (applied: [String], reports: [String: DeliveryReport]) {
        var applied: [String] = []
        var reports: [String: DeliveryReport] = [:]
        var rulesByPath = prepared.rulesByPath
        // Where this transaction's jobs moved files: records for several
        // recipients of one mailbox share one file, and the first one's
        // rule may have filed it before the next record is read.
        var movedTo: [FilePath: FilePath] = [:]
        var names = queue.names()
        if !preferred.isEmpty {
            let queued = Set(names)
            let first = preferred.filter { queued.contains($0) }
            let taken = Set(first)
            names = first + names.filter { !taken.contains($0) }
        }
        for name in limit.map({ names.prefix($0) }) ?? names[...] {
            let record: PendingRecord
            do { record = try queue.read(name) } catch Errno.noSuchFileOrDirectory {
                // Applied and removed by another process meanwhile.
                continue
            } catch let error as Errno {
                // Not the record's content: it may read next time.
                try setAside(name, "cannot read the record: \(error)")
                continue
            } catch {
                // A record file cut short by a crash before its fsync, whose
                // delivery therefore never reported success.
                DeliveryLog.logger.error("queue record \(name) is unreadable (\(error)); dropped")
                applied.append(name)
                continue
            }
            let recorded = FilePath(settings.mailRoot).appending(record.path)
            let path: FilePath
            if let found = locate(record) ?? movedTo[recorded] {
                path = found
            } else {
                switch try recover(name, recorded: recorded, in: database) {
                case .applied:
                    applied.append(name)
                    continue
                case .filed(let filed):
                    path = filed
                case .gone:
                    try setAside(name, "its message file \(recorded.string) is gone (moved or deleted before the record was applied)")
                    reports[name] = DeliveryReport.queuedReport(recorded, abandoned: false)
                    continue
                }
            }
            // The server's own records were checked as they were written.
            switch prepared.checkedAsMail.contains(name) ? .email : MailCheck.verdict(path) {
            case .email:
                break
            case .notEmail:
                try setAside(name, "\(path.string) is not an email message (no From, Subject or To header); the file is kept")
                reports[name] = DeliveryReport.queuedReport(path, abandoned: false)
                continue
            case .overLimit(let excess):
                try setAside(name, "\(path.string): \(excess); the file is kept")
                reports[name] = DeliveryReport.queuedReport(path, abandoned: false)
                continue
            case .unreadable(let code):
                try setAside(name, "cannot read \(path.string): \(Errno(rawValue: code))")
                reports[name] = DeliveryReport.queuedReport(path, abandoned: false)
                continue
            }
            var recordSettings = settings
            recordSettings.rules = rules(of: record, cache: &rulesByPath)
            var job = IndexJob(.queuedRecord(name: name), request: record.request,
                               settings: recordSettings)
            job.preevaluated = prepared.preevaluated[name]
            var location = path
            defer { if location != path { movedTo[recorded] = location } }
            do {
                reports[name] = try job.run(in: database, location: &location, moves: &moves)
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
        /// Records whose file was found to be mail when it was written.
        var checkedAsMail: Set<String> = []
    }

    /// `known`: records whose delivery evaluated them already, against
    /// this session's own rules.
    /// Records not reached by `until` (a monotonic time) are evaluated in
    /// the transaction as before: a backlog of slow rules must not eat the
    /// whole wait for the lock.
    func prepareQueue(known: [String: PreevaluatedLeaves] = [:], until: Double) -> PreparedQueue {
        var prepared = PreparedQueue(preevaluated: known)
        for name in queue.names() where known[name] == nil {
            guard Monotonic.seconds < until else { break }
            guard let record = try? queue.read(name), let path = locate(record) else { continue }
            let rules = rules(of: record, cache: &prepared.rulesByPath)
            guard !rules.isEmpty else { continue }
            prepared.preevaluated[name] = rules.preevaluate(DeliveryFacts(path: path.string, envelope: record.envelope,
                                                                          database: nil, messageID: nil))
        }
        return prepared
    }

    /// A group commit's records: the first of `order` (at most `limit`),
    /// each prepared as `prepareQueue` does (`known`: evaluated by their
    /// delivery already). Preparing stops at `until` (a monotonic time), and
    /// the records not reached wait for the next commit: slow rules are
    /// paid a commit's share at a time, before the lock is asked for, and
    /// never for a whole backlog at once. The first record is always taken.
    func prepareBatch(_ order: [String], known: [String: PreevaluatedLeaves], limit: Int,
                      until: Double) -> (names: [String], prepared: PreparedQueue) {
        var prepared = PreparedQueue()
        var names: [String] = []
        for name in order {
            guard names.count < limit else { break }
            if let leaves = known[name] {
                prepared.preevaluated[name] = leaves
                names.append(name)
                continue
            }
            guard names.isEmpty || Monotonic.seconds < until else { break }
            names.append(name)
            // A record that cannot be read or found is the transaction's
            // to settle (recovered, dropped or set aside).
            guard let record = try? queue.read(name), let path = locate(record) else { continue }
            let rules = rules(of: record, cache: &prepared.rulesByPath)
            guard !rules.isEmpty else { continue }
            prepared.preevaluated[name] = rules.preevaluate(DeliveryFacts(path: path.string, envelope: record.envelope,
                                                                          database: nil, messageID: nil))
        }
        return (names, prepared)
    }

    /// The rules a record names: this delivery's, or another file's, read
    /// once per transaction (at apply time, as documented).
    private func rules(of record: PendingRecord, cache: inout [String: RuleSet]) -> RuleSet {
        let path = record.rulesFile ?? "", sieve = record.sieveFile ?? ""
        if path == settings.rulesPath ?? "", sieve == settings.sievePath ?? "" { return settings.rules }
        let key = sieve.isEmpty ? path : path + "\u{0}" + sieve
        if let known = cache[key] { return known }
        let loaded = RulesLoader.loadLogging(rules: path, sieve: sieve, separator: settings.sieveSeparator)
        cache[key] = loaded
        return loaded
    }

    /// Where a record's file is now; a mail client may have marked it read
    /// meanwhile (new/X became cur/X:2,S). Nil when it is gone.
    private func locate(_ record: PendingRecord) -> FilePath? {
        let recorded = FilePath(settings.mailRoot).appending(record.path)
        return FileSystem.kind(of: recorded) != .missing ? recorded : Maildir.renamedForFlags(recorded)
    }

    /// Whether a committed transaction marked a message as done for this
    /// record (see `IndexJob.recordProperty`).
    private func appliedAlready(_ name: String, in database: Database) throws -> Bool {
        let property = IndexJob.recordProperty(name)
        return try database.query("property:\"\(property)=1\"").count() > 0
    }

    private enum Recovery {
        case applied
        case filed(FilePath)
        case gone
    }

    /// What became of a record whose file is not where it says.
    private func recover(_ name: String, recorded: FilePath, in database: Database) throws -> Recovery {
        // Another process may have applied it (a rule moved or discarded
        // the file) and not yet removed the record.
        if try appliedAlready(name, in: database) { return .applied }
        if let delivered = try deliveredCopy(of: name, in: database) {
            // Another recipient's record of the same file was applied, and
            // its rule filed the file, in an earlier transaction (a crash
            // came between): the message is there, delivered.
            try delivered.addProperty(IndexJob.recordProperty(name), value: "1")
            return .applied
        }
        // A transaction that filed it (a rule's folder) and died before its
        // commit left it renamed, never indexed: applied where it is, it
        // ends where it would have.
        guard let fileName = recorded.lastComponent?.string,
              let filed = Maildir.findFiled(named: fileName, under: FilePath(settings.mailRoot)) else { return .gone }
        DeliveryLog.logger.notice("queued delivery found at \(filed.string), where a transaction that did not commit had filed it")
        return .filed(filed)
    }

    /// The delivered message a record's bytes are (a record file is a link
    /// to its message), found by its Message-ID; nil when the database has
    /// no such message, or has it from elsewhere than a delivery.
    private func deliveredCopy(of name: String, in database: Database) throws -> Message? {
        let headers = MessageHeaders.read(fromFile: queue.directory.appending(name).string)
        guard let value = headers.values("message-id").first,
              case let id = Envelope.bareAddress(String(value.filter { $0 != " " && $0 != "\t" })), !id.isEmpty,
              let message = try database.findMessage(id: id),
              try message.property(IndexJob.deliveredProperty) != nil else { return nil }
        return message
    }

    /// Takes a record out of the queue for good, with its reason, where
    /// `flush --list` shows it.
    private func setAside(_ name: String, _ reason: String) throws {
        DeliveryLog.logger.error("queued delivery set aside: \(reason); see 'notmuch-deliver flush --list'")
        try queue.setAside(name, reason: reason)
    }
}
