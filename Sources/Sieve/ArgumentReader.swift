/// Reads the arguments of one command or test: tagged arguments (with
/// their parameters) through handlers, the positional ones in order.
/// Problems are collected, located, for the compiler to report.
struct ArgumentReader {
    typealias Handler = (inout ArgumentReader) -> Void

    private let arguments: [ArgumentNode]
    private let owner: String
    private let location: SieveLocation
    private var handlers: [String: Handler] = [:]
    /// Where a handler reads its parameter from, while tags are read.
    private var cursor = 0
    private var tagsRead = false
    private var positional: [ArgumentNode] = []
    private var nextPositional = 0
    private(set) var problems: [LocatedProblem] = []

    init(_ arguments: [ArgumentNode], owner: String, location: SieveLocation) {
        self.arguments = arguments
        self.owner = owner
        self.location = location
    }

    /// The place of the argument being read, or of the command.
    private var here: SieveLocation {
        if !tagsRead, cursor > 0, cursor - 1 < arguments.count { return arguments[cursor - 1].location }
        if tagsRead, nextPositional < positional.count { return positional[nextPositional].location }
        return location
    }

    mutating func problem(_ message: String) {
        problems.append(LocatedProblem(location: here, message: message))
    }

    mutating func tag(_ name: String, _ handler: @escaping Handler) {
        handlers[name] = handler
    }

    /// Reads every tag, calling its handler; the other arguments become
    /// the positional ones. Runs once.
    mutating func readTags() {
        guard !tagsRead else { return }
        var seen: Set<String> = []
        while cursor < arguments.count {
            let argument = arguments[cursor]
            cursor += 1
            guard case .tag(let name, let at) = argument else {
                positional.append(argument)
                continue
            }
            guard let handler = handlers[name] else {
                problems.append(LocatedProblem(location: at, message: "\(owner): unknown tagged argument ':\(name)'"))
                continue
            }
            if !seen.insert(name).inserted {
                problems.append(LocatedProblem(location: at, message: "\(owner): ':\(name)' given twice"))
            }
            handler(&self)
        }
        tagsRead = true
    }

    mutating func finishTags() { readTags() }

    /// A tag's parameter: the argument right after it.
    private mutating func parameter() -> ArgumentNode? {
        guard cursor < arguments.count else { return nil }
        if case .tag = arguments[cursor] { return nil }
        defer { cursor += 1 }
        return arguments[cursor]
    }

    mutating func stringList(_ what: String) -> [String] {
        guard case .strings(let strings, _, _)? = parameter() else {
            problem("\(owner): expected \(what) after the tag")
            return []
        }
        return strings
    }

    mutating func singleStringParameter(_ tag: String) -> String? {
        guard case .strings(let strings, _, _)? = parameter(), strings.count == 1 else {
            problem("\(owner): \(tag) needs one string")
            return nil
        }
        return strings[0]
    }

    // MARK: Positional arguments, after readTags.

    private mutating func nextArgument() -> ArgumentNode? {
        readTags()
        guard nextPositional < positional.count else { return nil }
        defer { nextPositional += 1 }
        return positional[nextPositional]
    }

    mutating func singleString(_ what: String) -> String? {
        guard case .strings(let strings, let isList, _)? = nextArgument(), strings.count == 1, !isList || strings.count == 1 else {
            problem("\(owner): expected \(what), a string")
            return nil
        }
        return strings[0]
    }

    mutating func singleNumber(_ what: String) -> Int? {
        guard case .number(let value, _)? = nextArgument() else {
            problem("\(owner): expected \(what), a number")
            return nil
        }
        return value
    }

    mutating func remainingStringList(_ what: String) -> [String]? {
        guard case .strings(let strings, _, _)? = nextArgument() else {
            problem("\(owner): expected \(what), a string list")
            return nil
        }
        return strings
    }

    /// Exactly `count` string lists, else a problem naming `what`.
    mutating func remainingLists(_ count: Int, _ what: String) -> [[String]]? {
        let lists = remainingStringLists()
        guard lists.count == count else {
            problem("\(owner): expected \(what)")
            return nil
        }
        return lists
    }

    /// Exactly `count` single strings.
    mutating func remainingStrings(_ count: Int, _ what: String) -> [String]? {
        guard let lists = remainingLists(count, what) else { return nil }
        guard lists.allSatisfy({ $0.count == 1 }) else {
            problem("\(owner): expected \(what), each a single string")
            return nil
        }
        return lists.map { $0[0] }
    }

    /// Every positional string list left; a number among them is a problem.
    mutating func remainingStringLists() -> [[String]] {
        var lists: [[String]] = []
        while let argument = nextArgument() {
            guard case .strings(let strings, _, _) = argument else {
                problems.append(LocatedProblem(location: argument.location, message: "\(owner): unexpected number"))
                continue
            }
            lists.append(strings)
        }
        return lists
    }

    /// Reports positional arguments nobody read.
    mutating func finish() {
        readTags()
        if nextPositional < positional.count {
            problems.append(LocatedProblem(location: positional[nextPositional].location,
                                           message: "\(owner): too many arguments"))
        }
    }
}
