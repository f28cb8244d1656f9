/// A script as RFC 5228's generic grammar sees it (section 8.2), before
/// anything knows what the commands mean.
struct CommandNode {
    let name: String
    let location: SieveLocation
    let arguments: [ArgumentNode]
    let tests: [TestNode]
    /// nil for a command ended by `;`.
    let block: [CommandNode]?
}

struct TestNode {
    let name: String
    let location: SieveLocation
    let arguments: [ArgumentNode]
    let tests: [TestNode]
    /// Whether the tests were written as a parenthesised list.
    let testList: Bool
}

enum ArgumentNode {
    /// `isList`: written in brackets, even with one element.
    case strings([String], isList: Bool, SieveLocation)
    case number(Int, SieveLocation)
    case tag(String, SieveLocation)

    var location: SieveLocation {
        switch self {
        case .strings(_, _, let location), .number(_, let location), .tag(_, let location): return location
        }
    }
}
