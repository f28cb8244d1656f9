#if canImport(Glibc)
import Glibc
#endif

/// A call started at once on a thread of its own, its result waited for
/// later, within a time limit or not: a delivery opens the database while
/// its file is being synced (libnotmuch's lock wait has no timeout of its
/// own, so a thread left waiting is the bounded wait); an import reads its
/// archives while it indexes.
final class BackgroundCall<T> {
    private let box: ResultBox<T>
    private var thread = pthread_t()
    /// False when no thread could be started: the call then runs on the
    /// caller's thread, inside `wait`.
    let hasThread: Bool

    init(_ body: @escaping @Sendable () -> T) {
        box = ResultBox<T>(body)
        hasThread = pthread_create(&thread, nil, { raw in
            Unmanaged<Runnable>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, Unmanaged<Runnable>.passRetained(box).toOpaque()) == 0
        if !hasThread { Unmanaged<Runnable>.passUnretained(box).release() }
    }

    /// The result, however long it takes. Called once (or `wait(upTo:)`).
    func wait() -> T {
        guard hasThread else { return box.body() }
        while sem_wait(box.done) != 0 {}
        pthread_join(thread, nil)
        return box.takeResult()
    }

    /// The result, or nil when `seconds` ran out first: the thread is then
    /// left running, and must be left alone. Called once. The box lets go
    /// of the result, so that what it owns (an open database) goes when
    /// the caller is done with it.
    func wait(upTo seconds: Double) -> T? {
        guard hasThread else { return box.body() }
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let whole = seconds.rounded(.down)
        deadline.tv_sec += Int(whole)
        deadline.tv_nsec += Int((seconds - whole) * 1_000_000_000)
        if deadline.tv_nsec >= 1_000_000_000 { deadline.tv_sec += 1; deadline.tv_nsec -= 1_000_000_000 }
        while sem_timedwait(box.done, &deadline) != 0 {
            if errno == ETIMEDOUT { pthread_detach(thread); return nil }
        }
        pthread_join(thread, nil)
        return box.takeResult()
    }
}

/// A class, not a protocol: the thread's entry point then needs no runtime
/// conformance lookup to call it.
private class Runnable: @unchecked Sendable {
    func run() {}
}

/// Carries a body and its result between threads; the semaphore orders them.
private final class ResultBox<T>: Runnable, @unchecked Sendable {
    let body: () -> T
    var result: T?
    /// Heap-allocated: a semaphore must not move while threads use it.
    let done = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)

    init(_ body: @escaping () -> T) {
        self.body = body
        super.init()
        sem_init(done, 0, 0)
    }

    deinit {
        sem_destroy(done)
        done.deallocate()
    }

    func takeResult() -> T {
        defer { result = nil }
        return result!
    }

    override func run() {
        result = body()
        sem_post(done)
    }
}

/// A thread nobody waits for: it runs `body` and ends (a committer that
/// stops once nothing is left to commit).
enum DetachedThread {
    /// False when no thread could be started.
    static func start(_ body: @escaping @Sendable () -> Void) -> Bool {
        let box = DetachedBody(body)
        var thread = pthread_t()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let started = pthread_create(&thread, &attributes, { raw in
            Unmanaged<Runnable>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, Unmanaged<Runnable>.passRetained(box).toOpaque()) == 0
        if !started { Unmanaged<Runnable>.passUnretained(box).release() }
        return started
    }
}

private final class DetachedBody: Runnable, @unchecked Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    override func run() { body() }
}
