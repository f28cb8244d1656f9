/// Turns the generic syntax into a `SieveScript`: knows every command and
/// test, checks their arguments, and that each extension used is required.
/// Collects every mistake it can, each located.
struct Compiler {
    private var capabilities: Set<String> = []
    private(set) var errors: [LocatedProblem] = []
    private var usesNotmuchTest = false

    static func compile(_ commands: [CommandNode], origin: String) -> (SieveScript?, [LocatedProblem]) {
        var compiler = Compiler()
        let statements = compiler.block(commands, topLevel: true)
        guard compiler.errors.isEmpty else { return (nil, compiler.errors) }
        return (SieveScript(origin: origin, statements: statements, capabilities: compiler.capabilities,
                            usesNotmuchTest: compiler.usesNotmuchTest), [])
    }

    private var variables: Bool { capabilities.contains("variables") }

    private mutating func fail(_ message: String, at location: SieveLocation) {
        errors.append(LocatedProblem(location: location, message: message))
    }

    /// Whether `capability` was required; reports it when not.
    @discardableResult
    private mutating func need(_ capability: String, for what: String, at location: SieveLocation) -> Bool {
        if capabilities.contains(capability) { return true }
        fail("\(what) needs require \"\(capability)\"", at: location)
        return false
    }

    private mutating func block(_ commands: [CommandNode], topLevel: Bool) -> [Statement] {
        var statements: [Statement] = []
        var requiresAllowed = topLevel
        var index = 0
        while index < commands.count {
            let command = commands[index]
            let name = command.name.lowercased()
            if name == "require" {
                if requiresAllowed { require(command) } else {
                    fail("require must come before any other command, at the top of the script", at: command.location)
                }
                index += 1
                continue
            }
            requiresAllowed = false
            if name == "if" {
                // An if takes the elsif and else that follow it.
                var branches: [(Condition, [Statement])] = []
                var otherwise: [Statement]?
                branches.append((conditionOfBranch(command), blockOf(command)))
                index += 1
                while index < commands.count {
                    let next = commands[index]
                    let nextName = next.name.lowercased()
                    if nextName == "elsif" {
                        branches.append((conditionOfBranch(next), blockOf(next)))
                    } else if nextName == "else" {
                        expectNoArguments(next)
                        otherwise = blockOf(next)
                        index += 1
                        break
                    } else {
                        break
                    }
                    index += 1
                }
                statements.append(Statement(kind: .conditional(branches: branches, otherwise: otherwise), location: command.location))
                continue
            }
            if name == "elsif" || name == "else" {
                fail("\(name) without an if before it", at: command.location)
                index += 1
                continue
            }
            if command.block != nil {
                fail("\(name) takes no block", at: command.location)
            }
            if let statement = simpleCommand(command, name: name) { statements.append(statement) }
            index += 1
        }
        return statements
    }

    private mutating func require(_ command: CommandNode) {
        guard command.arguments.count == 1, case .strings(let names, _, let location) = command.arguments[0],
              command.tests.isEmpty, command.block == nil else {
            fail("require takes one string or string list: the extensions", at: command.location)
            return
        }
        for name in names {
            if Capabilities.supported.contains(name) {
                capabilities.insert(name)
            } else {
                fail(Capabilities.refusal(name), at: location)
            }
        }
    }

    private mutating func conditionOfBranch(_ command: CommandNode) -> Condition {
        if !command.arguments.isEmpty { fail("\(command.name) takes a test, not arguments", at: command.arguments[0].location) }
        guard command.tests.count == 1 else {
            fail("\(command.name) needs exactly one test", at: command.location)
            return Condition(kind: .constant(false), location: command.location, name: "false")
        }
        return condition(command.tests[0])
    }

    private mutating func blockOf(_ command: CommandNode) -> [Statement] {
        guard let block = command.block else {
            fail("\(command.name) needs a block: { … }", at: command.location)
            return []
        }
        return self.block(block, topLevel: false)
    }

    private mutating func expectNoArguments(_ command: CommandNode) {
        if let first = command.arguments.first { fail("\(command.name) takes no arguments", at: first.location) }
        if !command.tests.isEmpty { fail("\(command.name) takes no test", at: command.location) }
    }

    private func string(_ text: String) -> ScriptString {
        let decoded = capabilities.contains("encoded-character") ? EncodedCharacters.decode(text) : text
        return ScriptString(decoded, variables: variables)
    }

