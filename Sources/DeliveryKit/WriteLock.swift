import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// libnotmuch opens the database with Xapian's retry lock, so a writer
/// waits for as long as another holds the lock. These give a delivery a
/// bounded wait instead.
public enum WriteLock {
    /// Xapian's lock file for a database at `databasePath`, as libnotmuch
    /// chooses it: `xapian/` when present, else `.notmuch/xapian/`.
    public static func lockFile(databasePath: String) -> FilePath {
        let direct = FilePath(databasePath).appending("xapian")
        if FileSystem.kind(of: direct) == .directory { return direct.appending("flintlock") }
        return FilePath(databasePath).appending(".notmuch").appending("xapian").appending("flintlock")
    }

    /// Whether some process holds the write lock. Xapian takes an OFD
    /// lock on the lock file; F_OFD_GETLK sees it without taking it.
    public static func isHeld(_ lockFile: FilePath) -> Bool {
        let fd = lockFile.withPlatformString { open($0, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var probe = flock()
        probe.l_type = Int16(F_WRLCK)
        probe.l_whence = Int16(SEEK_SET)
        probe.l_start = 0
        probe.l_len = 0
        let ofdGetLock: Int32 = 36  // F_OFD_GETLK; a macro Swift does not import
        guard fcntl(fd, ofdGetLock, &probe) == 0 else { return false }
        return probe.l_type != Int16(F_UNLCK)
    }

    /// Runs `body` (which may block in the lock wait) on its own thread and
    /// waits at most `seconds`. Nil when the time ran out: the thread is then
    /// abandoned still waiting, and the process must end without touching the
    /// database again (its OFD lock, if it ever gets one, ends with the process).
    public static func withTimeout<T>(_ seconds: Double, _ body: @escaping @Sendable () -> T) -> T? {
        BoundedWait(body).wait(upTo: seconds)
    }
}

/// A body started at once on its own thread, and waited for later within a
/// time limit: a delivery opens the database while its file is being synced.
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
