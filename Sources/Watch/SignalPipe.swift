import Synchronization
#if canImport(Glibc)
import Glibc
#endif

private let pipeWriteEnd = Atomic<Int32>(-1)
private let received = Atomic<UInt64>(0)

/// Signals turned into a readable descriptor (the self-pipe), so that the
/// watcher's one poll wakes for them as for inotify, and acts on them
/// between transactions, never inside one.
enum SignalPipe {
    /// Installs the handlers; returns the descriptor to poll, nil if no pipe.
    static func install(_ signals: [Int32]) -> Int32? {
        var ends: [Int32] = [0, 0]
        // pipe2 is declared only under _GNU_SOURCE: set the flags after.
        guard pipe(&ends) == 0 else { return nil }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        pipeWriteEnd.store(ends[1], ordering: .sequentiallyConsistent)
        for number in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                received.bitwiseOr(UInt64(1) << UInt64(number), ordering: .sequentiallyConsistent)
                var byte: UInt8 = 1
                // Async-signal-safe; a full pipe already says "look".
                _ = write(pipeWriteEnd.load(ordering: .sequentiallyConsistent), &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(number, &action, nil)
        }
        return ends[0]
    }

    /// Whether SIGTERM or SIGINT came and was not taken yet: a wait for
    /// the write lock gives up for it.
    static var isStopRequested: Bool {
        let bits = received.load(ordering: .sequentiallyConsistent)
        return bits & (UInt64(1) << UInt64(SIGTERM) | UInt64(1) << UInt64(SIGINT)) != 0
    }

    /// The signals received since the last call; empties the pipe.
    static func take(from descriptor: Int32) -> Set<Int32> {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(descriptor, &buffer, buffer.count) > 0 {}
        let bits = received.exchange(0, ordering: .sequentiallyConsistent)
        return Set((1..<64).filter { bits & (UInt64(1) << UInt64($0)) != 0 }.map { Int32($0) })
    }
}