    private mutating func simpleCommand(_ command: CommandNode, name: String) -> Statement? {
        if !command.tests.isEmpty {
            fail("\(name) takes no test", at: command.location)
            return nil
        }
        var reader = ArgumentReader(command.arguments, owner: name, location: command.location)
        let kind: Statement.Kind?
        switch name {
        case "stop":
            kind = .stop
        case "discard":
            kind = .discard
        case "keep":
            var flags: [String]?
            reader.tag("flags") { reader in flags = reader.stringList("the flags") }
            reader.finishTags()
            if flags != nil { need("imap4flags", for: "keep :flags", at: command.location) }
            kind = .keep(flags: flags.map { $0.map(string) })
        case "fileinto":
            need("fileinto", for: "fileinto", at: command.location)
            var create = false, copy = false
            var flags: [String]?
            reader.tag("create") { _ in create = true }
            reader.tag("copy") { _ in copy = true }
            reader.tag("flags") { reader in flags = reader.stringList("the flags") }
            reader.finishTags()
            if create { need("mailbox", for: "fileinto :create", at: command.location) }
            if copy { need("copy", for: "fileinto :copy", at: command.location) }
            if flags != nil { need("imap4flags", for: "fileinto :flags", at: command.location) }
            let mailbox = reader.singleString("the mailbox")
            kind = mailbox.map { .fileinto(mailbox: string($0), create: create, copy: copy, flags: flags.map { $0.map(string) }) }
        case "addflag", "setflag", "removeflag":
            need("imap4flags", for: name, at: command.location)
            reader.finishTags()
            let lists = reader.remainingStringLists()
            var variable: ScriptString?
            var flags: [String] = []
            if lists.count == 2, lists[0].count == 1 {
                need("variables", for: "\(name) with a variable name", at: command.location)
                variable = string(lists[0][0])
                flags = lists[1]
            } else if lists.count == 1 {
                flags = lists[0]
            } else {
                reader.problem("\(name) takes an optional variable name and a list of flags")
            }
            kind = .flags(FlagOperation(rawValue: name)!, variable: variable, flags: flags.map(string))
        case "set":
            need("variables", for: "set", at: command.location)
            var modifiers: [Modifier] = []
            for modifier in ["lower", "upper", "lowerfirst", "upperfirst", "quotewildcard", "quoteregex", "length"] {
                reader.tag(modifier) { _ in modifiers.append(Modifier(rawValue: modifier)!) }
            }
            reader.finishTags()
            if modifiers.contains(.quoteregex) { need("regex", for: "set :quoteregex", at: command.location) }
            modifiers.sort()
            for (a, b) in zip(modifiers, modifiers.dropFirst()) where a.precedence == b.precedence {
                reader.problem("set: :\(a.rawValue) and :\(b.rawValue) cannot be combined")
            }
            let strings = reader.remainingStrings(2, "a variable name and a value")
            guard let strings else { kind = nil; break }
            let variableName = strings[0]
            if !Self.isVariableName(variableName) {
                reader.problem("set: '\(variableName)' is not a valid variable name")
            }
            kind = .set(name: variableName.lowercased(), value: string(strings[1]), modifiers: modifiers)
        case "tag":
            need("vnd.notmuch", for: "tag", at: command.location)
            reader.finishTags()
            kind = reader.singleString("the tag operations").map { .tag(string($0)) }
        case "redirect":
            fail("redirect is not supported: notmuch-deliver sends no mail", at: command.location)
            return nil
        case "reject", "ereject", "vacation", "notify":
            fail("\(name) is not supported: \(Capabilities.refused[name] ?? "")", at: command.location)
            return nil
        default:
            fail("unknown command '\(command.name)'", at: command.location)
            return nil
        }
        reader.finish()
        errors += reader.problems
        return kind.map { Statement(kind: $0, location: command.location) }
    }

    static func isVariableName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

    // MARK: Tests

    private mutating func condition(_ test: TestNode) -> Condition {
        var reader = ArgumentReader(test.arguments, owner: test.name, location: test.location)
        let kind = conditionKind(test, &reader)
        if !["not", "allof", "anyof"].contains(test.name), !test.tests.isEmpty {
            reader.problem("\(test.name) takes no tests")
        }
        reader.finish()
        errors += reader.problems
        return Condition(kind: kind ?? .constant(false), location: test.location, name: test.name)
    }

