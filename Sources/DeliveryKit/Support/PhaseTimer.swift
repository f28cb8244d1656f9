import MaildirKit
import Threads

/// Where one delivery's time goes, for `make bench`: set
/// NOTMUCH_DELIVER_TIMINGS=FILE and each delivery appends one JSON line of
/// phase durations in milliseconds. Costs one clock read per phase.
struct PhaseTimer {
    private var last: Double
    private var phases: [(String, Double)] = []
    private let path: String?

    init(path: String?) {
        self.path = path
        last = Monotonic.milliseconds
    }


    mutating func mark(_ phase: String) {
        guard path != nil else { return }
        let time = Monotonic.milliseconds
        phases.append((phase, time - last))
        last = time
    }

    /// Appends the line; a timing file that cannot be written is ignored.
    func write() {
        guard let path, !phases.isEmpty else { return }
        let fields = phases.map { "\"\($0.0)\": \(($0.1 * 1000).rounded() / 1000)" }.joined(separator: ", ")
        let line = "{" + fields + "}\n"
        FileSystem.append(line, toFileAt: path)
    }
}
