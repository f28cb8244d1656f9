import MaildirKit
import Notmuch
import SystemPackage
import Threads

/// Warnings put into a mailbox as it fills up, as maildrop's `-w` and
/// Dovecot's quota_warning do: when a delivery takes usage to or past a
/// threshold (`deliver.quota_warn = 80;95`), a message made from a
/// template is delivered into the mailbox itself, tagged so a notmuch user
/// sees it. Once per threshold crossed, and again at most once a day while
/// usage stays at or above one.
struct QuotaWarnings: Sendable {
    /// Percentages, ascending.
    var thresholds: [Int64] = []
    var tags: [TagOperation] = [.add("quota-warning")]
    var templatePath: String?

    static let thresholdsKey = "deliver.quota_warn"
    static let tagsKey = "deliver.quota_warning_tags"
    static let templateKey = "deliver.quota_warning_template"

    /// deliverquota's interval: a full mailbox is reminded daily, not per message.
    static let repeatInterval = 24 * 3600

    init(value: (String) -> String?) throws(DeliveryError) {
        if let text = value(Self.thresholdsKey) {
            var thresholds: [Int64] = []
            for item in Self.items(text) {
                guard !item.isEmpty, item.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let percent = Int64(item),
                      percent >= 1, percent <= 100 else {
                    throw DeliveryError.config("\(Self.thresholdsKey) = '\(text)' is not a list of percentages "
                                               + "between 1 and 100, such as 80;95")
                }
                thresholds.append(percent)
            }
            self.thresholds = Array(Set(thresholds)).sorted()
        }
        if let text = value(Self.tagsKey) {
            var tags: [TagOperation] = []
            for item in Self.items(text) where !item.isEmpty {
                do { tags.append(try TagOperation(parsing: item.first == "-" || item.first == "+" ? item : "+" + item)) }
                catch { throw DeliveryError.config("\(Self.tagsKey) = '\(text)': \(error.message)") }
            }
            self.tags = tags
        }
        if let text = value(Self.templateKey), !text.isEmpty {
            guard text.hasPrefix("/") else {
                throw DeliveryError.config("\(Self.templateKey) = '\(text)' is not an absolute path")
            }
            templatePath = text
        }
    }