    private mutating func conditionKind(_ test: TestNode, _ reader: inout ArgumentReader) -> Condition.Kind? {
        switch test.name {
        case "true": return .constant(true)
        case "false": return .constant(false)
        case "not":
            guard test.tests.count == 1, !test.testList else {
                reader.problem("not takes exactly one test")
                return nil
            }
            return .not(condition(test.tests[0]))
        case "allof", "anyof":
            guard test.testList, !test.tests.isEmpty else {
                reader.problem("\(test.name) takes a list of tests in parentheses")
                return nil
            }
            let parts = test.tests.map { condition($0) }
            return test.name == "allof" ? .allOf(parts) : .anyOf(parts)
        case "exists":
            reader.finishTags()
            return reader.remainingStringList("the header names").map { .exists($0.map(string)) }
        case "size":
            var over: Bool?
            reader.tag("over") { _ in over = true }
            reader.tag("under") { _ in over = false }
            reader.finishTags()
            guard let over else {
                reader.problem("size needs :over or :under")
                return nil
            }
            return reader.singleNumber("the size").map { .size(over: over, limit: $0) }
        case "header":
            let match = matchSpec(&reader, test)
            reader.finishTags()
            guard let lists = reader.remainingLists(2, "the header names and the keys") else { return nil }
            return .header(names: lists[0].map(string), keys: keys(lists[1], match, &reader), match: match)
        case "address", "envelope":
            var part = AddressPart.all
            var parts = 0
            for name in ["all", "localpart", "domain", "user", "detail"] {
                reader.tag(name) { _ in part = AddressPart(rawValue: name)!; parts += 1 }
            }
            let match = matchSpec(&reader, test)
            reader.finishTags()
            if parts > 1 { reader.problem("\(test.name): only one of :all, :localpart, :domain, :user and :detail") }
            if part == .user || part == .detail { need("subaddress", for: ":\(part.rawValue)", at: test.location) }
            if test.name == "envelope" { need("envelope", for: "envelope", at: test.location) }
            guard let lists = reader.remainingLists(2, "the \(test.name == "envelope" ? "envelope parts" : "header names") and the keys") else { return nil }
            let keys = keys(lists[1], match, &reader)
            if test.name == "envelope" {
                for field in lists[0] where !["from", "to"].contains(field.lowercased()) {
                    reader.problem("envelope: unknown part '\(field)' (from or to)")
                }
                return .envelope(part: part, fields: lists[0].map(string), keys: keys, match: match)
            }
            return .address(part: part, headers: lists[0].map(string), keys: keys, match: match)
        case "hasflag":
            need("imap4flags", for: "hasflag", at: test.location)
            let match = matchSpec(&reader, test)
            reader.finishTags()
            let lists = reader.remainingStringLists()
            if lists.count == 2 {
                need("variables", for: "hasflag with variable names", at: test.location)
                return .hasFlag(variables: lists[0].map(string), keys: keys(lists[1], match, &reader), match: match)
            }
            guard lists.count == 1 else {
                reader.problem("hasflag takes optional variable names and a list of flags")
                return nil
            }
            return .hasFlag(variables: [], keys: keys(lists[0], match, &reader), match: match)
        case "string":
            need("variables", for: "string", at: test.location)
            let match = matchSpec(&reader, test)
            reader.finishTags()
            guard let lists = reader.remainingLists(2, "the source strings and the keys") else { return nil }
            return .string(sources: lists[0].map(string), keys: keys(lists[1], match, &reader), match: match)
        case "notmuch":
            need("vnd.notmuch", for: "notmuch", at: test.location)
            usesNotmuchTest = true
            reader.finishTags()
            return reader.singleString("the notmuch query").map { .notmuch(string($0)) }
        case "body":
            reader.problem("the body test is not supported: notmuch-deliver tests headers, the envelope and the size")
            return nil
        default:
            reader.problem("unknown test '\(test.name)'")
            return nil
        }
    }

    /// The match type and comparator tags of a test.
    private mutating func matchSpec(_ reader: inout ArgumentReader, _ test: TestNode) -> MatchSpec {
        var spec = MatchSpec()
        var types = 0
        var comparators = 0
        var requirements: [(String, String)] = []
        for (name, type) in [("is", MatchType.is), ("contains", .contains), ("matches", .matches), ("regex", .regex)] {
            reader.tag(name) { _ in
                spec.type = type
                types += 1
                if name == "regex" { requirements.append(("regex", ":regex")) }
            }
        }
        for name in ["count", "value"] {
            reader.tag(name) { reader in
                types += 1
                requirements.append(("relational", ":\(name)"))
                guard let text = reader.singleStringParameter(":\(name)") else { return }
                guard let relation = Relation(rawValue: text.lowercased()) else {
                    reader.problem(":\(name): unknown relation '\(text)' (gt, ge, lt, le, eq or ne)")
                    return
                }
                spec.type = name == "count" ? .count(relation) : .value(relation)
            }
        }
        reader.tag("comparator") { reader in
            comparators += 1
            guard let text = reader.singleStringParameter(":comparator") else { return }
            guard let comparator = Comparator(rawValue: text.lowercased()) else {
                reader.problem("unknown comparator '\(text)'")
                return
            }
            if comparator == .asciiNumeric { requirements.append(("comparator-i;ascii-numeric", "the comparator i;ascii-numeric")) }
            spec.comparator = comparator
        }
        // Read now, so that the requirement checks see them.
        reader.readTags()
        for (capability, what) in requirements { need(capability, for: what, at: test.location) }
        if types > 1 { reader.problem("\(test.name): only one match type") }
        if comparators > 1 { reader.problem("\(test.name): only one comparator") }
        if spec.comparator == .asciiNumeric {
            switch spec.type {
            case .contains, .matches, .regex: reader.problem("the comparator i;ascii-numeric only compares whole values")
            default: break
            }
        }
        return spec
    }

    /// A test's keys; `:regex` ones without variables are compiled now, so
    /// that a mistake in one is reported with the script's other errors.
    private func keys(_ texts: [String], _ match: MatchSpec, _ reader: inout ArgumentReader) -> [Key] {
        texts.map { text in
            let key = string(text)
            guard case .regex = match.type, !key.mayExpand else { return Key(string: key, compiled: nil) }
            do {
                return Key(string: key, compiled: try RegexKey(key.text, comparator: match.comparator))
            } catch {
                reader.problem("invalid regular expression '\(text)': \(error)")
                return Key(string: key, compiled: nil)
            }
        }
    }
}
