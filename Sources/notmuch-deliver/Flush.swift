import ArgumentParser
import DeliveryKit
import MaildirKit

struct Flush: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Index the deliveries queued while the database was locked or could not be opened.",
        discussion: "Run it from a post-new hook, or after fixing the database.")

    @OptionGroup var notmuch: NotmuchConfigArguments

    @Option(help: ArgumentHelp("Seconds to wait for the write lock.", valueName: "seconds"))
    var lockTimeout: Double = 60

    @Flag(name: [.short, .long], help: "Also log to standard error, and say how many were applied.")
    var verbose = false

    @Flag(help: "List the deliveries set aside (their record could not be applied), with the reasons; flush nothing.")
    var list = false

    @Flag(help: "Put set-aside deliveries back into the queue, then flush.")
    var retry = false

    @Flag(help: "Forget set-aside deliveries; their files stay in the maildir, for 'notmuch new'.")
    var drop = false

    @Argument(help: ArgumentHelp("With --retry or --drop: which set-aside deliveries (their path or entry, as --list "
                                 + "shows them); default: all.", valueName: "entry"))
    var entries: [String] = []

    func validate() throws {
        if [list, retry, drop].filter({ $0 }).count > 1 {
            throw ValidationError("--list, --retry and --drop exclude each other")
        }
        if !entries.isEmpty && !(retry || drop) {
            throw ValidationError("entries are given only with --retry or --drop")
        }
        if !lockTimeout.isFinite || lockTimeout < 0 || lockTimeout > DeliveryOptions.maximumLockTimeout {
            throw ValidationError("--lock-timeout must be between 0 and \(Int(DeliveryOptions.maximumLockTimeout)) seconds")
        }
    }

    func run() throws {
        DeliveryLog.bootstrap(verbose: verbose)
        var options = DeliveryOptions()
        notmuch.apply(to: &options)
        options.lockTimeout = lockTimeout
        do {
            if list || retry || drop {
                let queue = try Delivery.queue(options)
                if list { return listSetAside(queue) }
                try settleSetAside(queue)
                if drop { return }
            }
            let count = try Delivery.flush(options)
            if verbose { complain("flushed \(count) queued deliveries") }
            let setAside = try Delivery.queue(options).setAsideRecords().count
            if setAside > 0 {
                complain("\(setAside) queued deliveries are set aside; see 'notmuch-deliver flush --list'")
            }
        } catch {
            complain(error.message)
            // After a lock timeout a thread still waits in libnotmuch: leave
            // without running exit handlers under its feet.
            ProcessEnvironment.exitImmediately(error.exitStatus.rawValue)
        }
    }
}

extension Flush {
    /// One paragraph per set-aside delivery: its file, since when, why.
    func listSetAside(_ queue: PendingQueue) {
        let records = queue.setAsideRecords()
        if records.isEmpty { print("no deliveries are set aside"); return }
        for record in records {
            print("\(record.path ?? "(unreadable record)")  set aside \(record.sinceDescription)")
            print("    reason: \(record.reason)")
            print("    entry: \(record.name)")
        }
    }

    /// `--retry` or `--drop`, on the entries named (by path or entry name), or all.
    func settleSetAside(_ queue: PendingQueue) throws(DeliveryError) {
        let records = queue.setAsideRecords()
        var chosen: [String] = []
        for entry in entries {
            let matching = records.filter { $0.name == entry || $0.path == entry }
            guard !matching.isEmpty else {
                throw DeliveryError(.usage, "no set-aside delivery '\(entry)'; see 'notmuch-deliver flush --list'")
            }
            chosen += matching.map(\.name)
        }
        if entries.isEmpty { chosen = records.map(\.name) }
        do {
            if retry { try queue.retrySetAside(chosen) } else { try queue.dropSetAside(chosen) }
        } catch {
            throw DeliveryError(.temporary, "cannot \(retry ? "requeue" : "drop") set-aside deliveries: \(error)")
        }
        if verbose { complain("\(retry ? "requeued" : "dropped") \(chosen.count) set-aside deliveries") }
    }
}
