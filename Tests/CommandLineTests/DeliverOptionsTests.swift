import ArgumentParser
import Foundation
import Testing
@testable import notmuch_deliver

/// The deliver options are declared once, for ArgumentParser; the quick
/// reader's tables must name the same ones. These tests read ArgumentParser's
/// own model of the commands (its `--experimental-dump-help` JSON), so an
/// option added to `Deliver` and forgotten in `QuickCommandLine` fails here.
struct DeliverOptionsTests {
    /// The part of ArgumentParser's dump these tests read.
    struct Dump: Decodable {
        struct Command: Decodable { let arguments: [Argument] }
        struct Argument: Decodable {
            struct Name: Decodable { let kind: String; let name: String }
            let kind: String
            let names: [Name]?
            let allValues: [String]?
        }
        let command: Command
    }

    struct Declared {
        /// As typed on a command line: `--folder`, `-n`.
        let spellings: [String]
        let takesValue: Bool
        /// A value ArgumentParser accepts for it.
        let sample: String
    }

    /// The named options and flags of `command`, help's aside.
    static func declared(_ command: ParsableCommand.Type) throws -> [Declared] {
        let dump = try JSONDecoder().decode(Dump.self, from: Data(command._dumpHelp().utf8))
        return dump.command.arguments.compactMap { argument in
            guard let names = argument.names, argument.kind != "positional" else { return nil }
            let spellings = names.map { ($0.kind == "long" ? "--" : "-") + $0.name }
            if spellings.contains("--help") { return nil }
            return Declared(spellings: spellings, takesValue: argument.kind == "option",
                            sample: argument.allValues?.last ?? "1")
        }
    }

    @Test("every Deliver option is read by the quick reader, as ArgumentParser reads it")
    func quickReaderKnowsEveryOption() throws {
        let declared = try Self.declared(Deliver.self)
        for option in declared {
            for spelling in option.spellings {
                let arguments = option.takesValue ? [spelling, option.sample] : [spelling]
                let quick = QuickCommandLine.deliveryRequest(arguments)
                #expect(quick != nil, "QuickCommandLine does not know \(spelling)")
                #expect(quick == (try Deliver.parse(arguments).request), "\(arguments)")
            }
        }
    }

    @Test("the quick reader knows no option Deliver does not declare")
    func quickReaderKnowsNoOtherOption() throws {
        let declared = try Self.declared(Deliver.self)
        let options = Set(declared.filter(\.takesValue).flatMap(\.spellings))
        let flags = Set(declared.filter { !$0.takesValue }.flatMap(\.spellings))
        #expect(Set(QuickCommandLine.options.keys) == options)
        #expect(Set(QuickCommandLine.flags.keys) == flags)
    }

    /// A value taken for a tag operation, or a flag taken for one, would
    /// change what is delivered where; for `explain` as for a delivery.
    @Test("tag operations are told from every option's value and every short flag", arguments: ["deliver", "explain"])
    func splitKnowsEveryOption(subcommand: String) throws {
        let command: ParsableCommand.Type = subcommand == "explain" ? Explain.self : Deliver.self
        for option in try Self.declared(command) {
            for spelling in option.spellings {
                if option.takesValue {
                    #expect(NotmuchDeliver.optionsWithValue.contains(spelling), "\(spelling)")
                    let split = NotmuchDeliver.splitTagOperations([spelling, "-inbox"])
                    #expect(split.operations.isEmpty, "\(spelling) -inbox")
                } else if !spelling.hasPrefix("--") {
                    #expect(NotmuchDeliver.shortFlags.contains(spelling), "\(spelling)")
                }
            }
        }
    }
}
