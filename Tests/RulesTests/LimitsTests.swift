@testable import Rules
import Testing
import TestSupport

/// The bounds that keep a rules file, and a message meeting it, from
/// crashing or stalling a delivery: nesting depth, rule length, name lengths.
@Suite struct RuleLimitsTests {
    private func errors(_ text: String) -> [RuleSyntaxError] {
        RuleParser.parse(text, origin: "rules").1
    }

    @Test func deepParenthesesAreALocatedErrorNotACrash() {
        let found = errors("+deep -- " + String(repeating: "(", count: 20_000) + "*" + String(repeating: ")", count: 20_000))
        #expect(found.count == 1)
        // The 101st '(' is at column 10 + 100.
        #expect(found.first?.description == "rules:1:110: '(' and 'not' nested more than 100 deep")
    }

    @Test func deepNotIsALocatedErrorNotACrash() {
        let found = errors("+x -- *\n+deep --" + String(repeating: " not", count: 50_000) + " *")
        #expect(found.first?.message == "'(' and 'not' nested more than 100 deep")
        #expect(found.count == 1)
        #expect(found.first?.line == 2)
        #expect(found.first?.column == 10 + 4 * 100)
    }

    @Test func nestingUpToTheLimitParses() throws {
        let depth = RuleParser.maximumDepth
        let text = "+ok -- " + String(repeating: "not (", count: depth / 2) + "header:X~/a/"
            + String(repeating: ")", count: depth / 2)
        let rules = parse(text)
        #expect(rules.rules.count == 1)
        let facts = TableFacts([("X", "b")])
        // An even number of nots: the same as the leaf, which does not match.
        #expect(try effects(rules, facts).isEmpty)
    }

    @Test func overlongRuleIsRefused() {
        let text = "+big -- " + String(repeating: "tag:x or ", count: 30_000) + "tag:y\n+fine -- *"
        let (rules, found) = RuleParser.parse(text, origin: "rules")
        #expect(found.map(\.description) == ["rules:1:1: rule longer than 262144 bytes"])
        #expect(rules.rules.map(\.line) == [2])
    }

    // MARK: Names

    @Test func capturedTagFitsLibnotmuchsLimit() throws {
        let rules = parse(#"+list/$1/$2/$3/$4 -- header:List-Id~/^(\S+) (\S+) (\S+) (\S+)/"#)
        let words = ["a", "b", "c", "d"].map { String(repeating: $0, count: 100) }
        let applied = try effects(rules, TableFacts([("List-Id", words.joined(separator: " "))]))
        guard case .addTag(let tag) = applied.first else { Issue.record("no tag: \(applied)"); return }
        #expect(tag.utf8.count <= Template.maximumTagLength)
        #expect(tag.utf8.count == Template.maximumTagLength, "the room there is should be used: \(tag)")
        let parts = tag.split(separator: "/", omittingEmptySubsequences: false)
        #expect(parts.first == "list" && parts.count == 5)
        // Four equally long words get equal shares: (200 - 8) / 4.
        #expect(parts.dropFirst().map(\.count) == [48, 48, 48, 48])
    }

    @Test func shortSubstitutionsStayWholeWhileLongOnesShrink() throws {
        let rules = parse(#"+\#(String(repeating: "p", count: 150))/$1/$2 -- header:X~/^(\S+) (\S+)/"#)
        let applied = try effects(rules, TableFacts([("X", "short " + String(repeating: "l", count: 60))]))
        guard case .addTag(let tag) = applied.first else { Issue.record("no tag: \(applied)"); return }
        #expect(tag.utf8.count == 200)
        #expect(tag.hasSuffix("/short/" + String(repeating: "l", count: 200 - 150 - 7)))
    }

    @Test func fixedPartTooLongForATagIsAParseError() {
        #expect(errors("+" + String(repeating: "t", count: 200) + " -- *").isEmpty)
        #expect(errors("+" + String(repeating: "t", count: 201) + " -- *").map(\.description)
                == ["rules:1:2: tag longer than 200 bytes"])
        // 198 fixed bytes leave too little for three substitutions of at least a byte each.
        #expect(errors("+" + String(repeating: "t", count: 198) + "$1$2$3 -- header:X~/(a)(b)(c)/").map(\.message)
                == ["tag longer than 200 bytes, counting one byte for each substitution"])
        // Bytes, not characters: 101 two-byte characters are 202 bytes.
        #expect(errors("+" + String(repeating: "é", count: 101) + " -- *").count == 1)
    }

    @Test func folderComponentsAndWholeFolderAreBounded() throws {
        let long = String(repeating: "f", count: 250)
        let rules = parse("folder:\(long)$1 -- header:X~/(.+)/")
        let applied = try effects(rules, TableFacts([("X", String(repeating: "v", count: 100))]))
        #expect(applied == [.folder(long + "vvvvv")])

        let four = Array(repeating: long, count: 4).joined(separator: "/")
        let deep = parse("folder:\(four)/$1 -- header:X~/(.+)/")
        let deepApplied = try effects(deep, TableFacts([("X", String(repeating: "v", count: 100))]))
        guard case .folder(let folder) = deepApplied.first else { Issue.record("no folder"); return }
        #expect(folder.utf8.count == Template.maximumFolderLength)
        #expect(folder.split(separator: "/").allSatisfy { $0.utf8.count <= Template.maximumFolderComponentLength })

        #expect(errors("folder:a/\(String(repeating: "c", count: 256))/b -- *").map(\.message) == ["folder component longer than 255 bytes"])
        #expect(errors("folder:" + Array(repeating: long, count: 5).joined(separator: "/") + " -- *").map(\.message)
                == ["folder longer than 1024 bytes"])
    }

    @Test func shorteningNeverSplitsACharacter() {
        #expect(Template.prefix("aé", bytes: 2) == "a")
        #expect(Template.prefix("é", bytes: 1) == nil)
        #expect(Template.prefix("abc", bytes: 5) == "abc")
        #expect(Template.fit([10, 2, 10], into: 9) == [3, 2, 4])
    }
}
