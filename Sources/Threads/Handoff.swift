/// Passes values one at a time from one thread to another: `put` waits
/// until the previous value was taken, so at most one value waits.
package final class Handoff<Value>: @unchecked Sendable {
    private let monitor = Monitor()
    /// Guarded by `monitor`.
    private var slot: Value?

    package init() {}

    package func put(_ value: Value) {
        monitor.locked {
            while slot != nil { monitor.wait() }
            slot = value
            monitor.broadcast()
        }
    }

    package func take() -> Value {
        monitor.locked {
            while true {
                if let value = slot {
                    slot = nil
                    monitor.broadcast()
                    return value
                }
                monitor.wait()
            }
        }
    }
}
