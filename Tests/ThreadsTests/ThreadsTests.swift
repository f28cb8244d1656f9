import Synchronization
import Testing
import Threads

/// The hand-made thread primitives. Threads meet through the primitives
/// under test (a handoff, a monitor), never through sleeps.
@Suite struct MonitorTests {
    @Test func aWaitWithAPastDeadlineReturns() {
        let monitor = Monitor()
        monitor.locked { monitor.wait(until: Monotonic.seconds - 1) }
    }

    @Test func aWaitLoopEndsAtItsDeadlineWhenNothingChanges() {
        let monitor = Monitor()
        let deadline = Monotonic.seconds + 0.05
        var rounds = 0
        monitor.locked {
            while Monotonic.seconds < deadline {
                rounds += 1
                monitor.wait(until: deadline)
            }
        }
        #expect(rounds >= 1)
    }

    @Test func aBroadcastWakesAWaiterWithoutADeadline() {
        let monitor = Monitor()
        let state = Box()
        #expect(DetachedThread.start {
            monitor.locked {
                state.value = 42
                monitor.broadcast()
            }
        })
        let seen = monitor.locked {
            while state.value == 0 { monitor.wait() }
            return state.value
        }
        #expect(seen == 42)
    }
}

@Suite struct BackgroundCallTests {
    @Test func waitGivesTheResult() {
        let call = BackgroundCall { 6 * 7 }
        #expect(call.hasThread)
        #expect(call.wait() == 42)
    }

    @Test func aQuickResultComesWithinTheLimit() {
        let call = BackgroundCall { "opened" }
        #expect(call.wait(upTo: 60) == "opened")
    }

    /// A call still blocked when the limit runs out is left behind; its
    /// result, when it comes, is let go when its thread ends.
    @Test func aBlockedCallIsLeftBehindAndItsResultLetGo() {
        let release = Handoff<Bool>()
        let gone = Handoff<String>()
        let call = BackgroundCall { () -> Tracked in
            _ = release.take()
            return Tracked(onDeinit: { gone.put("result released") })
        }
        #expect(call.wait(upTo: 0.05) == nil)
        release.put(true)
        #expect(gone.take() == "result released")
    }

    @Test func aTakenResultLivesAsLongAsTheCallerKeepsIt() {
        let gone = Counter()
        let call = BackgroundCall { Tracked(onDeinit: { gone.add() }) }
        let result = call.wait(upTo: 60)
        #expect(result != nil)
        let released = gone.count
        #expect(released == 0)
        withExtendedLifetime(result) {}
    }
}

@Suite struct HandoffTests {
    @Test func valuesArriveInOrder() {
        let handoff = Handoff<Int>()
        #expect(DetachedThread.start { for value in 0..<1000 { handoff.put(value) } })
        let received = (0..<1000).map { _ in handoff.take() }
        #expect(received == Array(0..<1000))
    }

    /// `put` returns only once the slot was free: the producer is never
    /// more than one value ahead of what was taken.
    @Test func atMostOneValueWaits() {
        let handoff = Handoff<Int>()
        let put = Counter()
        #expect(DetachedThread.start {
            for value in 0..<500 {
                handoff.put(value)
                put.add()
            }
        })
        var ahead = 0
        for taken in 1...500 {
            _ = handoff.take()
            ahead = max(ahead, put.count - taken)
        }
        #expect(ahead <= 1)
    }
}

@Suite struct PauseTests {
    @Test func aPauseEnds() {
        Pause.sleep(seconds: 0)
        Pause.sleep(seconds: 0.001)
        Pause.sleep(seconds: -1)
    }
}

/// A value shared between threads under a monitor's lock.
private final class Box: @unchecked Sendable {
    var value = 0
}

private final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func add() { value.add(1, ordering: .sequentiallyConsistent) }
    var count: Int { value.load(ordering: .sequentiallyConsistent) }
}

private final class Tracked: @unchecked Sendable {
    let onDeinit: @Sendable () -> Void
    init(onDeinit: @escaping @Sendable () -> Void) { self.onDeinit = onDeinit }
    deinit { onDeinit() }
}
