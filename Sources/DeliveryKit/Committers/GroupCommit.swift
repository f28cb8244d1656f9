import Notmuch
import Rules
import SystemPackage
import Synchronization
import MaildirKit
#if canImport(Glibc)
import Glibc
#endif

/// A server's deliveries into one database, committed together. Each
/// delivery syncs its message and queues it, as a command-line delivery
/// does when the write lock is taken (its record synced only if the
/// commit comes too late: `Deliverer.finish`), hands the record here and
/// waits. One
/// thread per database applies everything queued in one transaction,
/// commits, lets go of the write lock, and tells each waiting delivery how
/// its message ended; messages that arrive during a commit go together into
/// the next. The queue makes this safe across processes: a command-line
/// delivery or a `flush` takes the same flusher turn, and a record applied
/// by either is seen gone from the queue.
///
/// The committer's thread is the only one that waits in libnotmuch for the
/// write lock, and it only asks when the lock looks free: a delivery's wait
/// is bounded by its own deadline, after which its message is queued, which
/// is as good as committed for the MTA.
final class GroupCommitter: @unchecked Sendable {
    fileprivate let monitor = Monitor()
    // Everything below is guarded by `monitor`.
    /// The settings of the latest delivery: a reloaded configuration
    /// applies from the next transaction on.
    private var applier: QueueApplier
    /// Records handed over and not yet seen applied, with their rules'
    /// pre-evaluated conditions.
    fileprivate var pending: [String: PreevaluatedLeaves?] = [:]
    /// Pending records whose file this server found to be mail when it
    /// wrote it: the committer does not parse them a second time.
    private var checkedAsMail: Set<String> = []
    /// How each record ended, until its deliveries take the report.
    private var results: [String: DeliveryReport] = [:]
    /// Deliveries still waiting for each record: the same bytes for the
    /// same recipient make the same record, and each delivery gets its report.
    private var waiters: [String: Int] = [:]
    private var running = false
    /// The latest round found the write lock (or the flusher turn) another's.
    private var blocked = false
    /// A delivery's wait ran out while another writer held the lock: until
    /// a round sees the lock free, waiting again gains nothing, and every
    /// delivery is answered as queued at once, as a command-line delivery
    /// that finds the turn taken is. Without it each group waited the whole
    /// lock timeout again: 8 clients got 40 replies in 15 s.
    private var queueingAtOnce = false
    // Replying to a message that arrives during a commit once its record
    // is synced, instead of after the next commit, let groups grow past
    // the number of clients and halved the server's CPU a message in a
    // burst (Docs/performance.md), but `make stress --lmtp` then lost
    // messages: a commit of hundreds of records runs for seconds, and a
    // SIGKILL after a rule has moved a file inside it, before the commit,
    // leaves the record naming a file that is gone (set aside, the message
    // never indexed). Until that window is closed, every reply waits for
    // its commit or its deadline.

    /// When each pending record was handed over: commits take the oldest
    /// first, so that a record waits at most for the running commit and
    /// the next.
    private var arrival: [String: UInt64] = [:]
    private var handedOver: UInt64 = 0

    /// How long the committer sleeps when the lock or the flusher turn is
    /// taken before it looks again.
    static let busyPause: useconds_t = 20_000
    /// At most this many records in one transaction: a backlog (a server
    /// starting on a killed one's queue, the queue after a long lock) must
    /// not hold the write lock for all of it at once (a user's `notmuch
    /// tag` waits at most one commit). The import found batches of 250
    /// the cheapest per message.
    static let recordsPerCommit = 250
    /// How long an idle committer waits for more before its thread ends.
    static let linger = 2.0

    init(applier: QueueApplier) {
        self.applier = applier
    }

    /// Hands over a queue record; `wait` then tells its outcome.
    /// `isMail`: the delivery checked that its file is mail (not a file
    /// --keep kept although it is not).
    func submit(_ name: String, preevaluated: PreevaluatedLeaves?, isMail: Bool, applier: QueueApplier) {
        let start: Bool = monitor.locked {
            self.applier = applier
            pending[name] = .some(preevaluated)
            if isMail { checkedAsMail.insert(name) }
            waiters[name, default: 0] += 1
            if arrival[name] == nil {
                handedOver += 1
                arrival[name] = handedOver
            }
            guard !running else {
                // The committer may be lingering for work.
                monitor.broadcast()
                return false
            }
            running = true
            return true
        }
        if start, !DetachedThread.start({ self.run() }) {
            // No thread: the records stay queued for the next delivery or
            // a flush; each delivery is told it is queued.
            monitor.locked { running = false }
            DeliveryLog.logger.error("cannot start a committer thread; the messages stay queued")
        }
    }

    /// Applies what is queued already (a server killed before its last
    /// commit left records behind), without waiting for a delivery.
    func kick(applier: QueueApplier) {
        let start: Bool = monitor.locked {
            self.applier = applier
            guard !running else { return false }
            running = true
            return true
        }
        if start, !DetachedThread.start({ self.run() }) { monitor.locked { running = false } }
    }

    /// The record's report once its transaction is committed; nil when
    /// `deadline` (Monotonic seconds) comes first: the message stays queued
    /// and is committed later.
    func wait(for name: String, until deadline: Double) -> DeliveryReport? {
        monitor.locked {
            while results[name] == nil, !queueingAtOnce, Monotonic.seconds < deadline {
                monitor.wait(until: deadline)
            }
            let report = results[name]
            if report == nil, blocked, !queueingAtOnce {
                queueingAtOnce = true
                // The others waiting behind the same writer go too.
                monitor.broadcast()
            }
            let left = (waiters[name] ?? 1) - 1
            if left > 0 {
                waiters[name] = left
            } else {
                waiters.removeValue(forKey: name)
                results.removeValue(forKey: name)
            }
            return report
        }
    }

