import DeliveryKit
import Logging
import Notmuch
import Threads
import SystemPackage
import MaildirKit

/// The long-lived watcher: inotify on every directory of the mail tree,
/// events gathered into bursts (a short quiet window), each burst one
/// transaction. A file that appears is indexed; a file that goes is
/// removed only after a grace period, since a sync tool's move between
/// folders arrives as a deletion and an addition in either order, and a
/// message whose file comes back in time keeps its tags. A rename seen
/// whole (both halves in one burst) needs no grace.
public final class Watcher {
    public struct Timing {
        /// A burst ends after this long without events.
        public var quietWindow = 0.05
        /// ... or after only `quietForFew` while it has no more than
        /// `fewEvents` events: a lone arrival (one event) or flag change (a
        /// rename: two) is searchable at once, while a sync's stream of
        /// files, whose next events come during that first commit, gathers
        /// into bursts that wait the whole window and share commits.
        public var fewEvents = 2
        public var quietForFew = 0.002
        /// ... or this long after its first event, however busy.
        public var longestBurst = 1.0
        /// How long a removed file's message waits for the file to come back.
        public var grace = 30.0
        /// How often folders left unwatched (no inotify watches left) are scanned.
        public var unwatchedScanInterval = 60.0
        /// How long to wait before trying a commit again when another
        /// writer held the lock past the lock timeout.
        public var retryAfterLock = 1.0
        public init() {}
    }

    private var reconciler: Reconciler
    private let options: DeliveryOptions
    private let timing: Timing
    private let inotify: Inotify
    private let log = Logger(label: "notmuch-deliver")

    private var watches: [Int32: String] = [:]
    private var watchOf: [String: Int32] = [:]
    /// Folders no watch could be had for; scanned every `unwatchedScanInterval`.
    private var unwatched = Set<String>()
    private var saidNoWatchesLeft = false

    /// Files with events since the last commit.
    private var touched = Set<String>()
    /// Directories whose entries changed, and new directories to scan.
    private var changedDirectories = Set<String>()
    private var newDirectories = Set<String>()
    /// Directories moved away or deleted, waiting out the grace period.
    private var goneDirectories: [String: Double] = [:]
    /// Removed files waiting out the grace period: path → when due.
    private var pendingRemovals: [String: Double] = [:]
    /// Renames seen whole, old name to new: the old name goes without
    /// grace while the new one is there to be added first.
    private var renamedAway: [String: String] = [:]
    /// Created and being written (a writer in new/ or cur/ instead of tmp/).
    private var created = Set<String>()
    private var writing = Set<String>()
    private var fullScanNeeded = false

    private var firstEvent: Double?
    private var lastEvent = 0.0
    /// Events in the burst so far.
    private var eventsInBurst = 0
    private var retryAt: Double?
    /// When directories whose mtime was the current second are looked at again.
    private var settleAt: Double?
    private var nextUnwatchedScan: Double?

    public init(options: DeliveryOptions, timing: Timing = Timing()) throws(WatchError) {
        self.options = options
        self.timing = timing
        reconciler = try Reconciler(options: options)
        do { inotify = try Inotify() } catch { throw WatchError("cannot start inotify: \(error)") }
        reconciler.givesUpWaiting = { SignalPipe.isStopRequested }
    }

    /// Watches, reconciles, then follows events until SIGTERM or SIGINT;
    /// SIGHUP reads the configuration and the rules again.
    public func run() throws {
        let signals: Int32
        do { signals = try SignalPipe.install([.terminate, .interrupt, .hangUp]) } catch {
            throw WatchError("cannot make the signal pipe: \(error)")
        }
        noteRuleFiles()
        // Watches first: what changes during the first scan is heard of.
        watchTree(reconciler.tree.root)
        // A file written within the last second may be half-written (a
        // writer straight into cur/ when the watcher starts): it waits, as
        // in a new folder's scan.
        let scanned = deferringYoungFiles(try reconciler.scan(reconciler.tree.root), now: Monotonic.seconds)
        if let counts = try reconciler.commit(scanned) {
            log.info("watch: started on \(reconciler.tree.root), \(watches.count) folders watched; reconciled: \(counts)")
        } else {
            log.warning("watch: the write lock did not come in time for the first scan; trying again")
            fullScanNeeded = true
            retryAt = Monotonic.seconds + timing.retryAfterLock
        }
        while true {
            do { try InputWait.wait(for: [inotify.descriptor, signals], timeout: nextTimeout()) } catch {
                throw WatchError("poll failed: \(error)")
            }
            let caught = SignalPipe.take(from: signals)
            if caught.contains(.terminate) || caught.contains(.interrupt) {
                log.info("watch: stopping; pending removals (\(pendingRemovals.count)) are left to the next start's scan")
                return
            }
            if caught.contains(.hangUp) { reload() }
            for event in inotify.read() { handle(event) }
            if isDue() { try commitBurst() }
        }
    }

