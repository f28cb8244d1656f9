import MaildirKit
import SystemPackage
import Threads

/// How a delivery treats the mailbox's quota: the limit configured (if
/// any; else the one an existing `maildirsize` names), whether a refusal is
/// permanent, and the grace.
struct QuotaPolicy: Sendable {
    /// `--quota`, else `deliver.quota`; nil: whatever `maildirsize` says.
    var limit: QuotaLimit?
    /// Refusals bounce (77) instead of deferring (75).
    var permanent = false
    /// Dovecot's quota_grace default: one last message may go this far over.
    var gracePercent: Int64 = 10

    static let limitKey = "deliver.quota"
    static let permanentKey = "deliver.quota_permanent"
    static let graceKey = "deliver.quota_grace"

    /// Reads and checks the settings; any value that does not parse is a
    /// configuration error (deferred), before anything is written.
    init(options: DeliveryOptions, value: (String) -> String?) throws(DeliveryError) {
        if let text = options.quota {
            guard let limit = QuotaLimit(parsing: text) else {
                throw DeliveryError(.usage, "--quota '\(text)' is not a limit such as 2G, 500M,100000C or 1000C")
            }
            self.limit = limit
        } else if let text = value(Self.limitKey) {
            guard let limit = QuotaLimit(parsing: text) else {
                throw DeliveryError.config("\(Self.limitKey) = '\(text)' is not a limit such as 2G, 500M,100000C or 1000C")
            }
            self.limit = limit
        }
        if options.quotaPermanent {
            permanent = true
        } else if let text = value(Self.permanentKey) {
            switch text.lowercased() {
            case "true", "yes", "1": permanent = true
            case "false", "no", "0": permanent = false
            default: throw DeliveryError.config("\(Self.permanentKey) = '\(text)' is not true or false")
            }
        }
        if let text = value(Self.graceKey) {
            let digits = text.hasSuffix("%") ? String(text.dropLast()) : text
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                  let percent = Int64(digits), percent <= 100 else {
                throw DeliveryError.config("\(Self.graceKey) = '\(text)' is not a percentage between 0 and 100")
            }
            gracePercent = percent
        }
    }

    /// What a delivery decides: refused, or let in with its size (nil when
    /// the mailbox has no quota at all: nothing to count).
    enum Verdict {
        /// Let in; with the message's size and the usage before it, when
        /// the mailbox has a quota.
        case admitted(Measured?)
        case refused(DeliveryError)
    }

    struct Measured {
        let size: Int64
        let limit: QuotaLimit
        let before: QuotaUsage
        var after: QuotaUsage { QuotaUsage(bytes: before.bytes + size, messages: before.messages + 1) }
    }

    /// Reads (and, as the convention asks, recounts) `maildirsize`, then
    /// measures the message with `size` only when there is a limit: with
    /// none, the delivery pays a single failed open and nothing else.
    /// An admitted message's line is appended at once, under a lock on the
    /// mailbox's directory, so concurrent deliveries see each other's
    /// reservations and cannot all squeeze under the limit; the caller
    /// appends the opposite line if the message is not stored after all.
    /// `enforcing` false measures without refusing (a quota warning must
    /// reach a full mailbox, and still counts).
    /// The lock is waited for `lockWait` seconds at most (the mailbox's
    /// lock timeout): another program holding it for ever defers the
    /// delivery instead of stalling it.
    func check(mailbox: MaildirQuota, enforcing: Bool = true, lockWait: Double = 5,
               size measure: () -> Int64?) -> Verdict {
        // Whether there is a limit at all, without recounting: that is done
        // once, under the lock.
        let file: MaildirQuota.Contents?
        switch Self.inspect(mailbox) {
        case .failure(let refusal): return .refused(refusal)
        case .success(let contents): file = contents
        }
        guard limit != nil || file.map({ !$0.limit.isUnlimited }) == true else { return .admitted(nil) }
        guard let size = measure() else {
            return .refused(DeliveryError(.temporary, "cannot measure the message for the quota"))
        }
        guard let lock = mailbox.openLock() else {
            return .refused(DeliveryError(.temporary, "cannot open '\(mailbox.root)' to lock it"))
        }
        // Held for a read and an append: short.
        defer { lock.release() }
        // The lock has no timeout: tried without waiting, again and again.
        let giveUp = Monotonic.seconds + lockWait
        while true {
            do throws(Errno) { if try lock.tryTake() { break } } catch {
                return .refused(DeliveryError(.temporary, "cannot lock '\(mailbox.root)': \(error)"))
            }
            guard Monotonic.seconds < giveUp else {
                return .refused(DeliveryError(.temporary, "'\(mailbox.root)' stayed locked (flock) by another program "
                                              + "for \(lockWait) s; deferred"))
            }
            Pause.sleep(seconds: 0.02)
        }
        // Read again under the lock: another delivery may have added since.
        guard let (limit, usage) = mailbox.current(limit: limit) else { return .admitted(nil) }
        if !enforcing || usage.admits(size, under: limit, gracePercent: gracePercent) {
            mailbox.add(bytes: size, messages: 1)
            return .admitted(Measured(size: size, limit: limit, before: usage))
        }
        return .refused(refusal(mailbox, usage: usage, limit: limit, size: size))
    }

