#if canImport(Glibc)
import Glibc
#endif

/// Passes values one at a time from one thread to another: `put` waits
/// until the previous value was taken, so at most one value waits.
final class Handoff<Value>: @unchecked Sendable {
    private var slot: Value?
    /// Heap-allocated: a semaphore must not move while threads use it.
    private let filled = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    private let emptied = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)

    init() {
        sem_init(filled, 0, 0)
        sem_init(emptied, 0, 1)
    }

    deinit {
        sem_destroy(filled)
        sem_destroy(emptied)
        filled.deallocate()
        emptied.deallocate()
    }

    func put(_ value: Value) {
        while sem_wait(emptied) != 0 {}
        slot = value
        sem_post(filled)
    }

    func take() -> Value {
        while sem_wait(filled) != 0 {}
        let value = slot!
        slot = nil
        sem_post(emptied)
        return value
    }
}
