import Logging
import MailParsing
import Notmuch
import Rules
import SystemPackage
import MaildirKit

/// The front doors' entry points that are not a Deliverer's: one delivery
/// (the command line), `flush`, `explain`, and what they share.
public enum Delivery {
    /// One message, from a Deliverer made for it.
    public static func deliver(_ options: DeliveryOptions, input: FileDescriptor) throws(DeliveryError) -> DeliveryReport {
        try Deliverer(options).deliver(input)
    }

    /// Applies every queued delivery, in one transaction. For `flush` (and a
    /// post-new hook). Returns how many records were applied.
    public static func flush(_ options: DeliveryOptions) throws(DeliveryError) -> Int {
        var options = options
        try VirtualMailbox.select(&options, ifAbsent: .refuse)
        let settings = try DeliverySettings(options: options)
        LeftoverRemoval.run(settings: settings)
        let queue = PendingQueue(databasePath: settings.databasePath)
        return try QueueApplier(settings: settings, options: options, queue: queue).flushQueue()
    }

    /// The queue of the database these options name: for `flush --list`,
    /// `--retry` and `--drop`, which act on set-aside records.
    public static func queue(_ options: DeliveryOptions) throws(DeliveryError) -> PendingQueue {
        var options = options
        try VirtualMailbox.select(&options, ifAbsent: .refuse)
        return PendingQueue(databasePath: try DeliverySettings(options: options).databasePath)
    }

    /// Runs the whole delivery but stores nothing: the message goes through
    /// a scratch file in the mail root's tmp/ and an atomic section that is
    /// never committed. For `explain`.
    public static func explain(_ options: DeliveryOptions, input: FileDescriptor) throws(DeliveryError) -> DeliveryReport {
        var options = options
        try VirtualMailbox.select(&options, ifAbsent: .refuse)
        let settings = try DeliverySettings(options: options)
        let scratch = try settings.maildir(nil, create: false)
        let file = try write(input, to: scratch, worldReadable: false, scratch: true, beforeSync: emailRejection).path
        defer { Maildir.discard(file) }
        let database: Database
        do {
            database = try options.openDatabase()
        } catch {
            throw DeliveryError(.temporary, "cannot open the notmuch database: \(error)")
        }
        var moves: [FilePath] = []
        var location = file
        do {
            return try database.atomicSection {
                let job = IndexJob(.explanation, options: options, settings: settings)
                return .abort(try job.run(in: database, location: &location, moves: &moves))
            }
        } catch {
            throw classify(error, file: file)
        }
    }

    static func write(_ input: FileDescriptor, to maildir: Maildir, worldReadable: Bool,
                      scratch: Bool = false, syncingDirectory: Bool = true, sameAs: FilePath? = nil,
                      beforeSync: (FilePath) -> DeliveryError? = { _ in nil }) throws(DeliveryError) -> Maildir.Delivered {
        let permissions: FilePermissions = worldReadable ? [.ownerReadWrite, .groupRead, .otherRead] : .ownerReadWrite
        do {
            return try maildir.deliver(from: input, permissions: permissions, scratch: scratch,
                                       syncingDirectory: syncingDirectory, sameAs: sameAs, beforeSync: beforeSync)
        } catch {
            switch error {
            case .rejected(let error):
                throw error as? DeliveryError ?? DeliveryError(.temporary, "\(error)")
            case .emptyInput:
                throw DeliveryError(.notAMessage, "empty input: no message on standard input")
            case .read(let errno):
                throw DeliveryError(.temporary, "cannot read the message from standard input: \(errno)")
            case .write(let errno, let path):
                throw DeliveryError(.temporary, "cannot write '\(path)': \(errno)")
            }
        }
    }

    /// Refuses a file libnotmuch would not index, before anything is
    /// reported: the answer must not depend on whether the database was
    /// free (a queued non-email would otherwise get 0, and the same message
    /// 65 a moment later).
    static func emailRejection(_ file: FilePath) -> DeliveryError? {
        var unused: MessageHeaders?
        return emailRejection(file, headers: &unused)
    }

    /// `headers`: set to the message's From and Subject, for the log line.
    static func emailRejection(_ file: FilePath, headers: inout MessageHeaders?) -> DeliveryError? {
        let (verdict, found) = emailInspection(file, logHeaders: true)
        headers = found
        switch verdict {
        case .email:
            return nil
        case .notEmail:
            return DeliveryError(.notAMessage, "the input is not an email message (no From, Subject or To header)")
        case .overLimit(let excess):
            return tooBig(excess)
        case .unreadable(let code):
            return DeliveryError(.temporary, "cannot read back '\(file)': \(Errno(rawValue: code))")
        }
    }

    /// GMime's verdict, once the message is known to be within
    /// `MessageLimits`; parsing a costly one waits its turn.
    static func emailVerdict(_ file: FilePath) -> EmailCheck.Verdict {
        emailInspection(file, logHeaders: false).verdict
    }

    /// The same, and for mail, when `logHeaders`, its From and Subject
    /// for the log line (from the same parse).
    static func emailInspection(_ file: FilePath, logHeaders: Bool) -> (verdict: EmailCheck.Verdict, headers: MessageHeaders?) {
        func check(limits: Bool) -> (verdict: EmailCheck.Verdict, headers: MessageHeaders?) {
            logHeaders ? EmailCheck.verdictAndLogHeaders(forFile: file.string, checkingLimits: limits)
                : (EmailCheck.verdict(forFile: file.string, checkingLimits: limits), nil)
        }
        guard let scan = MessageLimits.scan(ofFile: file.string) else { return check(limits: true) }
        if let excess = scan.excess { return (.overLimit(excess), nil) }
        return CostlyMessageGate.shared.admitting(cost: scan.parsingCost) { check(limits: false) }
    }

    /// A permanent refusal (exit 65, LMTP 552 5.3.4): the same message
    /// would be refused again.
    static func tooBig(_ excess: MessageLimits.Excess) -> DeliveryError {
        var error = DeliveryError(.notAMessage, "\(excess) (a limit that bounds the memory a message may cost)")
        error.isTooBig = true
        return error
    }

    static func classify(_ error: Error, file: FilePath) -> DeliveryError {
        if let error = error as? DeliveryError { return error }
        if let refused = error as? IndexJob.Refused, refused.error.status == .fileNotEmail {
            return DeliveryError(.notAMessage, "the input is not an email message (no From, Subject or To header)")
        }
        return DeliveryError(.temporary, "cannot index '\(file)': \(error)")
    }

    /// Renames and removals inside the transaction touched these
    /// directories; once committed, their entries must reach the disk.
    static func makeDurable(_ directories: [FilePath]) throws(DeliveryError) {
        var seen = Set<FilePath>()
        for directory in directories where seen.insert(directory).inserted {
            do { try FileSystem.fsyncDirectory(directory) } catch {
                throw DeliveryError(.temporary, "cannot sync '\(directory)': \(error)")
            }
        }
    }
}
