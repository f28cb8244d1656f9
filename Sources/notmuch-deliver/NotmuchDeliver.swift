import ArgumentParser
import DeliveryKit
import Mbox
import Notmuch
import Rules
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

extension DecryptPolicy: ExpressibleByArgument {}
extension MboxFormat: ExpressibleByArgument {}

/// Where mail goes and how it is tagged: what a delivery, `explain` and
/// `import` share.
struct FilingArguments: ParsableArguments {
    @Option(name: .customLong("folder"), help: "Maildir folder, relative to database.mail_root.")
    var folder: String?

    @Flag(help: "Create the folder if it does not exist.")
    var createFolder = false

    @Option(name: .customLong("tag"), help: "Add this tag (repeatable).")
    var addTags: [String] = []

    @Option(name: .customLong("remove-tag"), help: "Remove this tag (repeatable).")
    var removeTags: [String] = []

    @Option(help: "The notmuch config file (default: as notmuch finds it).")
    var config: String?

    @Option(help: "The notmuch profile.")
    var profile: String?

    @Option(help: "The rules file (default: deliver.rules in the notmuch config).")
    var rules: String?

    @Flag(help: "Apply no rules.")
    var noRules = false

    var values: FilingValues {
        FilingValues(folder: folder, createFolder: createFolder, addTags: addTags, removeTags: removeTags,
                     config: config, profile: profile, rules: rules, noRules: noRules)
    }
}

/// The options a delivery and `explain` share.
struct DeliveryArguments: ParsableArguments {
    @OptionGroup var filing: FilingArguments

    @Option(help: "The envelope recipient (default: $RECIPIENT, then Delivered-To).")
    var recipient: String?

    @Option(help: ArgumentHelp("A virtual mailbox per recipient, e.g. /srv/vmail/%d/%u (%d domain, %u user); "
                               + "created with its database on first delivery; no notmuch config needed.",
                               valueName: "template"))
    var mailRoot: String?

    @Option(help: "The envelope sender (default: $SENDER, then Return-Path).")
    var sender: String?

    @Option(help: "How to index encrypted parts: false, true, auto or nostash.")
    var decrypt: DecryptPolicy?

    @Option(help: ArgumentHelp("Seconds to wait for the database's write lock before queueing the message "
                               + "(default: deliver.lock_timeout, else 5).", valueName: "seconds"))
    var lockTimeout: Double?

    @Argument(parsing: .allUnrecognized, help: "Tag operations: +TAG adds, -TAG removes, in order.")
    var tagOperations: [String] = []

    /// These options as plain values, to which `Deliver` adds its own.
    var request: DeliveryRequest {
        DeliveryRequest(filing: filing.values, recipient: recipient, mailRoot: mailRoot, sender: sender,
                        decrypt: decrypt, lockTimeout: lockTimeout, tagOperations: tagOperations)
    }
}

