import ArgumentParser
import DeliveryKit
import MaildirKit

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show which rules match the message on standard input, and why, without delivering it.")

    @OptionGroup var delivery: DeliveryArguments

    func run() throws {
        DeliveryLog.bootstrap(verbose: true)
        do {
            let request = delivery.request
            let report = try Delivery.explain(try request.options(), envelope: try request.envelope(), input: .standardInput)
            print(ExplainFormatter.format(report))
        } catch {
            complain(error.message)
            throw ExitCode(error.exitStatus.rawValue)
        }
    }
}

enum ExplainFormatter {
    /// Why a delivery would not use a folder a rule or a script chose (the
    /// folder gate's verdict on its name), as the folder line says it; nil
    /// when the name passes.
    static func refusal(of folder: String) -> String? {
        do throws(FolderError) { _ = try MailFolder.components(of: folder) } catch {
            return "(default): '\(folder)' is not used: \(error.message)"
        }
        return nil
    }

    static func format(_ report: DeliveryReport) -> String {
        var lines: [String] = []
        // Header values and the Message-ID come from the message: shown
        // escaped, so that each check stays one line and a terminal sees no escapes.
        lines.append("message: \(LogText.oneLine(report.messageID ?? "(none)"))")
        if report.traces.isEmpty { lines.append("rules: none apply") }
        for trace in report.traces {
            if trace.rule.line == 0 {
                // A Sieve script: its steps, as they ran.
                lines.append(trace.rule.text + ":")
                for check in trace.checks { lines.append("    \(check.condition)") }
                if !trace.effects.isEmpty { lines.append("    => " + trace.effects.map(\.description).joined(separator: " ")) }
                for note in trace.notes { lines.append("    note: \(note)") }
                continue
            }
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
                switch effect {
                case .folder(let name): return Self.refusal(of: name) ?? name
                case .existingFolder(let name):
                    return Self.refusal(of: name) ?? name + " (if it exists; otherwise the default)"
                default: return nil
                }
            }.last
            lines.append("folder: \(folder ?? "(default)")")
            let copies = report.traces.flatMap(\.effects).compactMap { effect -> String? in
                guard case .copy(let name, let mustExist) = effect else { return nil }
                return (name.isEmpty ? "(default)" : name) + (mustExist ? " (if it exists)" : "")
            }
            if !copies.isEmpty { lines.append("copies: \(copies.joined(separator: ", "))") }
        }
        // Every line, not only the values known to come from the message:
        // a Sieve step, a note or a folder may hold header text too.
        return lines.map(LogText.oneLine).joined(separator: "\n")
    }
}
