#if canImport(Glibc)
import Glibc
#endif

/// A body started at once on its own thread and waited for later, within a
/// time limit or not: a delivery opens the database while its file is being
/// synced (libnotmuch's lock wait has no timeout of its own, so a thread
/// left waiting is the bounded wait); an import reads its archives while
/// it indexes.
public final class BoundedWait<T> {
    private let box: ResultBox<T>
    private var thread = pthread_t()
    /// The thread could not be started: the body ran on the caller's.
    private var inline: T?

    public init(_ body: @escaping @Sendable () -> T) {
        box = ResultBox<T>(body)
        let started = pthread_create(&thread, nil, { raw in
            Unmanaged<Runnable>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, Unmanaged<Runnable>.passRetained(box).toOpaque())
        if started != 0 {
            Unmanaged<Runnable>.passUnretained(box).release()
            inline = body()
        }
    }

    /// The body's result, however long it takes. Called once (or `wait(upTo:)`).
    public func wait() -> T {
        if let inline { return inline }
        while sem_wait(box.done) != 0 {}
        pthread_join(thread, nil)
        return box.result!
    }

    /// The body's result, or nil when `seconds` ran out first: the thread is
    /// then left running, and must be left alone. Called once.
    public func wait(upTo seconds: Double) -> T? {
        if let inline { return inline }
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
        return box.result
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

    override func run() {
        result = body()
        sem_post(done)
    }
}
