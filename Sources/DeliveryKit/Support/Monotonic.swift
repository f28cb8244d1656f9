#if canImport(Glibc)
import Glibc
#endif

/// Seconds on the monotonic clock, for deadlines and durations. A plain
/// Double, not a Swift `Clock`: deadlines here are compared and handed to
/// pthread_cond_timedwait as seconds.
public enum Monotonic {
    public static var seconds: Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1_000_000_000
    }

    public static var milliseconds: Double { seconds * 1000 }
}
