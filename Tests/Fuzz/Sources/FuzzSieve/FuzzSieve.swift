import Rules
import Sieve

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
    }
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

/// One message with the headers scripts usually test.
private struct FixedFacts: MessageFacts {
    let headers: [String: [String]] = [
        "from": ["\"Alice (A)\" <alice+x@example.com>, bob@example.org"],
        "to": ["undisclosed-recipients:;", "me+lists@example.org"],
        "subject": ["[dev] Release 2.0 *is* out? \\ ${1}"],
        "list-id": ["Developers <dev.lists.example.org>"],
        "x-spam-score": ["7"],
        "received": ["a", "b", "c"],
    ]

    func headerValues(_ name: String) -> [String] { headers[name.lowercased()] ?? [] }
    var recipient: String? { "me+lists@example.org" }
    var sender: String? { "bounce@lists.example.org" }
    var recipientExtension: String? { "lists" }
    var size: Int { 4321 }
    func matches(query: String) throws -> Bool { query.count % 2 == 0 }
}
