import ArgumentParser
import DeliveryKit
#if canImport(Glibc)
import Glibc
#endif

struct Quota: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a mailbox's usage against its quota (the Maildir++ maildirsize).",
        discussion: "The limit is deliver.quota, else the first line of the mailbox's maildirsize. "
            + "Without --recalculate the figures are the file's, recounted when the Maildir++ rules ask.")

    @OptionGroup var notmuch: NotmuchConfigArguments

    @Option(help: ArgumentHelp("With --recipient: a virtual mailbox, as a delivery with this --mail-root finds it.",
                               valueName: "template"))
    var mailRoot: String?

    @Option(help: "With --mail-root: the address whose mailbox it is.")
    var recipient: String?

    @Flag(help: "Count the mailbox again and rewrite its maildirsize.")
    var recalculate = false

    @Flag(help: "Print one JSON object, for scripts.")
    var json = false

    func validate() throws {
        if (mailRoot == nil) != (recipient == nil) {
            throw ValidationError("--mail-root and --recipient go together")
        }
    }

    func run() throws {
        var options = DeliveryOptions()
        notmuch.apply(to: &options)
        options.mailRootTemplate = mailRoot
        options.envelope = Envelope(recipient: recipient)
        let status: QuotaStatus
        do { status = try Delivery.quotaStatus(options, recalculate: recalculate) } catch {
            complain(error.message)
            throw ExitCode(error.exitStatus.rawValue)
        }
        print(json ? Self.json(status) : Self.text(status), terminator: "")
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

    static func json(_ status: QuotaStatus) -> String {
        func number(_ value: Int64?) -> String { value.map { "\($0)" } ?? "null" }
        func string(_ value: String?) -> String { value.map(jsonString) ?? "null" }
        return "{\"mailbox\":\(jsonString(status.mailbox)),\"bytes\":\(status.bytes),\"messages\":\(status.messages),"
            + "\"limit_bytes\":\(number(status.limitBytes)),\"limit_messages\":\(number(status.limitMessages)),"
            + "\"limit_source\":\(string(status.limitSource)),\"percent\":\(number(status.percent))}\n"
    }

    /// A JSON string: quotes, backslashes and control characters escaped.
    static func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
