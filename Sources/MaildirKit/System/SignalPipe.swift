import Synchronization
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

private let pipeWriteEnd = Atomic<Int32>(-1)
private let received = Atomic<UInt64>(0)

/// Signals turned into a readable descriptor (the self-pipe), so that the
/// watcher's one poll wakes for them as for inotify, and acts on them
/// between transactions, never inside one.
package enum SignalPipe {
    /// The signals a long-running command acts on.
    package enum Signal: Int32, Sendable {
        case hangUp = 1, interrupt = 2, terminate = 15
    }

    /// Has the process ignore `signal` (SIG_IGN), for a caller that hears
    /// of it another way (a dispatch source).
    package static func ignore(_ signal: Signal) {
        _ = Glibc.signal(signal.rawValue, SIG_IGN)
    }

    /// Installs the handlers; returns the descriptor to poll.
    package static func install(_ signals: [Signal]) throws(Errno) -> Int32 {
        var ends: [Int32] = [0, 0]
        // pipe2 is declared only under _GNU_SOURCE: set the flags after.
        guard pipe(&ends) == 0 else { throw Errno(rawValue: errno) }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        pipeWriteEnd.store(ends[1], ordering: .sequentiallyConsistent)
        for signal in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                received.bitwiseOr(UInt64(1) << UInt64(number), ordering: .sequentiallyConsistent)
                var byte: UInt8 = 1
                // Async-signal-safe; a full pipe already says "look".
                _ = write(pipeWriteEnd.load(ordering: .sequentiallyConsistent), &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(signal.rawValue, &action, nil)
        }
        return ends[0]
    }

    /// The signals received since the last call; empties the pipe.
    package static func take(from descriptor: Int32) -> Set<Signal> {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(descriptor, &buffer, buffer.count) > 0 {}
        let bits = received.exchange(0, ordering: .sequentiallyConsistent)
        return Set((1..<64).filter { bits & (UInt64(1) << UInt64($0)) != 0 }.compactMap { Signal(rawValue: Int32($0)) })
    }
}

/// poll(2) on a few descriptors for input.
package enum InputWait {
    /// Waits until one of `descriptors` is readable or `timeout`
    /// milliseconds pass (-1: no limit). A signal ends the wait early,
    /// which is not a failure: the caller looks at what there is.
    package static func wait(for descriptors: [Int32], timeout: Int32) throws(Errno) {
        var entries = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        if poll(&entries, nfds_t(entries.count), timeout) < 0 && errno != EINTR { throw Errno(rawValue: errno) }
    }
}
