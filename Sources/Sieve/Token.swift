/// One lexical unit of RFC 5228's grammar (section 8.1).
enum Token: Equatable {
    case identifier(String)
    /// `:name`, without the colon.
    case tag(String)
    case number(Int)
    /// A quoted or `text:` string, escapes and dot-stuffing already undone.
    case string(String)
    case leftBracket, rightBracket, leftParenthesis, rightParenthesis
    case leftBrace, rightBrace, comma, semicolon
    case end

    var spelling: String {
        switch self {
        case .identifier(let name): return "'\(name)'"
        case .tag(let name): return "':\(name)'"
        case .number(let value): return "the number \(value)"
        case .string: return "a string"
        case .leftBracket: return "'['"
        case .rightBracket: return "']'"
        case .leftParenthesis: return "'('"
        case .rightParenthesis: return "')'"
        case .leftBrace: return "'{'"
        case .rightBrace: return "'}'"
        case .comma: return "','"
        case .semicolon: return "';'"
        case .end: return "the end of the script"
        }
    }
}

struct LocatedToken {
    let token: Token
    let location: SieveLocation
}
