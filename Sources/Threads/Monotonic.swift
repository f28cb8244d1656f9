import Glibc

/// Seconds on the monotonic clock, for deadlines and durations. A plain
/// Double, not a Swift `Clock`: deadlines here are compared, and handed to
/// `Monitor.wait(until:)`, as seconds.
public enum Monotonic {
    public static var seconds: Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1_000_000_000
    }

    public static var milliseconds: Double { seconds * 1000 }
}

/// Blocks the calling thread for a while: a retry's pause, never a way to
/// wait for another thread (that is `Monitor`'s job).
public enum Pause {
    public static func sleep(seconds: Double) {
        guard seconds > 0 else { return }
        let whole = seconds.rounded(.down)
        var asked = timespec(tv_sec: Int(whole), tv_nsec: Int((seconds - whole) * 1_000_000_000))
        var left = timespec()
        // A signal handler (the watcher's) cuts a sleep short: sleep the rest.
        while nanosleep(&asked, &left) != 0, errno == EINTR { asked = left }
    }
}