    private enum Round {
        case committed([String: DeliveryReport])
        /// The write lock or the flusher turn is another's.
        case busy
        case failed(DeliveryError)
    }

    private func run() {
        while true {
            let (applier, known, mail, oldestFirst): (QueueApplier, [String: PreevaluatedLeaves], Set<String>, [String])
                = monitor.locked {
                (self.applier, pending.compactMapValues { $0 }, checkedAsMail,
                 pending.keys.sorted { (arrival[$0] ?? 0) < (arrival[$1] ?? 0) })
            }
            let round = commitOnce(applier, known: known, checkedAsMail: mail, oldestFirst: oldestFirst)
            CostlyMessageGate.shared.trimAfterCommit()
            if case .committed(let reports) = round, !reports.isEmpty,
               let hooks = applier.settings.hookDirectory {
                Hook.run("post-insert", in: hooks)
            }
            let stop: Bool = monitor.locked {
                settle(round, queue: applier.queue)
                monitor.broadcast()
                guard pending.isEmpty else { return false }
                // Records others handed over to the holder of the turn are
                // ours to apply too; not after a failure (the next delivery
                // tries again) or while another holds the turn (it applies them).
                if case .committed = round, !applier.queue.names().isEmpty { return false }
                // Lingers a while: under a steady stream of mail the next
                // message comes soon, and finds the thread awake.
                let lingerEnd = Monotonic.seconds + Self.linger
                while pending.isEmpty, Monotonic.seconds < lingerEnd { monitor.wait(until: lingerEnd) }
                guard pending.isEmpty else { return false }
                running = false
                return true
            }
            if stop {
                // What the thread's last rounds freed since their trim.
                CostlyMessageGate.shared.trimAfterCommit()
                return
            }
            if case .busy = round { usleep(Self.busyPause) }
        }
    }

    /// The committer found the lock free and is about to commit: deliveries
    /// wait for their commit again.
    private func sawLockFree() {
        monitor.locked {
            blocked = false
            queueingAtOnce = false
        }
    }

    /// With the monitor held: the results of a round for the records it concerns.
    private func settle(_ round: Round, queue: PendingQueue) {
        if case .busy = round { blocked = true }
        func finish(_ name: String, _ report: DeliveryReport) {
            pending.removeValue(forKey: name)
            checkedAsMail.remove(name)
            arrival.removeValue(forKey: name)
            // Kept only for deliveries still waiting.
            if waiters[name] != nil { results[name] = report }
        }
        switch round {
        case .committed(let reports):
            for name in pending.keys {
                if let report = reports[name] {
                    finish(name, report)
                } else if !queue.contains(name) {
                    finish(name, Self.appliedElsewhere)
                }
            }
        case .busy:
            for name in pending.keys where !queue.contains(name) { finish(name, Self.appliedElsewhere) }
        case .failed(let error):
            DeliveryLog.logger.error("\(error.message); the messages stay queued for the next delivery or 'notmuch-deliver flush'")
            for name in pending.keys { finish(name, DeliveryReport.queuedReport(FilePath(name), abandoned: false)) }
        }
    }

    /// Applied by another process (a delivery or a flush that held the turn).
    private static let appliedElsewhere = DeliveryReport(path: "", messageID: nil, tags: [], outcome: .indexed,
                                                         warning: nil, traces: [])

    /// One transaction: the whole queue, if the lock and the turn are free.
    private func commitOnce(_ applier: QueueApplier, known: [String: PreevaluatedLeaves],
                            checkedAsMail: Set<String>, oldestFirst: [String]) -> Round {
        if Database.isWriteLockHeld(databasePath: applier.settings.databasePath) { return .busy }
        guard let turn = applier.queue.tryBecomeFlusher() else { return .busy }
        defer { try? turn.close() }
        sawLockFree()
        var prepared = applier.prepareQueue(known: known, until: Monotonic.seconds + applier.settings.lockTimeout / 2)
        prepared.checkedAsMail = checkedAsMail
        let database: Database
        do {
            database = try applier.mailbox.openDatabase()
        } catch {
            return .failed(DeliveryError(.temporary, "cannot open the notmuch database: \(error)"))
        }
        var timer = PhaseTimer(path: nil)
        do {
            return .committed(try applier.applyQueue(in: database, prepared: prepared, timer: &timer,
                                                     limit: Self.recordsPerCommit, preferred: oldestFirst).reports)
        } catch {
            return .failed(DeliveryError(.temporary, "cannot commit the queued deliveries: \(error)"))
        }
    }
}

extension GroupCommitter {
    /// Nothing handed over is waiting for a commit (the thread may linger).
    var isIdle: Bool { monitor.locked { pending.isEmpty } }
}

/// The committers of a server, one per database, made on first use.
final class GroupCommits: Sendable {
    private let committers = Mutex<[String: GroupCommitter]>([:])

    func committer(for applier: QueueApplier) -> GroupCommitter {
        committers.withLock { all in
            let path = applier.settings.databasePath
            if let known = all[path] { return known }
            let made = GroupCommitter(applier: applier)
            all[path] = made
            return made
        }
    }

    func waitUntilIdle(until deadline: Double) {
        let all = committers.withLock { Array($0.values) }
        while all.contains(where: { !$0.isIdle }), Monotonic.seconds < deadline {
            usleep(10_000)
        }
    }
}
