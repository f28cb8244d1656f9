import Glibc

/// A mutex and its condition variable: threads that wait for a state
/// another thread changes (a delivery waiting for the commit that takes its
/// message along). Hand-made because the standard library's
/// `Synchronization.Mutex` cannot put a thread to sleep until another one
/// signals. The pthread objects live on the heap: they must not move.
package final class Monitor: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    package init() {
        pthread_mutex_init(mutex, nil)
        // Timed waits measure CLOCK_MONOTONIC (`Monotonic`): a clock step
        // must not end or stretch a wait.
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    package func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Called with the mutex held (inside `locked`): releases it until a
    /// `broadcast` or until `deadline` (Monotonic seconds; infinity: no
    /// limit), then takes it again. It may also return early for no
    /// reason, as any condition wait: callers wait in a loop on their state.
    package func wait(until deadline: Double = .infinity) {
        guard deadline.isFinite else {
            pthread_cond_wait(condition, mutex)
            return
        }
        let whole = deadline.rounded(.down)
        var time = timespec(tv_sec: Int(whole), tv_nsec: Int((deadline - whole) * 1_000_000_000))
        pthread_cond_timedwait(condition, mutex, &time)
    }

    package func broadcast() {
        pthread_cond_broadcast(condition)
    }
}