@main
struct NotmuchDeliver: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notmuch-deliver",
        abstract: "Deliver one message from standard input into a maildir and index it with notmuch.",
        discussion: """
            Accepts the command line of 'notmuch insert'. Exit status: 0 delivered and indexed; \
            64 usage error; 65 the input is not a message; 75 temporary failure (the MTA retries).
            """,
        subcommands: [Deliver.self, CheckRules.self, Explain.self, Flush.self, Import.self],
        defaultSubcommand: Deliver.self)

    static let subcommandNames: Set<String> = ["deliver", "check-rules", "explain", "flush", "import", "help"]

    /// ArgumentParser would read `-inbox` as the short flags -i -n -b -o -x,
    /// so tag operations are taken out of the command line before it parses.
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        // A virtual mailbox is its own home (see VirtualMailbox.select).
        if !arguments.contains(where: { $0.hasPrefix("--mail-root") }) { ProcessEnvironment.ensureHome() }
        let subcommand = arguments.first.flatMap { subcommandNames.contains($0) ? $0 : nil }
        if ["check-rules", "flush", "import", "help"].contains(subcommand) {
            main(arguments)
            return
        }
        if subcommand != nil { arguments.removeFirst() }
        let (operations, rest) = splitTagOperations(arguments)
        if subcommand != "explain", var request = QuickCommandLine.deliveryRequest(rest) {
            request.tagOperations += operations
            _exit(request.deliver())
        }
        do {
            if subcommand == "explain" {
                var command = try Explain.parse(rest)
                command.delivery.tagOperations += operations
                try command.run()
            } else {
                var command = try Deliver.parse(rest)
                command.delivery.tagOperations += operations
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    /// Options whose value may follow as the next argument.
    static let optionsWithValue: Set<String> = [
        "--folder", "--decrypt", "--tag", "--remove-tag", "--config", "--profile", "--rules",
        "--recipient", "--sender", "--lock-timeout", "--mail-root", "--log",
    ]
    static let shortFlags: Set<String> = ["-n", "-h", "-v"]

    static func splitTagOperations(_ arguments: [String]) -> (operations: [String], rest: [String]) {
        var operations: [String] = []
        var rest: [String] = []
        var valueExpected = false
        for argument in arguments {
            let isOperation = argument.hasPrefix("+")
                || (argument.hasPrefix("-") && !argument.hasPrefix("--") && !shortFlags.contains(argument))
            if isOperation && !valueExpected {
                operations.append(argument)
            } else {
                rest.append(argument)
            }
            valueExpected = optionsWithValue.contains(argument)
        }
        return (operations, rest)
    }
}

struct Deliver: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Deliver the message on standard input (the default).")

    @OptionGroup var delivery: DeliveryArguments

    @Flag(help: "Keep the delivered file even if indexing fails.")
    var keep = false

    @Flag(name: [.customLong("no-hooks"), .customShort("n")], help: "Do not run the post-insert hook.")
    var noHooks = false

    @Flag(help: "Make the file readable by everyone (0644, less the umask) instead of 0600.")
    var worldReadable = false

    @Flag(name: [.short, .long], help: "Also log to standard error.")
    var verbose = false

    @Option(help: ArgumentHelp("Log to this file instead of syslog.", valueName: "file"))
    var log: String?

    var request: DeliveryRequest {
        var request = delivery.request
        request.keep = keep
        request.noHooks = noHooks
        request.worldReadable = worldReadable
        request.verbose = verbose
        request.log = log
        return request
    }

    func run() throws {
        _exit(request.deliver())
    }
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import mbox archives (plain, .gz, .xz, .bz2) into the maildir and the database, with the same tags and rules as a delivery.",
        discussion: "Safe to run again: what is already there is skipped, and an interrupted import resumes.")

    @Argument(help: "Archives to import; - reads standard input.")
    var archives: [String]

    @OptionGroup var filing: FilingArguments

    @Option(help: "auto, mboxo, mboxrd, mboxcl or mboxcl2.")
    var format: MboxFormat = .auto

    @Flag(help: "Read and count the archives; store nothing.")
    var dryRun = false

    @Option(help: "Messages per commit; a message counts as imported once its commit is made.")
    var batchSize = 250

    @Option(help: ArgumentHelp("Larger messages are reported as failed and not stored (default: 10240000, postfix's message_size_limit); k, M or G for KiB, MiB, GiB.",
                               valueName: "bytes"),
            transform: ByteCount.parse)
    var maxMessageSize = ImportOptions.defaultMaxMessageSize

    @Flag(name: [.short, .long], help: "Also log to standard error.")
    var verbose = false

    func run() throws {
        DeliveryLog.bootstrap(verbose: verbose)
        var options = ImportOptions()
        options.format = format
        options.dryRun = dryRun
        options.batchSize = max(1, batchSize)
        options.maxMessageSize = maxMessageSize
        let onTerminal = isatty(STDERR_FILENO) == 1
        let started = Clock.now
        do {
            try filing.values.apply(to: &options.delivery)
            let importer = try Importer(options) { progress in
                guard onTerminal else { return }
                let seconds = max(Clock.now - started, 0.001)
                let megabytes = Double(progress.bytes) / 1_048_576
                let left = progress.secondsLeft.map { ", \(Int($0.rounded(.up)) / 60) min \(Int($0.rounded(.up)) % 60) s left" } ?? ""
                let line = "\r\(progress.archive): \(progress.messages) messages, "
                    + "\(Int(megabytes)) MB, \(Int(Double(progress.messages) / seconds)) msg/s\(left)   "
                line.utf8CString.withUnsafeBufferPointer { _ = Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
            }
            let report = try importer.run(archives)
            if onTerminal { complainRaw("\n") }
            print(ImportSummary.format(report, dryRun: dryRun))
            if !report.failures.isEmpty { throw ExitCode(ExitStatus.dataError.rawValue) }
        } catch let error as DeliveryError {
            if onTerminal { complainRaw("\n") }
            complain(error.message)
            throw ExitCode(error.exitStatus.rawValue)
        }
    }
}

enum ImportSummary {
    static func format(_ report: ImportReport, dryRun: Bool) -> String {
        let rate = report.seconds > 0 ? Int(Double(report.imported) / report.seconds) : 0
        var lines = [dryRun
            ? "dry run: \(report.imported) messages, \(report.bytes / 1024) KiB; nothing stored"
            : "imported \(report.imported) (of which \(report.duplicateCopies) copies of a Message-ID already there), "
              + "skipped \(report.skipped) already there, failed \(report.failures.count), "
              + "in \(String(oneDecimal: report.seconds)) s (\(rate) msg/s)"]
        lines += report.failures.map { "failed: \($0)" }
        return lines.joined(separator: "\n")
    }
}

extension String {
    init(oneDecimal value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }
}

struct Flush: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Index the deliveries queued while the database was locked or could not be opened.",
        discussion: "Run it from a post-new hook, or after fixing the database.")

    @Option(help: "The notmuch config file.")
    var config: String?

    @Option(help: "The notmuch profile.")
    var profile: String?

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
        options.config = config.map { .file($0) } ?? .search
        options.profile = profile
        options.home = ProcessEnvironment.value("HOME")
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
            _exit(error.exitStatus.rawValue)
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

