import Rules
import Testing
import TestSupport

func parse(_ text: String) -> RuleSet {
    let (rules, errors) = RuleParser.parse(text, origin: "rules")
    #expect(errors.isEmpty, "\(errors)")
    return rules
}

func effects(_ rules: RuleSet, _ facts: TableFacts) throws -> [Effect] {
    var applied: [Effect] = []
    try rules.evaluate(facts) { applied.append($0) }
    return applied
}

@Suite struct RuleParserTests {
    @Test func readsActionsAndConditions() throws {
        let rules = parse("""
            # spam first
            +spam -inbox folder:Junk stop -- header:X-Spam-Flag~/^yes$/ or header:X-Spam~/^yes$/

            +muted -inbox -- thread:{tag:muted}
            +shopping folder:shop -- extension:shop
            """)
        #expect(rules.rules.count == 3)
        #expect(rules.rules[0].line == 2)
        #expect(rules.rules[0].actions.map(\.description) == ["+spam", "-inbox", "folder:Junk", "stop"])
        #expect(rules.rules[1].condition.description == "thread:{tag:muted}")
        #expect(rules.rules[2].line == 5)
    }

    @Test func indentedLinesContinueARule() {
        let rules = parse("+work --\n    from:boss@example.com\n    and not tag:spam\n+x -- *\n")
        #expect(rules.rules.count == 2)
        #expect(rules.rules[0].condition.description == "(from:boss@example.com) and (not (tag:spam))")
    }

    @Test func neighbouringQueryTermsBecomeOneQuery() {
        let rules = parse("+a -- from:x subject:\"two words\" (to:y or to:z) header:X~/1/")
        #expect(rules.rules[0].condition.description == "(header:X~/1/ and (from:x) and (subject:\"two words\") and ((to:y) or (to:z)))")
    }

    @Test(arguments: [
        ("+spam", 1, 6, "expected '--'"),
        ("spam -- *", 1, 1, "expected an action"),
        ("+a --", 1, 6, "expected a condition"),
        ("+a -- header:X~yes", 1, 16, "expected a regular expression"),
        ("+a -- header:X~/(/", 1, 16, "invalid regular expression"),
        ("+a -- (from:x", 1, 14, "expected ')'"),
        ("+a -- from:x)", 1, 13, "unbalanced ')'"),
        ("+a -- size:~5", 1, 12, "expected '>' or '<'"),
        ("+$1 -- header:X~/(a)/", 1, 2, "fixed prefix"),
        ("+lists/$1 -- from:x", 1, 1, "no regular expression"),
        ("folder:../x -- *", 1, 8, "contains '..'"),
        ("folder:/tmp/abs -- *", 1, 8, "absolute"),
        // Names that are not folders: the database, a maildir's own directories.
        ("folder:.notmuch -- *", 1, 8, "reserved"),
        ("folder:.notmuch/xapian -- *", 1, 8, "reserved"),
        ("folder:tmp -- *", 1, 8, "reserved"),
        ("folder:lists/new -- *", 1, 8, "reserved"),
        ("folder:cur/$1 -- header:X~/(a)/", 1, 8, "folder 'cur/$1' has a part 'cur'"),
        ("\n\n  \n+a -- subject:\"open", 4, 7, "unterminated"),
        ("+a -- header:X~/a/z", 1, 16, "unknown regular expression flag"),
        ("+a -- from:x and", 1, 17, "expected a condition"),
        // Found by FuzzRules: this overflowed and killed the process.
        ("+big -- size:>9999999999999999k", 1, 15, "size too large"),
        // Found by FuzzRules: an Arabic-Indic three was taken for $3.
        ("+l/$\u{663} -- header:X~/(a)/", 1, 2, "followed by 1-9"),
    ])
    func reportsWhereAndWhat(text: String, line: Int, column: Int, expected: String) {
        let (_, errors) = RuleParser.parse(text, origin: "my.rules")
        #expect(errors.count == 1)
        guard let error = errors.first else { return }
        #expect(error.line == line && error.column == column, "\(error)")
        #expect(error.message.contains(expected), "\(error)")
        #expect(error.description.hasPrefix("my.rules:\(line):\(column): "))
    }

    @Test func reportsEveryBrokenLine() {
        let (rules, errors) = RuleParser.parse("+a -- *\nbad\n+b -- *\nworse -- *\n", origin: "r")
        #expect(errors.map(\.line) == [2, 4])
        #expect(rules.rules.count == 2)
    }
}

