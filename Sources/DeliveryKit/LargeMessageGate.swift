internal import CPosix
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// How many large messages a process parses (GMime, for the email check)
/// and indexes (libnotmuch) at once. Both cost memory in proportion to the
/// message, up to tens of times its size for a pathological one (many MIME
/// parts, a body of distinct words), and a server runs one delivery per
/// connection and one commit per database in parallel: without a bound,
/// four 10 MB messages at once took 3.8 GB. Large messages share a budget
/// of bytes; one larger than the whole budget runs alone. Small messages
/// never wait, so a large one does not hold up ordinary mail.
///
/// After a large message, the memory glibc's allocator keeps free is given
/// back to the system (`malloc_trim`): otherwise the server's resident size
/// stays at its highest point, arena by arena, for good.
final class LargeMessageGate: @unchecked Sendable {
    /// A message of at least this many bytes is large.
    static let largeFrom: Int64 = 1 << 20
    /// The bytes of large messages being parsed or indexed at once.
    static let budget: Int64 = 32 << 20

    static let shared = LargeMessageGate()

    private let monitor = Monitor()
    /// Guarded by `monitor`.
    private var admitted: Int64 = 0

    /// Runs `body`, which parses or indexes the message file at `path`,
    /// once the file's share of the budget is free.
    func admitting<T>(_ path: FilePath, _ body: () throws -> T) rethrows -> T {
        let size = (try? Stat(path))?.size ?? 0
        guard size >= Self.largeFrom else { return try body() }
        let share = min(size, Self.budget)
        monitor.locked {
            while admitted + share > Self.budget { monitor.wait(until: Monotonic.seconds + 1) }
            admitted += share
        }
        defer {
            monitor.locked {
                admitted -= share
                monitor.broadcast()
            }
            // What GMime and libnotmuch freed goes back to the system.
            cposix_malloc_trim()
        }
        return try body()
    }

    /// Gives back what a transaction freed on closing the database (Xapian
    /// keeps a document's postings until its commit), and what the email
    /// checks of small but costly messages freed (a few thousand header
    /// lines or MIME parts): every arena's free pages. Far cheaper than the
    /// commit's fsyncs.
    func trimAfterCommit() {
        cposix_malloc_trim()
    }
}
