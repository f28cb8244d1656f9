import ArgumentParser
import DeliveryKit
import LMTPServer
import MaildirKit

struct Lmtp: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an LMTP server (RFC 2033) delivering into notmuch, for postfix's lmtp transport.",
        discussion: """
            Without --listen, takes its sockets from systemd (socket activation). With --mail-root, \
            each recipient is a virtual mailbox; without it, every recipient is delivered into the \
            mailbox of the notmuch configuration. Runs as the mailbox owner, never as root.
            """)

    @Option(help: ArgumentHelp("Where to listen: unix:PATH, HOST:PORT or [V6HOST]:PORT (repeatable).",
                               valueName: "address"))
    var listen: [String] = []

    @Option(help: ArgumentHelp("Permissions of a unix socket, in octal (e.g. 660).", valueName: "mode"))
    var socketMode: String?

    @Flag(help: "One LMTP session on standard input and output (inetd, systemd Accept=yes).")
    var stdio = false

    @Option(help: ArgumentHelp("A virtual mailbox per recipient, e.g. /srv/vmail/%d/%u.", valueName: "template"))
    var mailRoot: String?

    @OptionGroup var notmuch: NotmuchConfigArguments

    @OptionGroup var rules: RulesArguments

    @Option(help: ArgumentHelp("The largest message taken, in bytes (K, M, G allowed).", valueName: "size"))
    var maxMessageSize: String = "10M"

    @Option(help: "Connections served at once; more are told 421.")
    var maxConnections = 64

    @Option(help: "Recipients per transaction; more are told 452.")
    var maxRecipients = 50

    @Option(help: ArgumentHelp("Seconds to wait for the write lock before a message is queued "
                               + "(default: deliver.lock_timeout, else 5).", valueName: "seconds"))
    var lockTimeout: Double?

    @Option(help: ArgumentHelp("Seconds a client may stay silent.", valueName: "seconds"))
    var timeout = 300

    @Option(help: ArgumentHelp("The characters that start a recipient's extension (user+ext@).", valueName: "chars"))
    var recipientDelimiter = "+"

    @OptionGroup var quotas: QuotaArguments

    @OptionGroup var logging: LogArguments

    func validate() throws {
        if ProcessEnvironment.isRoot {
            throw ValidationError("refusing to run as root: run the server as the mailbox owner (a user, or vmail)")
        }
        if stdio && !listen.isEmpty { throw ValidationError("--stdio and --listen exclude each other") }
        if stdio, let problem = LMTPServer.stdioProblem() { throw ValidationError(problem) }
        for address in listen where ListenAddress(parsing: address) == nil {
            throw ValidationError("--listen '\(address)' is not unix:PATH, HOST:PORT or [V6HOST]:PORT")
        }
        if let socketMode, UInt16(socketMode, radix: 8).map({ $0 <= 0o777 }) != true {
            throw ValidationError("--socket-mode '\(socketMode)' is not an octal mode such as 660")
        }
        _ = try ByteCount.parse(maxMessageSize)
        if maxConnections < 1 || maxConnections > 10_000 { throw ValidationError("--max-connections must be between 1 and 10000") }
        if maxRecipients < 1 || maxRecipients > 10_000 { throw ValidationError("--max-recipients must be between 1 and 10000") }
        if timeout < 1 || timeout > 3600 { throw ValidationError("--timeout must be between 1 and 3600 seconds") }
        if let lockTimeout, !DeliveryOptions.isValidLockTimeout(lockTimeout) {
            throw ValidationError("--lock-timeout must be between 0 and \(Int(DeliveryOptions.maximumLockTimeout)) seconds")
        }
    }

    func run() throws {
        DeliveryLog.bootstrap(verbose: logging.verbose, logFile: logging.log)
        // A virtual mailbox is its own home; libnotmuch wants one set
        // before any thread starts (setenv is not thread-safe).
        if mailRoot != nil, ProcessEnvironment.value(of: "HOME") == nil { ProcessEnvironment.set("HOME", to: "/") }
        var options = DeliveryOptions()
        // No folder and no tags: where mail goes is the rules' business.
        try FilingValues(config: notmuch.config, profile: notmuch.profile, rules: rules.rules, sieve: rules.sieve,
                         noRules: rules.noRules).apply(to: &options)
        options.mailRootTemplate = mailRoot
        options.lockTimeout = lockTimeout
        options.quota = quotas.quota
        options.quotaPermanent = quotas.quotaPermanent
        options.quotaWarn = quotas.quotaWarn
        let deliverer = Deliverer(options)
        let spoolDirectory: String
        do {
            spoolDirectory = try deliverer.spoolDirectory()
        } catch {
            complain(error.message)
            throw ExitCode(error.exitStatus.rawValue)
        }
        var configuration = LMTPServerConfiguration(hostname: FileSystem.hostName())
        configuration.listen = listen.compactMap(ListenAddress.init(parsing:))
        configuration.socketMode = socketMode.flatMap { UInt32($0, radix: 8) }
        configuration.stdio = stdio
        configuration.maxConnections = maxConnections
        configuration.maxRecipients = maxRecipients
        configuration.maxMessageSize = try ByteCount.parse(maxMessageSize)
        configuration.timeout = Int64(timeout)
        configuration.commitWait = lockTimeout
        configuration.recipientDelimiters = recipientDelimiter
        do {
            try LMTPServer(configuration: configuration, deliverer: deliverer, spoolDirectory: spoolDirectory).run()
        } catch {
            complain(error.description)
            ProcessEnvironment.exitImmediately(ExitStatus.temporaryFailure.rawValue)
        }
        // Every reply is sent and every record durable; a committer may
        // still wait in libnotmuch for a lock another writer holds, under
        // whose feet exit handlers (Xapian's among them) must not run.
        ProcessEnvironment.exitImmediately(0)
    }
}
