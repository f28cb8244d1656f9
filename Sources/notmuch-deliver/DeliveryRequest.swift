import DeliveryKit
import Notmuch
import SystemPackage
import MaildirKit
import Threads

/// Where mail goes and how it is tagged, as plain values: what a delivery,
/// `explain` and `import` share.
struct FilingValues: Equatable {
    var folder: String?
    var createFolder = false
    var addTags: [String] = []
    var removeTags: [String] = []
    var config: String?
    var profile: String?
    var rules: String?
    var sieve: String?
    var noRules = false

    /// These values, onto delivery options.
    func apply(to options: inout DeliveryOptions) throws(DeliveryError) {
        options.filing.folder = folder
        options.filing.createFolder = createFolder
        options.config = config.map { .file($0) } ?? .search
        options.profile = profile
        options.rules = noRules ? .none : rules.map { .file($0) } ?? .configured
        options.sieve = noRules ? .none : sieve.map { .file($0) } ?? .configured
        options.home = ProcessEnvironment.value(of: "HOME")
        for tag in addTags { options.filing.tagOperations.append(try TagOperation(parsing: "+" + tag)) }
        for tag in removeTags { options.filing.tagOperations.append(try TagOperation(parsing: "-" + tag)) }
    }
}

/// Everything a delivery's command line says. Filled either by
/// ArgumentParser (`Deliver`) or by `QuickCommandLine`; what the values mean
/// is decided here, once.
struct DeliveryRequest: Equatable {
    var filing = FilingValues()
    var recipient: String?
    var mailRoot: String?
    var sender: String?
    var decrypt: DecryptPolicy?
    var lockTimeout: Double?
    /// `+TAG`/`-TAG` arguments, in order.
    var tagOperations: [String] = []
    var keep = false
    var noHooks = false
    var worldReadable = false
    var verbose = false
    var log: String?
    var quota: String?
    var quotaWarn: String?
    var quotaPermanent = false

    /// The envelope: the command line's, else postfix local(8)'s environment.
    func envelope() throws(DeliveryError) -> Envelope {
        let environment = ProcessEnvironment.values(Envelope.environmentVariables)
        let envelope = Envelope.from(recipient: recipient, sender: sender, environment: environment)
        // UTF-8 addresses are welcome (RFC 6531), as over LMTP; a control
        // character or bytes that are not UTF-8 are not.
        for (what, value) in [("recipient", envelope.recipient), ("sender", envelope.sender)] {
            if let value, let problem = AddressText.problem(value) {
                throw DeliveryError(.usage, "the \(what) '\(LogText.oneLine(value))' \(problem): give the address as UTF-8 text")
            }
        }
        return envelope
    }

    func options() throws(DeliveryError) -> DeliveryOptions {
        var options = DeliveryOptions()
        try filing.apply(to: &options)
        options.filing.decrypt = decrypt
        options.mailRootTemplate = mailRoot
        options.timingsFile = ProcessEnvironment.value(of: "NOTMUCH_DELIVER_TIMINGS")
        if let lockTimeout {
            guard DeliveryOptions.isValidLockTimeout(lockTimeout) else {
                throw DeliveryError(.usage, "--lock-timeout must be between 0 and \(Int(DeliveryOptions.maximumLockTimeout)) seconds")
            }
            options.lockTimeout = lockTimeout
        }
        for argument in tagOperations {
            if argument.hasPrefix("--") {
                throw DeliveryError(.usage, "unknown option '\(argument)'; see --help")
            }
            options.filing.tagOperations.append(try TagOperation(parsing: argument))
        }
        options.filing.keep = keep
        options.runHooks = !noHooks
        options.filing.worldReadable = worldReadable
        options.quota = quota
        options.quotaWarn = quotaWarn
        options.quotaPermanent = quotaPermanent
        return options
    }

    /// Delivers standard input; the exit status for the MTA. The process
    /// then ends with _exit: everything is on disk and in the log by then,
    /// and a thread may still sit in libnotmuch's lock wait, under whose
    /// feet exit handlers (Xapian's among them) must not run.
    func deliver() -> Int32 {
        DeliveryLog.bootstrap(verbose: verbose, logFile: log)
        let started = Monotonic.milliseconds
        do {
            let report = try Delivery.deliver(try options(), envelope: try envelope(), input: .standardInput)
            DeliveryLog.delivery(report, mailRoot: report.mailRoot, milliseconds: Monotonic.milliseconds - started)
            if let warning = report.warning { complain("warning: \(warning)") }
            return 0
        } catch {
            DeliveryLog.failure(error, milliseconds: Monotonic.milliseconds - started)
            complain(error.message)
            return error.exitStatus.rawValue
        }
    }
}