@Suite struct RuleEvaluationTests {
    @Test func headerMatchIsCaseInsensitiveAndSeesEveryOccurrence() throws {
        let rules = parse("+spam -- header:x-spam-flag~/^yes$/\n+relay -- header:Received~/mx2\\.example/\n")
        let facts = TableFacts([("X-Spam-Flag", "YES"), ("Received", "from mx1.example"), ("Received", "from mx2.example")])
        #expect(try effects(rules, facts) == [.addTag("spam"), .addTag("relay")])
        #expect(try effects(parse("+spam -- header:X-Spam-Flag~/^yes$/c"), facts) == [])
    }

    @Test func rulesApplyInOrderAndStopStops() throws {
        let rules = parse("+a -- *\n+b stop -- header:X~/1/\n+c -- *\n")
        #expect(try effects(rules, TableFacts([("X", "1")])) == [.addTag("a"), .addTag("b")])
        #expect(try effects(rules, TableFacts()) == [.addTag("a"), .addTag("c")])
    }

    @Test func capturesAreSanitisedAndConfinedToThePrefix() throws {
        let rules = parse("+lists/$1 -inbox -- header:List-Id~/<([^>]*)>/")
        func tagFor(_ listID: String) throws -> [Effect] {
            try effects(rules, TableFacts([("List-Id", listID)]))
        }
        #expect(try tagFor("Dev <dev.lists.example.org>") == [.addTag("lists/dev.lists.example.org"), .removeTag("inbox")])
        #expect(try tagFor("<-inbox evil tag/../x>") == [.addTag("lists/inbox_evil_tag_.._x"), .removeTag("inbox")])
        let bidi = try tagFor("<\u{202E}>")
        #expect(bidi == [.removeTag("inbox")], "\(bidi)")
        let long = try tagFor("<" + String(repeating: "a", count: 500) + ">")
        #expect(long.first == .addTag("lists/" + String(repeating: "a", count: 64)))
    }

    /// A header full of tag operations is still one tag, and one folder level.
    @Test func aCaptureIsOneTagNeverAnOperation() throws {
        let rules = parse("+lists/$1 folder:lists/$1 -- header:List-Id~/^(.*)$/")
        let effects = try effects(rules, TableFacts([("List-Id", "x -inbox -unread +spam +deleted")]))
        #expect(effects == [.addTag("lists/x_-inbox_-unread_+spam_+deleted"), .folder("lists/x_-inbox_-unread_+spam_+deleted")])
    }

    @Test func envelopeConditions() throws {
        let rules = parse("""
            +shopping folder:shop -- extension:shop
            +to-me -- recipient:/^me(\\+.*)?@example\\.org$/
            +ext/$extension -- sender:/@bank\\.example$/
            """)
        let facts = TableFacts(recipient: "me+shop@example.org", sender: "alerts@bank.example", recipientExtension: "Shop")
        #expect(try effects(rules, facts) == [.addTag("shopping"), .folder("shop"), .addTag("to-me"), .addTag("ext/shop")])
        #expect(try effects(rules, TableFacts()) == [])
    }

    @Test func sizeConditions() throws {
        let rules = parse("+big -- size:>1k\n+small -- size:<100\n")
        #expect(try effects(rules, TableFacts(size: 2000)) == [.addTag("big")])
        #expect(try effects(rules, TableFacts(size: 50)) == [.addTag("small")])
        #expect(try effects(rules, TableFacts(size: 500)) == [])
    }

    @Test func booleanStructureAndQueries() throws {
        let rules = parse("+x -- (header:A~/1/ or header:B~/1/) and not tag:muted\n")
        var facts = TableFacts([("B", "1")]).answering(["not (tag:muted)": true])
        #expect(try effects(rules, facts) == [.addTag("x")])
        facts.queries["not (tag:muted)"] = false
        #expect(try effects(rules, facts) == [])
        // A failing cheap leaf spares the query.
        #expect(try effects(rules, TableFacts()) == [])
    }

    @Test func discardStops() throws {
        let rules = parse("discard -- header:X-Virus~/yes/\n+after -- *\n")
        #expect(try effects(rules, TableFacts([("X-Virus", "yes")])) == [.discard])
    }
}
