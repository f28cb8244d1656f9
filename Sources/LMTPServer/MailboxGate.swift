import Synchronization

/// Deliveries under way per mailbox, so that one mailbox cannot take every
/// worker thread: a mailbox whose file or lock hangs a delivery would
/// otherwise have each retry hang another thread until none is left for
/// anyone. At most `limit` deliveries (and RCPT checks) to one mailbox run
/// at once; and once one of them has overrun its deadline, the mailbox
/// takes no more until that one has come back: a further try gets 451 at
/// once instead of another stuck thread.
final class MailboxGate: Sendable {
    private struct Count {
        var running = 0
        var overdue = 0
    }

    private let counts = Mutex<[String: Count]>([:])
    let limit: Int

    init(limit: Int) {
        self.limit = max(limit, 1)
    }

    /// One delivery's place in its mailbox's count; given back by `leave`.
    final class Ticket: Sendable {
        let mailbox: String
        /// 0 running, 1 overdue, 2 left: changed only under the gate's lock.
        fileprivate let state = Atomic<Int>(0)
        fileprivate init(mailbox: String) { self.mailbox = mailbox }
    }

    /// Why a mailbox takes no delivery now.
    enum Refusal: Error {
        case busy(Int)
        case stuck
    }

    func enter(_ mailbox: String) -> Result<Ticket, Refusal> {
        counts.withLock { counts in
            var count = counts[mailbox] ?? Count()
            if count.overdue > 0 { return .failure(.stuck) }
            if count.running >= limit { return .failure(.busy(limit)) }
            count.running += 1
            counts[mailbox] = count
            return .success(Ticket(mailbox: mailbox))
        }
    }

    /// Deliveries past their deadline that have not come back.
    var overdueCount: Int {
        counts.withLock { $0.values.reduce(0) { $0 + $1.overdue } }
    }

    /// The delivery has come back, in time or not.
    func leave(_ ticket: Ticket) {
        counts.withLock { counts in
            let wasOverdue = ticket.state.exchange(2, ordering: .relaxed) == 1
            guard var count = counts[ticket.mailbox] else { return }
            count.running -= 1
            if wasOverdue { count.overdue -= 1 }
            counts[ticket.mailbox] = count.running > 0 ? count : nil
        }
    }

    /// The delivery is past its deadline and still running.
    func markOverdue(_ ticket: Ticket) {
        counts.withLock { counts in
            guard ticket.state.load(ordering: .relaxed) == 0, var count = counts[ticket.mailbox] else { return }
            ticket.state.store(1, ordering: .relaxed)
            count.overdue += 1
            counts[ticket.mailbox] = count
        }
    }
}