struct CheckRules: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-rules",
        abstract: "Check a rules file; exit 1 if it has errors.")

    @Argument(help: "The rules file (default: deliver.rules from the notmuch config).")
    var file: String?

    @Option(help: "The notmuch config file.")
    var config: String?

    @Option(help: "The notmuch profile.")
    var profile: String?

    func run() throws {
        guard let path = file ?? configuredRulesPath() else {
            complain("no rules file: give one, or set \(RulesLoader.configKey) in the notmuch config")
            throw ExitCode(1)
        }
        let text: String
        do { text = try RulesLoader.readFile(path) } catch {
            complain("\(path): cannot read: \(error)")
            throw ExitCode(1)
        }
        let (rules, errors) = RuleParser.parse(text, origin: path)
        for error in errors { print(error) }
        for warning in rules.warnings { print(warning) }
        guard errors.isEmpty else { throw ExitCode(1) }
        print("\(path): \(rules.rules.count) rules, no errors")
    }

    func configuredRulesPath() -> String? {
        let source: ConfigSource = config.map { .file($0) } ?? .search
        guard let loaded = try? Database.loadConfig(config: source, profile: profile) else { return nil }
        return loaded.database.configValues(RulesLoader.configKey).first
            .map { RulesLoader.expand($0, home: ProcessEnvironment.value("HOME")) }
    }
}

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show which rules match the message on standard input, and why, without delivering it.")

    @OptionGroup var delivery: DeliveryArguments

    func run() throws {
        DeliveryLog.bootstrap(verbose: true)
        do {
            let report = try Delivery.explain(try delivery.request.options(), input: .standardInput)
            print(ExplainFormatter.format(report))
        } catch {
            complain(error.message)
            throw ExitCode(error.exitStatus.rawValue)
        }
    }
}

enum ExplainFormatter {
    static func format(_ report: DeliveryReport) -> String {
        var lines: [String] = []
        // Header values and the Message-ID come from the message: shown
        // escaped, so that each check stays one line and a terminal sees no escapes.
        lines.append("message: \(LogText.oneLine(report.messageID ?? "(none)"))")
        if report.traces.isEmpty { lines.append("rules: none apply") }
        for trace in report.traces {
            let verdict = trace.matched ? "matches" : "no match"
            lines.append("line \(trace.rule.line): \(verdict): \(trace.rule.text)")
            for check in trace.checks {
                let detail = check.detail.map { " (\(LogText.oneLine($0)))" } ?? ""
                lines.append("    \(check.result ? "yes" : "no "): \(check.condition)\(detail)")
            }
            if trace.matched, !trace.effects.isEmpty {
                lines.append("    => " + trace.effects.map(\.description).joined(separator: " "))
            }
            for note in trace.notes { lines.append("    note: \(note)") }
        }
        if report.outcome == .duplicate { lines.append("duplicate: the Message-ID is already in the database; tags stay as they are") }
        if report.outcome == .discarded {
            lines.append("result: discarded")
        } else {
            lines.append("tags: \(report.tags.joined(separator: " "))")
            let folder = report.traces.flatMap(\.effects).compactMap { effect -> String? in
                if case .folder(let name) = effect { return name } else { return nil }
            }.last
            lines.append("folder: \(folder ?? "(default)")")
        }
        return lines.joined(separator: "\n")
    }
}

enum ProcessEnvironment {
    /// One variable, read when asked: copying the whole environment into a
    /// dictionary cost a delivery more than everything it asks for.
    static func value(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// Some MTAs and cron start commands without HOME, and libnotmuch then
    /// refuses to open even a database named by NOTMUCH_CONFIG. Like most
    /// Unix programs, take the home directory from the password database.
    static func ensureHome() {
        guard getenv("HOME") == nil else { return }
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(getuid(), &entry, &buffer, buffer.count, &result) == 0, result != nil,
              let directory = entry.pw_dir, directory.pointee != 0 else { return }
        setenv("HOME", directory, 1)
    }

    /// The variables among `names` that are set.
    static func values(_ names: [String]) -> [String: String] {
        var found: [String: String] = [:]
        for name in names { if let value = value(name) { found[name] = value } }
        return found
    }
}

func complainRaw(_ text: String) {
    var text = text
    text.withUTF8 { bytes in _ = try? FileDescriptor.standardError.writeAll(bytes) }
}

/// One line on stderr, prefixed with the program's name. One line also when
/// the text quotes the message or the envelope (an MTA keeps the line as the
/// reason in its log and bounces); libnotmuch's own messages end in a newline.
func complain(_ line: String) {
    var trimmed = Substring(line)
    while trimmed.last?.isNewline == true { trimmed = trimmed.dropLast() }
    var text = "notmuch-deliver: \(LogText.oneLine(String(trimmed)))\n"
    text.withUTF8 { bytes in _ = try? FileDescriptor.standardError.writeAll(bytes) }
}