    /// The rules files as last read: an edit is read again before the next commit.
    private var ruleSignatures: [String: FileSignature?] = [:]

    private func noteRuleFiles() {
        ruleSignatures = Dictionary(uniqueKeysWithValues: reconciler.found.ruleFiles.map { ($0, FileSignature($0)) })
    }

    private var ruleFilesChanged: Bool {
        ruleSignatures.contains { FileSignature($0.key) != $0.value }
    }

    private func reload() {
        do {
            reconciler = try Reconciler(options: options, keeping: reconciler)
            reconciler.givesUpWaiting = { SignalPipe.isStopRequested }
            noteRuleFiles()
            log.info("watch: configuration and rules read again")
        } catch {
            log.error("watch: configuration not reloaded, the old one stays: \(error)")
        }
    }

    // MARK: Watches

    /// Watches `directory` and every directory below it that a scan walks;
    /// returns the directories newly watched.
    @discardableResult
    private func watchTree(_ directory: String) -> [String] {
        guard watchOf[directory] == nil, !unwatched.contains(directory) else { return [] }
        switch inotify.watch(directory) {
        case .watching(let watch):
            if let previous = watches[watch], previous != directory { watchOf[previous] = nil }
            watches[watch] = directory
            watchOf[directory] = watch
        case .noWatchesLeft:
            unwatched.insert(directory)
            if !saidNoWatchesLeft {
                saidNoWatchesLeft = true
                log.error("watch: no inotify watches left (fs.inotify.max_user_watches); folders not watched are scanned every \(Int(timing.unwatchedScanInterval)) s, starting with \(directory)")
            }
            if nextUnwatchedScan == nil { nextUnwatchedScan = Monotonic.seconds + timing.unwatchedScanInterval }
        case .failed:
            return []
        }
        var added = [directory]
        guard let listing = DirectoryListing(directory) else { return added }
        let isMaildir = listing.hasMaildirSubdirectories
        for entry in listing.entries where entry.kind == .directory {
            if reconciler.tree.ignores(entry.name, in: directory) || (isMaildir && entry.name == "tmp") { continue }
            added += watchTree(reconciler.tree.join(directory, entry.name))
        }
        return added
    }

    /// Forgets the watches on `directory` and below (moved away or deleted).
    private func unwatchTree(_ directory: String) {
        let prefix = directory + "/"
        for (path, watch) in watchOf where path == directory || path.hasPrefix(prefix) {
            inotify.unwatch(watch)
            watchOf[path] = nil
            watches[watch] = nil
        }
        unwatched = unwatched.filter { $0 != directory && !$0.hasPrefix(prefix) }
    }

    // MARK: Events