    /// A notmuch list (`;`) or a deliverquota-style one (`,`).
    private static func items(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == ";" || $0 == "," }).map {
            String($0.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
        }
    }

    /// The highest threshold `percent` has reached, if any.
    func reached(_ percent: Int64) -> Int64? { thresholds.last { percent >= $0 } }

    /// Whether to warn for `threshold` now, given the last warning
    /// (threshold and time) remembered: a higher threshold than the last
    /// one warned about is news; the same or a lower one waits a day.
    static func isDue(_ threshold: Int64, last: (threshold: Int64, time: Int)?, now: Int) -> Bool {
        guard let last else { return true }
        return threshold > last.threshold || now - last.time >= repeatInterval
    }

    /// The state file: in the database's folder, where nothing counts
    /// against the quota and `notmuch new` does not look.
    static func stateFile(databasePath: String) -> FilePath {
        FilePath(Database.folder(databasePath: databasePath)).appending("notmuch-deliver-quota-warning")
    }

    /// Decides, under the state file's lock, whether a warning is due for
    /// `usage`; records it as sent when it is (the caller then delivers it)
    /// and forgets the last one when usage is back under every threshold.
    /// A concurrent delivery holding the lock is deciding already: this
    /// one says nothing. Nil: no warning.
    func claim(_ usage: QuotaUsage, limit: QuotaLimit, databasePath: String, now: Int = WallClock.seconds) -> Int64? {
        guard !thresholds.isEmpty else { return nil }
        let path = Self.stateFile(databasePath: databasePath)
        let reached = reached(usage.percent(of: limit))
        guard let fd = try? FileSystem.openRegularFile(path.string, for: .updating, followSymlinks: false) else {
            return nil
        }
        defer { try? fd.close() }
        guard FileSystem.tryLockExclusively(fd) else { return nil }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = (try? buffer.withUnsafeMutableBytes { try fd.read(fromAbsoluteOffset: 0, into: $0) }) ?? 0
        let fields = String(decoding: buffer.prefix(count), as: UTF8.self).split(whereSeparator: \.isWhitespace)
        var last: (threshold: Int64, time: Int)?
        if fields.count == 2, let threshold = Int64(fields[0]), let time = Int(fields[1]) { last = (threshold, time) }
        guard let reached else {
            if last != nil { _ = try? fd.resize(to: 0) }
            return nil
        }
        guard Self.isDue(reached, last: last, now: now) else { return nil }
        let text = "\(reached) \(now)\n"
        _ = try? fd.resize(to: 0)
        _ = try? text.utf8CString.dropLast().withUnsafeBytes { try fd.write(toAbsoluteOffset: 0, $0) }
        return reached
    }

    /// The message: the administrator's template, else the built-in text,
    /// with `{percent}`, `{usage}`, `{messages}`, `{limit}`, `{threshold}`
    /// and `{mailbox}` filled in, below a Date and a Message-ID added as
    /// deliverquota adds them. An unreadable template falls back to the
    /// built-in text: the delivery that triggered the warning has succeeded.
    func message(usage: QuotaUsage, limit: QuotaLimit, threshold: Int64, mailbox: String,
                 recipient: String?, now: Int = WallClock.seconds) -> String {
        let template = templatePath.flatMap(Self.readTemplate) ?? Self.defaultTemplate
        var text = template
        let values: [(String, String)] = [
            ("{percent}", "\(usage.percent(of: limit))"),
            ("{usage}", "\(usage.bytes)"),
            ("{messages}", "\(usage.messages)"),
            ("{limit}", Self.describe(limit)),
            ("{threshold}", "\(threshold)"),
            ("{mailbox}", mailbox),
            ("{recipient}", recipient ?? "postmaster"),
        ]
        for (placeholder, value) in values { text = text.replacing(placeholder, with: Self.headerSafe(value)) }
        let host = FileSystem.hostName()
        return "Date: \(Self.rfc5322Date(now))\nMessage-ID: <quota-warning.\(now).\(threshold).\(ProcessEnvironment.processID)@\(host)>\n" + text
    }

    /// No line break may come in with a value (a mailbox path is the
    /// administrator's, but a recipient is the sender's).
    private static func headerSafe(_ value: String) -> String {
        String(value.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }

    /// Templates beyond this are not read: a warning is a short note.
    static let largestTemplate = 32 * 1024

    private static func readTemplate(_ path: String) -> String? {
        guard let fd = try? FileSystem.openRegularFile(path) else { return nil }
        defer { try? fd.close() }
        var bytes = [UInt8](repeating: 0, count: largestTemplate)
        var count = 0
        while count < largestTemplate {
            let got = (try? bytes.withUnsafeMutableBytes { try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[count...])) }) ?? 0
            guard got > 0 else { break }
            count += got
        }
        return count > 0 ? String(decoding: bytes[..<count], as: UTF8.self) : nil
    }

    static func describe(_ limit: QuotaLimit) -> String {
        var parts: [String] = []
        if let bytes = limit.bytes { parts.append("\(bytes) bytes") }
        if let messages = limit.messages { parts.append("\(messages) messages") }
        return parts.joined(separator: " or ")
    }

    static let defaultTemplate = """
        From: Mail Delivery System <MAILER-DAEMON>
        To: {recipient}
        Subject: Your mailbox is {percent}% full
        Auto-Submitted: auto-generated
        MIME-Version: 1.0
        Content-Type: text/plain; charset=utf-8

        Your mailbox {mailbox} is {percent}% full: it holds {usage} bytes in
        {messages} messages, and its quota is {limit}.

        When it is full, new mail is held back or returned to its senders.
        Delete or archive messages you no longer need, then empty Trash.

        """

    private static func rfc5322Date(_ seconds: Int) -> String {
        WallClock.utc(seconds, format: "%a, %d %b %Y %H:%M:%S +0000")
    }
}
