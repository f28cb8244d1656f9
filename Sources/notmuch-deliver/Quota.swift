import ArgumentParser
import DeliveryKit
import FoundationEssentials

struct Quota: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a mailbox's usage against its quota (the Maildir++ maildirsize).",
        discussion: "The limit is deliver.quota, else the first line of the mailbox's maildirsize. "
            + "Without --recalculate the figures are the file's, recounted when the Maildir++ rules ask.")

    @Argument(help: ArgumentHelp("Mailbox folders to report (a virtual mailbox's mail root, e.g. "
                                 + "/srv/vmail/example.org/alice); default: the configured mailbox.",
                                 valueName: "mailbox"))
    var mailboxes: [String] = []

    @OptionGroup var notmuch: NotmuchConfigArguments

    @Option(help: ArgumentHelp("With --recipient: a virtual mailbox, as a delivery with this --mail-root finds it.",
                               valueName: "template"))
    var mailRoot: String?

    @Option(help: "With --mail-root: the address whose mailbox it is.")
    var recipient: String?

    @Flag(help: "Count the mailbox again and rewrite its maildirsize.")
    var recalculate = false

    @Flag(help: "Print one JSON object per mailbox, one per line, for scripts.")
    var json = false

    func validate() throws {
        if (mailRoot == nil) != (recipient == nil) {
            throw ValidationError("--mail-root and --recipient go together")
        }
        if mailRoot != nil && !mailboxes.isEmpty {
            throw ValidationError("give mailbox folders or --mail-root and --recipient, not both")
        }
    }

    func run() throws {
        var statuses: [QuotaStatus] = []
        do {
            if mailboxes.isEmpty {
                var options = DeliveryOptions()
                notmuch.apply(to: &options)
                options.mailRootTemplate = mailRoot
                statuses.append(try Delivery.quotaStatus(options, recipient: recipient, recalculate: recalculate))
            } else {
                for mailbox in mailboxes {
                    statuses.append(try Delivery.quotaStatus(mailbox: mailbox, recalculate: recalculate))
                }
            }
        } catch {
            complain(error.message)
            throw ExitCode(error.exitStatus.rawValue)
        }
        for status in statuses { print(json ? Self.json(status) : Self.text(status), terminator: "") }
    }

    static func text(_ status: QuotaStatus) -> String {
        var limits: [String] = []
        if let bytes = status.limitBytes { limits.append("\(bytes) bytes") }
        if let messages = status.limitMessages { limits.append("\(messages) messages") }
        var text = "mailbox: \(status.mailbox)\nusage: \(status.bytes) bytes in \(status.messages) messages\n"
        if let source = status.limitSource, let percent = status.percent {
            text += "limit: \(limits.joined(separator: ", ")) (from \(source))\nused: \(percent)%\n"
        } else {
            text += "limit: none\n"
        }
        return text
    }

    /// The figures as JSON, through Foundation's encoder.
    static func json(_ status: QuotaStatus) -> String {
        struct Figures: Encodable {
            let mailbox: String
            let bytes, messages: Int64
            let limit_bytes, limit_messages, percent: Int64?
            let limit_source: String?

            // Absent values are written as null, so that every key is always there.
            func encode(to encoder: Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(mailbox, forKey: .mailbox)
                try container.encode(bytes, forKey: .bytes)
                try container.encode(messages, forKey: .messages)
                try container.encode(limit_bytes, forKey: .limit_bytes)
                try container.encode(limit_messages, forKey: .limit_messages)
                try container.encode(limit_source, forKey: .limit_source)
                try container.encode(percent, forKey: .percent)
            }

            enum CodingKeys: String, CodingKey {
                case mailbox, bytes, messages, limit_bytes, limit_messages, limit_source, percent
            }
        }
        let figures = Figures(mailbox: status.mailbox, bytes: status.bytes, messages: status.messages,
                              limit_bytes: status.limitBytes, limit_messages: status.limitMessages,
                              percent: status.percent, limit_source: status.limitSource)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(figures)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
