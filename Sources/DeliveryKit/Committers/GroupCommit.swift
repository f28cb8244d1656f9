import Notmuch
import Rules
import SystemPackage
import Synchronization
import MaildirKit
import Threads

/// A server's deliveries into one database, committed together. Each
/// delivery syncs its message and queues it, as a command-line delivery
/// does when the write lock is taken (its record synced only if the
/// reply goes before the commit: `Deliverer.finish`), hands the record here
/// and waits. One thread per database applies what is queued in one
/// transaction, commits, lets go of the write lock, and tells each waiting
/// delivery how its message ended. The queue makes this safe across
/// processes: a command-line delivery or a `flush` takes the same flusher
/// turn, and a record applied by either is seen gone from the queue.
///
/// A message that arrives while a commit runs is answered as soon as its
/// record is durable (`250 … (queued)`, as safe as indexed for the MTA),
/// and the next commit takes it along: waiting would cost it the rest of
/// the running commit and the whole next one, and hold its client back,
/// so that a commit could never take more messages than there are
/// clients. Three things keep this honest: the first message to arrive
/// during each commit, and every message that arrives while the committer
/// is idle, still waits for its commit (a lone sender is answered once
/// indexed); past `aheadLimit` records queued, deliveries wait for their
/// commit again, so replies never run far ahead of the index; and commits
/// are sized to be short (`CommitSizing`), take the deliveries still
/// waiting first and then the oldest records, and evaluate slow rules a
/// commit's share at a time, so that a server killed again and again
/// still applies a backlog (`make stress --lmtp`).
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
    private var results: [String: Outcome] = [:]
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
    /// A commit is under way (the lock was seen free, the turn taken).
    private var committing = false
    /// The committer waits for a fuller commit (`gather`).
    private var gathering = false
    /// Records handed over since the running commit began: the first waits
    /// for its commit, the others are answered once durable.
    private var arrivalsDuringThisCommit = 0
    /// Records whose deliveries are answered once the record is durable,
    /// without waiting for their commit.
    private var answeredEarly: Set<String> = []
    /// Records that arrived during a commit while the queue was past
    /// `aheadLimit`: answered early once it is back under it, unless their
    /// commit comes first.
    private var heldBack: Set<String> = []
    /// Queued records not handed over here (a killed server's, a
    /// command-line delivery's), as the latest round counted them.
    private var backlog = 0
    /// When each pending record was handed over.
    private var arrival: [String: UInt64] = [:]
    private var handedOver: UInt64 = 0
    /// The committer thread's own: how many records its next commit takes.
    private var sizing = CommitSizing()
    /// The committer thread's own: when its latest commit began (Monotonic seconds).
    private var latestCommit = -Double.infinity

    /// How long the committer sleeps when the lock or the flusher turn is
    /// taken before it looks again.
    static let busyPause = 0.02
    /// Past this many records queued (handed over and not applied, and a
    /// backlog), deliveries wait for their commit again: how far replies
    /// may run ahead of what is searchable. Waiting, each client sends at
    /// the pace of the commits, which then catch up.
    static let aheadLimit = 500
    /// At most this share of a commit goes to records whose deliveries are
    /// still waiting, ahead of older ones: a reply waits one commit, not
    /// a whole backlog, and the backlog still shrinks with every commit.
    static let waitingShare = 2
    /// How long a round may spend evaluating rules' conditions before it
    /// asks for the lock (seconds): the records not reached wait for the
    /// next round.
    static let preparationBudget = 0.1
    /// Under a stream of mail, a commit waits for this many records, or
    /// until `gatherWindow` after the previous one began: a Xapian commit
    /// costs about as much CPU for 16 messages as for 60 (its fixed part,
    /// the open, the blocks rewritten), and commits that follow each other
    /// as fast as they can take only what arrived during the last.
    static let gatherSize = 64
    static let gatherWindow = 0.2
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
            let isNew = pending[name] == nil
            pending[name] = .some(preevaluated)
            if isMail { checkedAsMail.insert(name) }
            waiters[name, default: 0] += 1
            if arrival[name] == nil {
                handedOver += 1
                arrival[name] = handedOver
            }
            // Gathering, the next commit takes it: nothing is gained by waiting.
            if (committing && arrivalsDuringThisCommit > 0) || gathering, isNew {
                if pending.count + backlog <= Self.aheadLimit { answeredEarly.insert(name) } else { heldBack.insert(name) }
            }
            if committing, isNew { arrivalsDuringThisCommit += 1 }
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
        let queued = applier.queue.names().count
        let start: Bool = monitor.locked {
            self.applier = applier
            backlog = max(backlog, queued - pending.count)
            guard !running else { return false }
            running = true
            return true
        }
        if start, !DetachedThread.start({ self.run() }) { monitor.locked { running = false } }
    }

    /// The record's report once its transaction is committed; nil when
    /// `deadline` (Monotonic seconds) comes first, or when the record may be
    /// answered before its commit: the message stays queued (its record
    /// must be made durable before the reply) and is committed later.
    func wait(for name: String, until deadline: Double) -> Outcome? {
        monitor.locked {
            while results[name] == nil, !queueingAtOnce, !answeredEarly.contains(name), Monotonic.seconds < deadline {
                monitor.wait(until: deadline)
            }
            let report = results[name]
            if report == nil, blocked, !queueingAtOnce, !answeredEarly.contains(name) {
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
                answeredEarly.remove(name)
                heldBack.remove(name)
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

    /// Waits, under a stream of mail, for a fuller commit (`gatherSize`):
    /// only when some pending record was answered already (its client is
    /// not held back by the wait), so never for a lone sender, whose reply
    /// waits for its commit, nor while a backlog is applied.
    private func gather() {
        let end = latestCommit + Self.gatherWindow
        monitor.locked {
            guard Monotonic.seconds < end, pending.keys.contains(where: { waiters[$0] == nil }) else { return }
            let wanted = min(Self.gatherSize, sizing.limit)
            gathering = true
            while backlog == 0, !pending.isEmpty, pending.count < wanted, Monotonic.seconds < end {
                monitor.wait(until: end)
            }
            gathering = false
        }
    }

    /// What a round needs to know of the deliveries, taken under the monitor.
    private struct Snapshot {
        let applier: QueueApplier
        let known: [String: PreevaluatedLeaves]
        let checkedAsMail: Set<String>
        /// Pending records whose deliveries wait for their commit, in the
        /// order they arrived.
        let waiting: [String]
        /// The other pending records, in the order they arrived.
        let answered: [String]
    }

    private func snapshot() -> Snapshot {
        monitor.locked {
            let byArrival = pending.keys.sorted { (arrival[$0] ?? 0) < (arrival[$1] ?? 0) }
            let isWaiting = { (name: String) in self.waiters[name] != nil && !self.answeredEarly.contains(name) }
            return Snapshot(applier: applier, known: pending.compactMapValues { $0 }, checkedAsMail: checkedAsMail,
                            waiting: byArrival.filter(isWaiting), answered: byArrival.filter { !isWaiting($0) })
        }
    }

    private func run() {
        while true {
            gather()
            let taken = snapshot()
            let applier = taken.applier
            let round = commitOnce(taken)
            CostlyMessageGate.shared.trimAfterCommit()
            if case .committed(let reports) = round, !reports.isEmpty,
               let hooks = applier.settings.hookDirectory {
                Hook.run("post-insert", in: hooks)
            }
            let stop: Bool = monitor.locked {
                settle(round, queue: applier.queue)
                monitor.broadcast()
                guard pending.isEmpty else { return false }
                // Records others handed over to the holder of the turn, and
                // what is left of a backlog, are ours to apply too; not after
                // a failure (the next delivery tries again) or while another
                // holds the turn (it applies them).
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
            if case .busy = round { Pause.sleep(seconds: Self.busyPause) }
        }
    }

    /// The committer found the lock free and is about to commit: deliveries
    /// wait for their commit again, and those arriving from now on count
    /// as arriving during a commit.
    private func sawLockFree(backlog: Int) {
        monitor.locked {
            blocked = false
            queueingAtOnce = false
            committing = true
            arrivalsDuringThisCommit = 0
            self.backlog = backlog
        }
    }

    /// With the monitor held: the results of a round for the records it concerns.
    private func settle(_ round: Round, queue: PendingQueue) {
        if case .busy = round { blocked = true }
        committing = false
        func finish(_ name: String, _ report: Outcome) {
            pending.removeValue(forKey: name)
            checkedAsMail.remove(name)
            arrival.removeValue(forKey: name)
            heldBack.remove(name)
            // Kept only for deliveries still waiting.
            if waiters[name] != nil { results[name] = report }
        }
        switch round {
        case .committed(let reports):
            for name in pending.keys {
                if let report = reports[name] {
                    finish(name, .committed(report))
                } else if !queue.contains(name) {
                    finish(name, .appliedElsewhere)
                }
            }
        case .busy:
            for name in pending.keys where !queue.contains(name) { finish(name, .appliedElsewhere) }
        case .failed(let error):
            DeliveryLog.logger.error("\(error.message); the messages stay queued for the next delivery or 'notmuch-deliver flush'")
            for name in pending.keys { finish(name, .leftQueued) }
        }
        // Back under the limit: the deliveries held back go.
        if !heldBack.isEmpty, pending.count + backlog <= Self.aheadLimit {
            answeredEarly.formUnion(heldBack)
            heldBack.removeAll()
        }
    }

    /// How a handed-over record ended.
    enum Outcome {
        /// In this committer's transaction, with its report.
        case committed(DeliveryReport)
        /// Applied by another process (a delivery or a flush that held the
        /// turn): known to be indexed, and nothing more.
        case appliedElsewhere
        /// The transaction failed: the record stays queued for the next try.
        case leftQueued
    }

    /// One transaction, if the lock and the turn are free: the deliveries
    /// still waiting (up to a share of the commit), then the oldest records
    /// (a backlog before what was handed over since), as many as
    /// `sizing` allows and as were prepared within `preparationBudget`.
    private func commitOnce(_ taken: Snapshot) -> Round {
        let applier = taken.applier
        if Database.isWriteLockHeld(databasePath: applier.settings.databasePath) { return .busy }
        guard let turn = applier.queue.tryBecomeFlusher() else { return .busy }
        defer { try? turn.close() }
        let started = Monotonic.seconds
        latestCommit = started
        let queued = Set(applier.queue.names())
        let handed = Set(taken.waiting).union(taken.answered)
        let backlog = applier.queue.oldestFirst(queued.filter { !handed.contains($0) })
        sawLockFree(backlog: backlog.count)
        let limit = sizing.limit
        let waiting = taken.waiting.filter { queued.contains($0) }.prefix(max(1, limit / Self.waitingShare))
        let taking = Set(waiting)
        let order = Array(waiting) + backlog + (taken.waiting + taken.answered).filter {
            queued.contains($0) && !taking.contains($0)
        }
        var (names, prepared) = applier.prepareBatch(order, known: taken.known, limit: limit,
                                                     until: started + Self.preparationBudget)
        guard !names.isEmpty else { return .committed([:]) }
        prepared.checkedAsMail = taken.checkedAsMail
        let database: Database
        do {
            database = try applier.mailbox.openDatabase()
        } catch {
            return .failed(DeliveryError(.temporary, "cannot open the notmuch database: \(error)"))
        }
        var timer = PhaseTimer(path: nil)
        let applied: (applied: [String], reports: [String: DeliveryReport])
        do {
            applied = try applier.applyQueue(in: database, prepared: prepared, timer: &timer,
                                             limit: names.count, preferred: names)
        } catch {
            return .failed(DeliveryError(.temporary, "cannot commit the queued deliveries: \(error)"))
        }
        sizing.learn(records: names.count, seconds: Monotonic.seconds - started)
        let backlogApplied = Set(backlog).intersection(applied.applied).count
        monitor.locked { self.backlog = max(0, backlog.count - backlogApplied) }
        return .committed(applied.reports)
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
            Pause.sleep(seconds: 0.01)
        }
    }
}