    private func handle(_ event: Inotify.Event) {
        let now = Monotonic.seconds
        if event.has(.overflowed) {
            log.warning("watch: inotify queue overflowed; scanning the whole tree")
            fullScanNeeded = true
            noteEvent(now)
            return
        }
        guard let directory = watches[event.watch] else { return }
        if event.has(.watchRemoved) {
            watches[event.watch] = nil
            if watchOf[directory] == event.watch { watchOf[directory] = nil }
            return
        }
        if event.name.isEmpty { return }  // the directory itself: its parent reports it
        let tree = reconciler.tree
        if event.has(.opened) {
            // Opened right after its creation: most likely by its writer,
            // whose first write may not have come yet. It waits for the
            // close, or a second without writes (a reader of a file made by
            // link() never closes it for writing). Other opens are no news.
            let path = tree.join(directory, event.name)
            if !event.isDirectory, created.contains(path) { young[path] = now + 1 }
            return
        }
        // Even an ignored entry changes the directory's mtime, which is
        // stored again once the rest of the directory is settled.
        changedDirectories.insert(directory)
        if tree.ignores(event.name, in: directory) { return }
        let path = tree.join(directory, event.name)
        noteEvent(now)
        if event.isDirectory {
            if event.has(.created) || event.has(.movedIn) {
                goneDirectories[path] = nil
                if tree.isWatched(path) { newDirectories.insert(path) }
            } else if event.has(.deleted) || event.has(.movedOut) {
                unwatchTree(path)
                newDirectories.remove(path)
                goneDirectories[path] = now + timing.grace
            }
            return
        }
        touched.insert(path)
        if event.has(.created) { created.insert(path) }
        if event.has(.modified), created.contains(path) { writing.insert(path) }
        if event.has(.modified), young[path] != nil { young[path] = now + 1 }
        if event.has(.closedAfterWriting) {
            young[path] = nil
            created.remove(path)
            writing.remove(path)
        }
        if event.has(.movedOut) { movedFrom[event.cookie] = path }
        if event.has(.movedIn), let old = movedFrom.removeValue(forKey: event.cookie) {
            renamedAway[old] = path
        }
        if event.has(.deleted) || event.has(.movedOut) {
            young[path] = nil
            created.remove(path)
            writing.remove(path)
        }
    }

    /// Halves of renames waiting for their other half (same cookie).
    private var movedFrom: [UInt32: String] = [:]

    private func noteEvent(_ now: Double) {
        if firstEvent == nil { firstEvent = now }
        lastEvent = now
        eventsInBurst += 1
    }

    // MARK: Bursts

    /// Events to act on. Not files still being written (their close comes
    /// as an event), nor directories waiting to settle (`settleAt`).
    private var hasWork: Bool {
        touched.contains { !writing.contains($0) && young[$0] == nil } || !newDirectories.isEmpty || fullScanNeeded
    }

    /// Files a new folder's scan found that were written within the last
    /// second: written before the folder's watch existed, so no event says
    /// whether their writer is done. They wait until a second passes with
    /// no write (or their writer closes them).
    private var young: [String: Double] = [:]

    private func deferringYoungFiles(_ scanned: Changes, now: Double) -> Changes {
        var changes = scanned
        let second = WallClock.seconds
        var deferredIn = Set<String>()
        changes.additions.removeAll { path in
            guard let info = try? Stat(path), info.st_mtim.tv_sec >= second - 1 else { return false }
            young[path] = now + 1
            touched.insert(path)
            deferredIn.insert(Self.parent(of: path))
            return true
        }
        changes.mtimes.removeAll { deferredIn.contains($0.directory) }
        changedDirectories.formUnion(deferredIn)
        return changes
    }

    /// Milliseconds until something is due; -1 (wait for events) when
    /// nothing is: an idle watcher does not wake.
    private func nextTimeout() -> Int32 {
        var due: [Double] = []
        // Waiting for another writer to let go: everything waits with it.
        if let retryAt { return Int32(max(0, (retryAt - Monotonic.seconds) * 1000).rounded(.up)) }
        if hasWork, let firstEvent {
            due.append(burstEnd(firstEvent: firstEvent))
        } else if hasWork {
            due.append(Monotonic.seconds)
        }
        let now = Monotonic.seconds
        if let removal = pendingRemovals.values.map({ removalTime($0, now: now) }).min() { due.append(removal) }
        if let directory = goneDirectories.values.map({ removalTime($0, now: now) }).min() { due.append(directory) }
        if let nextUnwatchedScan { due.append(nextUnwatchedScan) }
        if let settleAt { due.append(settleAt) }
        if let file = young.values.min() { due.append(file) }
        guard let next = due.min() else { return -1 }
        return Int32(max(0, min((next - Monotonic.seconds) * 1000, 3_600_000)).rounded(.up))
    }

    /// When the burst that began at `firstEvent` is to be committed.
    private func burstEnd(firstEvent: Double) -> Double {
        let few = eventsInBurst <= timing.fewEvents
        let quiet = few ? min(timing.quietForFew, timing.quietWindow) : timing.quietWindow
        return min(lastEvent + quiet, firstEvent + timing.longestBurst)
    }

