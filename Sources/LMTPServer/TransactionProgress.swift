import Dispatch
import DeliveryKit
import MaildirKit
import Synchronization
import Threads

/// How far a transaction's worker thread has got, shared with the
/// deadline that may stop waiting for it (a mailbox whose file or lock
/// hangs the thread). The line between the two is each recipient's claim:
/// the worker claims a recipient once its message is written and before it
/// is queued, from which point the message will be stored whatever happens;
/// the deadline, once passed, lets no further claim through. So a
/// recipient the deadline answers 451 is never stored later by the stuck
/// thread (its written file is removed when the thread comes back), and a
/// claimed one is answered from its own outcome.
final class TransactionProgress: Sendable {
    private struct State {
        var abandoned = false
        var stagingDone = false
        var claimed: Set<Int> = []
        var outcomes: [Int: Result<Deliverer.Staged, DeliveryError>] = [:]
        /// The mailbox count of the recipient being staged now.
        var current: MailboxGate.Ticket?
    }

    private let state = Mutex(State())
    private let stored = DispatchSemaphore(value: 0)

    /// The worker starts on a recipient; false once the deadline has passed.
    func begin(_ ticket: MailboxGate.Ticket) -> Bool {
        state.withLock { state in
            guard !state.abandoned else { return false }
            state.current = ticket
            return true
        }
    }

    /// The worker is done with that recipient's staging.
    func end() {
        state.withLock { $0.current = nil }
    }

    /// Whether the deadline has passed (asked before the message is made
    /// visible, so that a given-up delivery mostly never shows at all).
    var isAbandoned: Bool { state.withLock { $0.abandoned } }

    /// The worker may queue the message for recipient `index`: false once
    /// the deadline has passed (it then removes what it wrote).
    func claim(_ index: Int) -> Bool {
        state.withLock { state in
            guard !state.abandoned else { return false }
            state.claimed.insert(index)
            return true
        }
    }

    /// What staging recipient `index` came to.
    func store(_ index: Int, _ outcome: Result<Deliverer.Staged, DeliveryError>) {
        let wanted = state.withLock { state in
            guard state.claimed.contains(index) else { return false }
            state.outcomes[index] = outcome
            return true
        }
        if wanted { stored.signal() }
    }

    /// The worker has staged every recipient: true when it goes on to wait
    /// for the commits and answer; false when the deadline answered.
    func finishStaging() -> Bool {
        state.withLock { state in
            state.stagingDone = true
            return !state.abandoned
        }
    }

    /// The deadline: nil when the worker is past staging (its remaining
    /// wait for the commits is bounded, and it answers); otherwise the
    /// recipients claimed so far, and the mailbox count of the one it is
    /// stuck on.
    func abandon() -> (claimed: Set<Int>, stuck: MailboxGate.Ticket?)? {
        state.withLock { state in
            guard !state.stagingDone else { return nil }
            state.abandoned = true
            return (state.claimed, state.current)
        }
    }

    /// The outcomes of `claimed` recipients, waiting for them until
    /// `deadline` (Monotonic seconds): between a claim and its outcome there
    /// is only the queueing of one record.
    func outcomes(of claimed: Set<Int>, until deadline: Double) -> [Int: Result<Deliverer.Staged, DeliveryError>] {
        while true {
            let known = state.withLock { $0.outcomes }
            let left = deadline - Monotonic.seconds
            if claimed.isSubset(of: Set(known.keys)) || left <= 0 { return known }
            _ = stored.wait(timeout: .now() + left)
        }
    }
}
