import ArgumentParser
import DeliveryKit
import MaildirKit
import Watch

struct WatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Keep the notmuch database equal to the maildir as files come and go (inotify).",
        discussion: """
            Scans the mail root as 'notmuch new' does, then indexes what appears and removes what goes, \
            with new.tags, maildir flags as tags, and the rules and Sieve script of a delivery; \
            applies the delivery queue at each commit. With --once: scan, commit and exit. \
            Runs as the mailbox owner. SIGTERM stops it (exit 0), SIGHUP reads the configuration \
            and the rules again. Runs no hooks.
            """)

    @Flag(help: "Reconcile once and exit: a 'notmuch new' that also applies the rules.")
    var once = false

    @Option(help: ArgumentHelp("Seconds a removed file's message waits for the file to come back "
                               + "(a move between folders) before it is removed.", valueName: "seconds"))
    var grace: Double = 30

    @Option(help: ArgumentHelp("Milliseconds without events that end a burst (one transaction); "
                               + "a burst of one or two events ends after 2 ms.", valueName: "ms"))
    var quietWindow: Double = 50

    @Option(help: ArgumentHelp("Seconds between scans of the folders left unwatched when "
                               + "fs.inotify.max_user_watches runs out.", valueName: "seconds"))
    var unwatchedScanInterval: Double = 60

    @Option(help: ArgumentHelp("Seconds to wait for the write lock before trying again later "
                               + "(default: deliver.lock_timeout, else 5).", valueName: "seconds"))
    var lockTimeout: Double?

    @OptionGroup var notmuch: NotmuchConfigArguments

    @OptionGroup var rules: RulesArguments

    @OptionGroup var logging: LogArguments

    func validate() throws {
        if ProcessEnvironment.isRoot {
            throw ValidationError("refusing to run as root: run the watcher as the mailbox owner")
        }
        if !grace.isFinite || grace < 0 || grace > 86_400 { throw ValidationError("--grace must be between 0 and 86400 seconds") }
        if !quietWindow.isFinite || quietWindow < 0 || quietWindow > 60_000 {
            throw ValidationError("--quiet-window must be between 0 and 60000 ms")
        }
        if !unwatchedScanInterval.isFinite || unwatchedScanInterval < 1 || unwatchedScanInterval > 86_400 {
            throw ValidationError("--unwatched-scan-interval must be between 1 and 86400 seconds")
        }
        if let lockTimeout, !DeliveryOptions.isValidLockTimeout(lockTimeout) {
            throw ValidationError("--lock-timeout must be between 0 and \(Int(DeliveryOptions.maximumLockTimeout)) seconds")
        }
    }

    func run() throws {
        DeliveryLog.bootstrap(verbose: logging.verbose, logFile: logging.log)
        var options = DeliveryOptions()
        do {
            try FilingValues(config: notmuch.config, profile: notmuch.profile, rules: rules.rules, sieve: rules.sieve,
                             noRules: rules.noRules).apply(to: &options)
        } catch {
            complain(error.message)
            throw ExitCode(error.exitStatus.rawValue)
        }
        options.lockTimeout = lockTimeout
        do {
            if once {
                let reconciler = try Reconciler(options: options)
                guard let counts = try reconciler.reconcile() else {
                    complain("the database is locked by another writer; nothing reconciled, try again later")
                    throw ExitCode(ExitStatus.temporaryFailure.rawValue)
                }
                DeliveryLog.notice("watch --once: \(counts)")
                return
            }
            var timing = Watcher.Timing()
            timing.grace = grace
            timing.quietWindow = quietWindow / 1000
            timing.unwatchedScanInterval = unwatchedScanInterval
            try Watcher(options: options, timing: timing).run()
        } catch let exit as ExitCode {
            throw exit
        } catch {
            complain("\(error)")
            throw ExitCode(ExitStatus.temporaryFailure.rawValue)
        }
    }
}
