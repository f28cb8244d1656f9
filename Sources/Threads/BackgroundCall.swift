import Glibc

/// A call started at once on a thread of its own, its result waited for
/// later, within a time limit or not: a delivery opens the database while
/// its file is being synced (libnotmuch's lock wait has no timeout of its
/// own, so a thread left waiting is the bounded wait); an import reads its
/// archives while it indexes. The standard library starts no threads, so
/// this does, with pthreads.
package final class BackgroundCall<T> {
    private let call: PendingCall<T>
    private var thread = pthread_t()
    /// False when no thread could be started: the call then runs on the
    /// caller's thread, inside `wait`.
    package let hasThread: Bool

    package init(_ body: @escaping @Sendable () -> T) {
        call = PendingCall<T>(body)
        hasThread = startThread(&thread, detached: false, call)
    }

    /// The result, however long it takes. Called once (or `wait(upTo:)`).
    package func wait() -> T {
        guard hasThread else { return call.body() }
        _ = call.waitForResult(until: .infinity)
        pthread_join(thread, nil)
        return call.takeResult()
    }

    /// The result, or nil when `seconds` ran out first: the thread is then
    /// left running, and must be left alone. Called once. The call lets go
    /// of the result, so that what it owns (an open database) goes when
    /// the caller is done with it; a result that comes after the caller
    /// gave up goes as soon as it comes (the database closes).
    package func wait(upTo seconds: Double) -> T? {
        guard hasThread else { return call.body() }
        guard call.waitForResult(until: Monotonic.seconds + max(seconds, 0)) else {
            pthread_detach(thread)
            return nil
        }
        pthread_join(thread, nil)
        return call.takeResult()
    }
}

/// A thread nobody waits for: it runs `body` and ends (a committer that
/// stops once nothing is left to commit).
package enum DetachedThread {
    /// False when no thread could be started.
    package static func start(_ body: @escaping @Sendable () -> Void) -> Bool {
        var thread = pthread_t()
        return startThread(&thread, detached: true, DetachedBody(body))
    }
}

/// Starts a thread running `runnable.run()`; the thread owns `runnable`
/// until it ends. False when none could be started.
private func startThread(_ thread: inout pthread_t, detached: Bool, _ runnable: Runnable) -> Bool {
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    if detached { pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED)) }
    let started = pthread_create(&thread, &attributes, { raw in
        Unmanaged<Runnable>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
    }, Unmanaged<Runnable>.passRetained(runnable).toOpaque()) == 0
    if !started { Unmanaged<Runnable>.passUnretained(runnable).release() }
    return started
}

/// A class, not a protocol: the thread's entry point then needs no runtime
/// conformance lookup to call it.
private class Runnable: @unchecked Sendable {
    func run() {}
}

/// Carries a body and its result between threads; the monitor orders them.
private final class PendingCall<T>: Runnable, @unchecked Sendable {
    let body: () -> T
    private let monitor = Monitor()
    /// Guarded by `monitor`.
    private var result: T?
    private var finished = false
    /// The caller stopped waiting: a result that comes later is not kept.
    private var abandoned = false

    init(_ body: @escaping () -> T) {
        self.body = body
    }

    override func run() {
        let value = body()
        let kept = monitor.locked {
            finished = true
            monitor.broadcast()
            if !abandoned { result = value }
            return !abandoned
        }
        // Nobody will take it: it goes here, on this thread, and now.
        if !kept { withExtendedLifetime(value) {} }
    }

    /// Whether the body finished before `deadline` (Monotonic seconds).
    /// When it did not, the call is abandoned: its result, when it comes,
    /// is let go at once rather than kept for nobody.
    func waitForResult(until deadline: Double) -> Bool {
        monitor.locked {
            while !finished {
                if deadline.isFinite, Monotonic.seconds >= deadline {
                    abandoned = true
                    return false
                }
                monitor.wait(until: deadline)
            }
            return true
        }
    }

    /// Called once, after `waitForResult` said true.
    func takeResult() -> T {
        monitor.locked {
            guard let value = result else { preconditionFailure("BackgroundCall's result taken twice") }
            result = nil
            return value
        }
    }
}

private final class DetachedBody: Runnable, @unchecked Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    override func run() { body() }
}
