import Rules
import Sieve
import FuzzFacts

/// The Sieve parser and compiler on any text, then the scripts they accept
/// run against one fixed message and mapped onto the rules' effects.
/// Errors must point inside the file; runs must end within their budget.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSieve(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    check(String(decoding: bytes, as: UTF8.self))
    // Depth and size: a short input is also a count (its first two bytes)
    // and a fragment (the rest), repeated into a script of up to about
    // 1.2 MB: blocks, `not`s or test lists thousands deep, a string list of
    // thousands of elements, a script over the size limit.
    if size >= 3, size <= 64 {
        let fragment = String(decoding: UnsafeBufferPointer(rebasing: bytes[2...]), as: UTF8.self)
        let wanted = Int(bytes[0]) << 8 | Int(bytes[1])
        let count = min(wanted * 20, 1_200_000 / max(fragment.utf8.count, 1))
        check(String(repeating: fragment, count: count))
    }
    return 0
}

private func check(_ text: String) {
    let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).count
    switch SieveParser.parse(text, origin: "fuzz") {
    case .failure(let errors):
        guard !errors.errors.isEmpty else { fatalError("a failure with no error") }
        for error in errors.errors {
            guard error.location.line >= 1, error.location.line <= lines, error.location.column >= 1 else {
                fatalError("error outside the file (\(lines) lines): \(error)")
            }
        }
    case .success(let script):
        let rules = SieveRules(script: script, separator: ".")
        let result = rules.run(FixedFacts(), budget: .seconds(2))
        for effect in result.effects { checkName(effect) }
        let hostile = SieveRules(script: script, separator: "/").run(HostileFacts(), budget: .seconds(2))
        checkExpansions(hostile.effects, scriptText: text)
    }
}

/// An expanded value is one tag, one flag or one folder level at most,
/// never an operation (issue 22): run on a message whose every header,
/// address and extension holds tag operations, system flags and
/// separators, no effect may come from the message's operations (unless
/// the script names that tag itself), and no name may hold the message's
/// spaces or separators.
private func checkExpansions(_ effects: [Effect], scriptText: String) {
    let script = scriptText.lowercased()
    // The script's own text could make these; only the message's must not.
    guard !script.contains(HostileFacts.marker) else { return }
    let fromMessageOnly: [(Effect, [String])] = [
        (.removeTag("inbox"), ["inbox"]), (.addTag("spam"), ["spam", "junk"]),
        (.addTag("deleted"), ["deleted"]), (.removeTag("unread"), ["seen", "unread"]),
        (.addTag("flagged"), ["flagged"]),
    ]
    for effect in effects {
        for (forbidden, words) in fromMessageOnly where effect == forbidden && !words.contains(where: script.contains) {
            fatalError("\(effect) from the message's text")
        }
        switch effect {
        case .addTag(let name), .removeTag(let name):
            if name.contains(HostileFacts.marker), name.contains(where: { " \t\n\0".contains($0) }) {
                fatalError("tag '\(name)' holds the message's separators")
            }
        case .folder(let name), .existingFolder(let name), .copy(let name, _):
            if name.contains(HostileFacts.marker + "/" + HostileFacts.marker) {
                fatalError("folder '\(name)' has levels from the message")
            }
        case .discard:
            break
        }
    }
}

/// Every value the message gives is operations, flags and separators,
/// around a marker no script is likely to hold.
private struct HostileFacts: MessageFacts {
    static let marker = "zqx"
    static let value = "zqx -inbox -unread +spam +deleted \\Seen $Junk \\Flagged\tzqx/zqx.zqx\n\0 +zqx"

    func headerValues(_ name: String) -> [String] { [Self.value, "<\(Self.value)@example.org>"] }
    var recipient: String? { Self.value + "@example.org" }
    var sender: String? { Self.value + "@example.org" }
    var recipientExtension: String? { Self.value }
    var size: Int { 4321 }
    func matches(query: String) throws -> Bool { query.count % 2 == 1 }
}

/// A tag or folder a script makes must be one libnotmuch and the file system could take.
private func checkName(_ effect: Effect) {
    switch effect {
    case .addTag(let name), .removeTag(let name):
        guard !name.isEmpty, name.utf8.count <= 200 else { fatalError("tag '\(name)'") }
    case .folder(let name), .existingFolder(let name):
        guard !name.isEmpty else { fatalError("empty folder") }
    case .copy(let name, let mustExist):
        // The top level is "", and always exists.
        guard !(name.isEmpty && mustExist) else { fatalError("a copy to the top level that must exist") }
    case .discard:
        break
    }
}