    private func isDue() -> Bool {
        let now = Monotonic.seconds
        if let retryAt, now < retryAt { return false }
        if hasWork, let firstEvent, now >= burstEnd(firstEvent: firstEvent) { return true }
        if hasWork, firstEvent == nil { return true }
        if pendingRemovals.values.contains(where: { removalTime($0, now: now) <= now }) { return true }
        if goneDirectories.values.contains(where: { removalTime($0, now: now) <= now }) { return true }
        if let nextUnwatchedScan, now >= nextUnwatchedScan { return true }
        if let settleAt, now >= settleAt { return true }
        if young.values.contains(where: { $0 <= now }) { return true }
        return false
    }

    /// Files deferred (being written, or found young), since when.
    private var deferredSince: [String: Double] = [:]

    /// Whether a removal due at `due` waits: a file deferred by then (or
    /// in the same burst) may be its message's file coming back. It waits
    /// for those files, not for later ones, and one more grace period at most.
    private func waitsForWriters(_ due: Double, now: Double) -> Bool {
        guard now < due + timing.grace + 5 else { return false }
        return deferredSince.contains { path, since in
            since <= due + timing.longestBurst && (writing.contains(path) || (young[path].map { $0 > now } ?? false))
        }
    }

    /// When a removal due at `due` is looked at again.
    private func removalTime(_ due: Double, now: Double) -> Double {
        waitsForWriters(due, now: now) ? due + timing.grace + 5 : due
    }

