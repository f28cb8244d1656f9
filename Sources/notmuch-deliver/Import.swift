import ArgumentParser
import DeliveryKit
import Mbox
import MaildirKit
import Threads

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
        let onTerminal = ProcessEnvironment.standardErrorIsTerminal
        let started = Monotonic.seconds
        do {
            try filing.values.apply(to: &options.delivery)
            let importer = try Importer(options) { progress in
                guard onTerminal else { return }
                let seconds = max(Monotonic.seconds - started, 0.001)
                let megabytes = Double(progress.bytes) / 1_048_576
                let left = progress.secondsLeft.map { ", \(Int($0.rounded(.up)) / 60) min \(Int($0.rounded(.up)) % 60) s left" } ?? ""
                let line = "\r\(progress.archive): \(progress.messages) messages, "
                    + "\(Int(megabytes)) MB, \(Int(Double(progress.messages) / seconds)) msg/s\(left)   "
                complainRaw(line)
            }
            let report = try importer.run(archives)
            if onTerminal { complainRaw("\n") }
            print(ImportSummary.format(report, dryRun: dryRun))
            for failure in report.failures { diagnostic("failed: \(failure)") }
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
        return dryRun
            ? "dry run: \(report.imported) messages, \(report.bytes / 1024) KiB; nothing stored"
            : "imported \(report.imported) (of which \(report.duplicateCopies) copies of a Message-ID already there), "
              + "skipped \(report.skipped) already there, failed \(report.failures.count), "
              + "in \(String(oneDecimal: report.seconds)) s (\(rate) msg/s)"
    }
}

extension String {
    init(oneDecimal value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }
}