    /// Whether a message of `size` bytes (0: not known yet) would be
    /// refused now, without counting it: an LMTP server asks at RCPT time,
    /// so that a full mailbox is spared the data. The delivery checks again.
    func precheck(mailbox: MaildirQuota, size: Int64) -> DeliveryError? {
        let file: MaildirQuota.Contents?
        switch Self.inspect(mailbox) {
        case .failure(let refusal): return refusal
        case .success(let contents): file = contents
        }
        guard limit != nil || file.map({ !$0.limit.isUnlimited }) == true,
              let (limit, usage) = mailbox.current(limit: limit),
              !usage.admits(size, under: limit, gracePercent: gracePercent) else { return nil }
        return refusal(mailbox, usage: usage, limit: limit, size: size)
    }

    /// The mailbox's `maildirsize` as a delivery first sees it: a file it
    /// must not open (a FIFO, a device) defers the delivery; a damaged one
    /// (a symlink, garbage, a negative limit) is logged, once per delivery,
    /// and taken as missing: a configured limit is then enforced by a
    /// recount, which replaces the file, as courier does with a bad one;
    /// with none, the mailbox has no quota until the file is fixed.
    static func inspect(_ mailbox: MaildirQuota) -> Result<MaildirQuota.Contents?, DeliveryError> {
        switch mailbox.inspect() {
        case .missing: return .success(nil)
        case .readable(let contents): return .success(contents)
        case .damaged(let why):
            DeliveryLog.logger.warning("quota file \(why); taken as missing: recounted against a configured limit, else no quota until it is fixed")
            return .success(nil)
        case .unusable(let why):
            return .failure(DeliveryError(.temporary, "cannot read the mailbox: its quota file \(why)"))
        }
    }

    private func refusal(_ mailbox: MaildirQuota, usage: QuotaUsage, limit: QuotaLimit, size: Int64) -> DeliveryError {
        let message = "mailbox '\(mailbox.root)' is full: it holds \(usage.bytes) bytes in \(usage.messages) messages "
            + "of its quota \(limit.maildirsizeLine), and this message of \(size) bytes does not fit"
        return DeliveryError(.overQuota(permanent: permanent), permanent ? message : message + "; deferred until mail is removed")
    }
}

/// A mailbox's usage against its limit, for `notmuch-deliver quota`.
public struct QuotaStatus: Sendable {
    public let mailbox: String
    public let bytes: Int64
    public let messages: Int64
    public let limitBytes: Int64?
    public let limitMessages: Int64?
    /// Where the limit comes from: `deliver.quota` (or the command line),
    /// `maildirsize` (another tool's, or ours), or nil: no limit.
    public let limitSource: String?

    /// The highest share of a limit used; nil without a limit.
    public var percent: Int64? {
        let limit = QuotaLimit(bytes: limitBytes, messages: limitMessages)
        return limit.isUnlimited ? nil : QuotaUsage(bytes: bytes, messages: messages).percent(of: limit)
    }
}

extension Delivery {
    /// The usage of the mailbox these options name. Reading follows the
    /// delivery's rules (a stale or corrupt maildirsize is recounted and
    /// rewritten); `recalculate` recounts whatever the file says. Without
    /// any limit the mailbox is counted and no file is written.
    /// A mailbox named by its folder (the mail root of a virtual mailbox,
    /// say), with no notmuch configuration: its limit is its maildirsize's.
    public static func quotaStatus(mailbox path: String, recalculate: Bool) throws(DeliveryError) -> QuotaStatus {
        guard FileSystem.kind(of: FilePath(path)) == .directory else {
            throw DeliveryError(.usage, "mailbox '\(path)' is not a directory")
        }
        var options = DeliveryOptions()
        options.rules = .none
        options.sieve = .none
        return try status(of: Mailboxes(options).mailbox(root: path), recalculate: recalculate)
    }

    /// The same for the mailbox the options and `recipient` name (which
    /// must exist: nothing is created).
    public static func quotaStatus(_ options: DeliveryOptions, recipient: String?,
                                   recalculate: Bool) throws(DeliveryError) -> QuotaStatus {
        try status(of: Mailboxes(options).find(recipient: recipient), recalculate: recalculate)
    }

    private static func status(of found: Mailbox, recalculate: Bool) -> QuotaStatus {
        let settings = found.settings
        let mailbox = MaildirQuota(root: FilePath(settings.mailRoot))
        let configured = settings.quota.limit
        let fileLimit = configured == nil ? mailbox.read()?.limit : nil
        let limit = (configured ?? fileLimit).flatMap { $0.isUnlimited ? nil : $0 }
        let usage: QuotaUsage
        if let limit {
            usage = recalculate ? mailbox.recalculate(limit: limit) : (mailbox.current(limit: limit)?.1 ?? QuotaUsage())
        } else {
            usage = MaildirQuota.count(FilePath(settings.mailRoot))
        }
        return QuotaStatus(mailbox: settings.mailRoot, bytes: usage.bytes, messages: usage.messages,
                           limitBytes: limit?.bytes, limitMessages: limit?.messages,
                           limitSource: limit == nil ? nil : configured != nil ? QuotaPolicy.limitKey : "maildirsize")
    }
}
