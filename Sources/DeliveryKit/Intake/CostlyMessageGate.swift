import MailParsing
import SystemPackage
import Threads
import MaildirKit

/// How many costly messages a process parses (GMime, for the email check)
/// and indexes (libnotmuch) at once. Both cost memory in proportion to the
/// message, up to hundreds of times its size for a pathological one (many
/// header fields or MIME parts, a body of distinct words), and a server
/// runs one delivery per connection and one commit per database in
/// parallel: without a bound, four 10 MB messages at once took 3.8 GB.
/// Costly messages share a budget of their estimated cost
/// (`MessageLimits.Scan`'s `parsingCost` and `indexingCost`: what they may
/// cost at worst, not what they usually do); one over the whole budget runs
/// alone. Cheap messages never wait, so a costly one does not hold up
/// ordinary mail.
///
/// After a costly message, the memory glibc's allocator keeps free is given
/// back to the system (`malloc_trim`).
final class CostlyMessageGate: @unchecked Sendable {
    /// A message estimated to cost this much is costly: to index, one of
    /// 32 KiB; to parse, one of 4 MiB, or of 8,000 header fields, or of
    /// 2,000 MIME parts.
    static let costlyFrom: Int64 = 4 << 20
    /// The estimated cost of the costly messages parsed or indexed at once.
    static let budget: Int64 = 256 << 20

    static let shared = CostlyMessageGate()

    private let monitor = Monitor()
    /// Guarded by `monitor`.
    private var admitted: Int64 = 0

    /// Runs `body`, which indexes the message file at `path`, once its
    /// share of the budget is free.
    func admitting<T>(_ path: FilePath, _ body: () throws -> T) rethrows -> T {
        // Cheap to read again: the file was just written or checked.
        let cost = MessageLimits.scan(ofFile: path.string)?.indexingCost ?? 0
        return try admitting(cost: cost, body)
    }

    /// Runs `body`, which parses or indexes a message estimated to cost
    /// `cost` bytes, once that share of the budget is free.
    func admitting<T>(cost: Int64, _ body: () throws -> T) rethrows -> T {
        guard cost >= Self.costlyFrom else { return try body() }
        let share = min(cost, Self.budget)
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
            ProcessMemory.giveBackFreePages()
        }
        return try body()
    }

    /// Gives back what a transaction freed on closing the database (Xapian
    /// keeps a document's postings until its commit), and what the email
    /// checks of small but costly messages freed (a few thousand header
    /// lines or MIME parts): every arena's free pages. Far cheaper than the
    /// commit's fsyncs.
    func trimAfterCommit() {
        ProcessMemory.giveBackFreePages()
    }
}