    /// Turns the burst's events into changes and commits them in one
    /// transaction. Kept for a later try when the lock does not come.
    private func commitBurst() throws {
        if ruleFilesChanged { reload() }
        let now = Monotonic.seconds
        // Directory mtimes are read before the last events are: whatever
        // the mtime shows has its event in hand by then.
        var mtimes: [String: (seconds: Int, readAt: Int)] = [:]
        for directory in changedDirectories {
            let readAt = WallClock.seconds
            if let info = try? Stat(directory) { mtimes[directory] = (Int(info.st_mtim.tv_sec), readAt) }
        }
        var heardLate = Set<String>()
        for event in inotify.read() {
            handle(event)
            // (An open changes no directory: our own reads of the last commit's files.)
            if !event.has(.opened), let directory = watches[event.watch] {
                mtimes[directory] = nil
                heardLate.insert(directory)
            }
        }
        var changes = Changes()
        var unsettled = Set<String>()  // directories whose mtime is not stored now
        let full = fullScanNeeded
        if full {
            changes.merge(deferringYoungFiles(try reconciler.scan(reconciler.tree.root), now: now))
        } else {
            for directory in newDirectories.sorted() {
                for watched in watchTree(directory) where watched != directory { newDirectories.remove(watched) }
                changes.merge(deferringYoungFiles(try reconciler.scan(directory), now: now))
            }
            if let nextUnwatchedScan, now >= nextUnwatchedScan {
                for directory in unwatched.sorted() { changes.merge(try reconciler.scan(directory)) }
                self.nextUnwatchedScan = unwatched.isEmpty ? nil : now + timing.unwatchedScanInterval
            }
        }
        var stillWriting = Set<String>()
        for path in touched {
            let parent = Self.parent(of: path)
            if writing.contains(path) || (young[path].map { $0 > now } ?? false) {
                stillWriting.insert(path)
                unsettled.insert(parent)
                continue
            }
            if DirectoryListing.kind(of: path) == .file {
                pendingRemovals[path] = nil
                changes.additions.append(path)
            } else if let target = renamedAway[path], DirectoryListing.kind(of: target) == .file {
                // (A new name gone already, as when a flag change is
                // followed by a move, leaves the message to the grace;
                // so does one gone before the transaction indexes it.)
                changes.renames.append((path, target))
            } else if pendingRemovals[path] == nil {
                pendingRemovals[path] = now + timing.grace
            }
        }
        // A file still being written (or found young) may be a removed
        // message's file coming back, as when a folder is moved whole
        // with files written a moment ago: due removals wait for it.
        deferredSince = Dictionary(uniqueKeysWithValues: stillWriting.map { ($0, deferredSince[$0] ?? now) })
        for (path, due) in pendingRemovals {
            if due <= now && !waitsForWriters(due, now: now) {
                changes.removals.append(path)
            } else {
                unsettled.insert(Self.parent(of: path))
            }
        }
        for (path, due) in goneDirectories {
            if due <= now && !waitsForWriters(due, now: now) {
                changes.removedDirectories.append(path)
            } else {
                unsettled.insert(Self.parent(of: path))
            }
        }
        if !full {
            for (directory, read) in mtimes where !unsettled.contains(directory) && read.seconds != read.readAt {
                changes.mtimes.append((directory, read.seconds))
            }
        }
        changes.additions.sort { DirectoryListing.precedes($0, $1) }
        let filtered = try withoutNoOps(changes)
        var counts = Counts()
        if !filtered.isEmpty {
            guard let done = try reconciler.commit(filtered) else {
                if retryAt == nil {
                    log.warning("watch: another program holds the write lock past the lock timeout; trying again every \(timing.retryAfterLock) s")
                }
                retryAt = Monotonic.seconds + timing.retryAfterLock
                return
            }
            counts = done
        }
        if retryAt != nil { log.info("watch: the write lock was had again") }
        retryAt = nil
        // Committed: what the burst covered is done.
        let due = Set(changes.removals)
        pendingRemovals = pendingRemovals.filter { !due.contains($0.key) }
        for old in counts.renamedAwayKept where pendingRemovals[old] == nil { pendingRemovals[old] = now + timing.grace }
        goneDirectories = goneDirectories.filter { !changes.removedDirectories.contains($0.key) }
        renamedAway.removeAll()
        young = young.filter { $0.value > now && stillWriting.contains($0.key) }
        movedFrom.removeAll()
        touched = stillWriting
        // A file made by link() is created and never closed: forget it once done.
        created.formIntersection(stillWriting)
        newDirectories.removeAll()
        // Directories whose mtime is not stored now are looked at again:
        // those with events heard after their mtime was read, at once;
        // those whose mtime was the current second, a second later; those
        // waiting for a removal or a writer, when that comes.
        // (Stored now, or equal already; a directory gone is forgotten.)
        let stored = Set(changes.mtimes.map(\.directory))
        changedDirectories = changedDirectories.subtracting(stored)
            .filter { mtimes[$0] != nil || heardLate.contains($0) }
            .union(stillWriting.map(Self.parent(of:)))
        settleAt = nil
        if mtimes.contains(where: { !stored.contains($0.key) && $0.value.seconds == $0.value.readAt }) {
            settleAt = Monotonic.seconds + 1.05
        }
        if !heardLate.subtracting(stored).isEmpty { settleAt = Monotonic.seconds + timing.quietWindow }
        if full { fullScanNeeded = false }
        firstEvent = nil
        eventsInBurst = 0
        if !counts.isEmpty { log.info("watch: committed \(counts)") }
    }

    /// Drops what would change nothing (a file the database has under its
    /// name already, a removal of a name it does not have, an mtime stored
    /// already), so that a burst of nothing opens no database for writing.
    private func withoutNoOps(_ changes: Changes) throws -> Changes {
        if changes.isEmpty { return changes }
        let database = try reconciler.openReadOnly()
        defer { try? database.close() }
        var kept = Changes()
        for path in changes.additions where try database.findMessage(filename: path) == nil {
            if !reconciler.nonMail.remembers(path) { kept.additions.append(path) }
        }
        for path in changes.removals where try database.findMessage(filename: path) != nil {
            kept.removals.append(path)
        }
        for rename in changes.renames where try database.findMessage(filename: rename.old) != nil {
            kept.renames.append(rename)
        }
        for directory in changes.removedDirectories where try database.directory(directory) != nil {
            kept.removedDirectories.append(directory)
        }
        for (directory, seconds) in changes.mtimes {
            let known = try database.directory(directory)
            // A directory the additions will create is settled after them.
            if known == nil && kept.additions.isEmpty { continue }
            if try known?.mtime() != seconds { kept.mtimes.append((directory, seconds)) }
        }
        // Mtimes alone are worth a commit only with nothing else pending.
        return kept
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[..<slash])
    }
}
