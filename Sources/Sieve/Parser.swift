/// Reads RFC 5228's generic grammar into `CommandNode`s, refusing
/// nesting deeper than `maximumDepth` and scripts longer than
/// `maximumScriptLength`: nothing a script says may crash a delivery.
struct Parser {
    /// Blocks and tests nested inside each other, counted together. The
    /// parser and the interpreter recurse once per level; real scripts use
    /// a handful.
    static let maximumDepth = 100
    /// The longest script (1 MiB, the largest rules file read).
    static let maximumScriptLength = 1 << 20
    /// Elements of one string list, and tests of one test list: bounds the
    /// work of a single test whatever its size.
    static let maximumListLength = 10_000

    private var lexer: Lexer
    private var current: LocatedToken
    private var depth = 0

    private init(_ text: String) throws(LocatedProblem) {
        lexer = Lexer(text)
        current = LocatedToken(token: .end, location: SieveLocation(line: 1, column: 1))
        current = try lexer.next()
    }

    static func parse(_ text: String) throws(LocatedProblem) -> [CommandNode] {
        guard text.utf8.count <= maximumScriptLength else {
            throw LocatedProblem(location: SieveLocation(line: 1, column: 1),
                                 message: "script longer than \(maximumScriptLength) bytes")
        }
        var parser = try Parser(text)
        let commands = try parser.commands()
        guard case .end = parser.current.token else {
            throw parser.unexpected("a command")
        }
        return commands
    }

    private mutating func take() throws(LocatedProblem) -> LocatedToken {
        let token = current
        current = try lexer.next()
        return token
    }

    private func unexpected(_ expected: String) -> LocatedProblem {
        LocatedProblem(location: current.location, message: "expected \(expected), found \(current.token.spelling)")
    }

    private mutating func enter(_ location: SieveLocation) throws(LocatedProblem) {
        depth += 1
        if depth > Self.maximumDepth {
            throw LocatedProblem(location: location, message: "blocks and tests nested more than \(Self.maximumDepth) deep")
        }
    }

    private mutating func commands() throws(LocatedProblem) -> [CommandNode] {
        var result: [CommandNode] = []
        while case .identifier = current.token {
            result.append(try command())
        }
        return result
    }

    private mutating func command() throws(LocatedProblem) -> CommandNode {
        let start = try take()
        guard case .identifier(let name) = start.token else { throw unexpected("a command") }
        let arguments = try self.arguments()
        let (tests, _) = try testsAfterArguments()
        switch current.token {
        case .semicolon:
            _ = try take()
            return CommandNode(name: name, location: start.location, arguments: arguments, tests: tests, block: nil)
        case .leftBrace:
            let open = try take()
            try enter(open.location)
            let block = try commands()
            guard case .rightBrace = current.token else {
                throw LocatedProblem(location: current.location,
                                     message: "expected '}' to close the '{' at line \(open.location.line), column \(open.location.column), found \(current.token.spelling)")
            }
            _ = try take()
            depth -= 1
            return CommandNode(name: name, location: start.location, arguments: arguments, tests: tests, block: block)
        default:
            throw unexpected("';' or '{' after the command '\(name)'")
        }
    }

    private mutating func arguments() throws(LocatedProblem) -> [ArgumentNode] {
        var result: [ArgumentNode] = []
        while true {
            switch current.token {
            case .tag(let name):
                result.append(.tag(name.lowercased(), try take().location))
            case .number(let value):
                result.append(.number(value, try take().location))
            case .string(let value):
                result.append(.strings([value], isList: false, try take().location))
            case .leftBracket:
                let open = try take()
                var strings: [String] = []
                repeat {
                    if !strings.isEmpty { _ = try take() }
                    guard case .string(let value) = current.token else { throw unexpected("a string in the list") }
                    strings.append(value)
                    _ = try take()
                    if strings.count > Self.maximumListLength {
                        throw LocatedProblem(location: open.location, message: "string list longer than \(Self.maximumListLength) elements")
                    }
                } while current.token == .comma
                guard current.token == .rightBracket else { throw unexpected("',' or ']' in the string list") }
                _ = try take()
                result.append(.strings(strings, isList: true, open.location))
            default:
                return result
            }
        }
    }

    /// A single test or a parenthesised list, if one follows; `listed` says which.
    private mutating func testsAfterArguments() throws(LocatedProblem) -> ([TestNode], listed: Bool) {
        switch current.token {
        case .identifier:
            return ([try test()], false)
        case .leftParenthesis:
            let open = try take()
            try enter(open.location)
            var tests: [TestNode] = []
            repeat {
                if !tests.isEmpty { _ = try take() }
                guard case .identifier = current.token else { throw unexpected("a test") }
                tests.append(try test())
                if tests.count > Self.maximumListLength {
                    throw LocatedProblem(location: open.location, message: "test list longer than \(Self.maximumListLength) tests")
                }
            } while current.token == .comma
            guard current.token == .rightParenthesis else { throw unexpected("',' or ')' in the test list") }
            _ = try take()
            depth -= 1
            return (tests, true)
        default:
            return ([], false)
        }
    }

    private mutating func test() throws(LocatedProblem) -> TestNode {
        let start = try take()
        guard case .identifier(let name) = start.token else { throw unexpected("a test") }
        try enter(start.location)
        let arguments = try self.arguments()
        let (tests, listed) = try testsAfterArguments()
        depth -= 1
        return TestNode(name: name.lowercased(), location: start.location, arguments: arguments, tests: tests, testList: listed)
    }
}
