import Rules
@testable import Sieve
import Testing

/// Text from the message, expanded into a string, is one tag, one flag or
/// part of one folder level: never an operation, never several (issue 22).
@Suite struct SieveExpansionTests {
    static let hostileListID = "x -inbox -unread +spam +deleted"

    func effects(_ script: String, _ headers: [(String, String)], separator: Character = "/") -> PreludeResult {
        SieveRules(script: compile(script)!, separator: separator).run(Message(headers), budget: .seconds(2))
    }

    /// Scripts whose effects alone tell: a value from the message is one
    /// tag (through modifiers too, and none when empty, as in the rules);
    /// the script's own text, variables included, may hold several operations.
    static let tagCases: [(what: String, script: String, headers: [(String, String)], expected: [Effect])] = [
        ("a match variable in a tag is one tag",
         #"if header :matches "List-Id" "*" { tag "+lists/${1}"; }"#,
         [("List-Id", hostileListID)], [.addTag("lists/x_-inbox_-unread_+spam_+deleted")]),
        ("a variable set from the message stays the message's through modifiers",
         #"if header :matches "List-Id" "*" { set :lower "list" "${1}"; set "both" "a-${list}"; } tag "+lists/${both} -inbox";"#,
         [("List-Id", "X +Spam")], [.addTag("lists/a-x_+spam"), .removeTag("inbox")]),
        ("an empty value skips the tag, as in the rules",
         #"if header :matches "List-Id" "*" { tag "+lists/${1} +seen"; }"#,
         [("List-Id", " \t")], [.addTag("seen")]),
        ("the script's own variables may hold several operations",
         #"set "ops" "+muted -inbox"; tag "${ops}";"#,
         [], [.addTag("muted"), .removeTag("inbox")]),
        ("the script's own flag lists still split",
         #"set "f" "\\Seen $Junk"; addflag "${f}";"#,
         [], [.removeTag("unread"), .addTag("spam")]),
    ]

    @Test(arguments: tagCases)
    func effectsOf(what: String, script: String, headers: [(String, String)], expected: [Effect]) {
        let result = effects(#"require ["variables", "vnd.notmuch", "imap4flags"];"# + "\n" + script, headers)
        #expect(result.effects == expected, "\(what)")
    }

    @Test func aSignFromTheMessageIsNoOperation() {
        let result = effects(#"""
            require ["variables", "vnd.notmuch"];
            if header :matches "X-Tags" "*" { tag "${1}"; tag "+${1}"; }
            """#, [("X-Tags", "-unread")])
        #expect(result.effects == [.addTag("unread")])
        #expect(result.notes.count == 1 && result.notes[0].contains("is not +TAG or -TAG written in the script"), "\(result.notes)")
    }

    /// RFC 5232 splits a flag list at spaces; only the script's spaces do
    /// here, and a flag from the message with a meaning (\Seen, $Junk) is refused.
    @Test func aFlagFromTheMessageIsOneKeywordAtMost() {
        let result = effects(#"""
            require ["variables", "imap4flags"];
            if header :matches "X-Flags" "*" { addflag "${1}"; addflag "\\Answered ${1}"; }
            if header :matches "X-One" "*" { addflag "${1}"; }
            if header :matches "X-Junk" "*" { addflag "$${1}"; }
            if header :matches "X-Label" "*" { addflag "mine" "${1}"; addflag "${mine}"; }
            """#, [("X-Flags", "\\Seen $Junk"), ("X-One", "\\Deleted"), ("X-Junk", "Junk"), ("X-Label", "Work Urgent")])
        #expect(result.effects == [.addTag("replied"), .addTag("work_urgent")], "\(result.effects)")
        #expect(result.notes.count == 3, "\(result.notes)")
        #expect(result.notes.first?.contains("flag '\\Seen $Junk' comes from the message") == true, "\(result.notes)")
        #expect(result.notes.dropFirst().first?.contains("flag '\\Deleted' comes from the message") == true, "\(result.notes)")
        #expect(result.notes.last?.contains("flag '$Junk' comes from the message") == true, "\(result.notes)")
    }

    @Test func theMessageDoesNotChooseWhichVariableAFlagListWrites() {
        let result = effects(#"""
            require ["variables", "imap4flags", "vnd.notmuch"];
            set "ops" "+muted";
            if header :matches "X-Var" "*" { setflag "${1}" "-inbox"; }
            tag "${ops}";
            """#, [("X-Var", "ops")])
        #expect(result.effects == [.addTag("muted")])
        #expect(result.notes.first?.contains("test.sieve:3: setflag: the variable's name comes from the message") == true, "\(result.notes)")
    }

    /// A value from the message adds to one level: separators become `_`.
    @Test func aMailboxFromTheMessageIsOneLevel() {
        let script = #"""
            require ["variables", "fileinto", "mailbox"];
            if header :matches "List-Id" "*" { fileinto :create "lists/${1}"; }
            """#
        #expect(effects(script, [("List-Id", "../../.notmuch/x")]).effects == [.folder("lists/.._.._.notmuch_x")])
        #expect(effects(script, [("List-Id", "a\nb")]).effects == [.folder("lists/a_b")])
        let dotted = #"require ["variables", "fileinto"]; if header :matches "List-Id" "*" { fileinto "INBOX.${1}"; }"#
        #expect(effects(dotted, [("List-Id", "dev.example.org")], separator: ".").effects == [.existingFolder("dev_example_org")])
        // The whole name from the message is still one folder; the gate judges it at delivery.
        let whole = #"require ["variables", "fileinto"]; if header :matches "X-Folder" "*" { fileinto "${1}"; }"#
        #expect(effects(whole, [("X-Folder", ".notmuch")]).effects == [.existingFolder(".notmuch")])
    }

    /// Pigeonhole's view of the same run is unchanged: the stores and their
    /// flags, as the differential test compares them.
    @Test func theSieveOutcomeKeepsTheText() throws {
        let outcome = try run(#"""
            require ["variables", "fileinto"];
            if header :matches "List-Id" "*" { fileinto "lists/${1}"; }
            """#, Message([("List-Id", "a/b")]))
        #expect(outcome?.normalised == ["store lists/a/b"])
    }

    @Test func absoluteNamesStayAbsoluteForTheGateToRefuse() {
        let slash = SieveRules(script: compile("keep;")!, separator: "/")
        #expect(slash.folder(for: "/tmp/abs") == "/tmp/abs")
        let problems = SieveRules(script: compile(#"""
            require ["fileinto", "variables"];
            fileinto "/tmp/abs";
            fileinto ".notmuch";
            if true { fileinto "lists/tmp"; }
            fileinto "Lists/dev";
            fileinto "${1}";
            """#)!).folderProblems()
        #expect(problems.count == 3, "\(problems)")
        #expect(problems.first?.hasPrefix("test.sieve:2: fileinto \"/tmp/abs\": ") == true, "\(problems)")
    }
}

/// The vnd.notmuch test: a value from the message is one phrase of the query.
@Suite struct SieveQueryExpansionTests {
    struct Recorder: MessageFacts {
        let headers: [(String, String)]
        let seen: Seen
        final class Seen: @unchecked Sendable { var queries: [String] = [] }
        func headerValues(_ name: String) -> [String] { headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1) }
        var recipient: String? { nil }
        var sender: String? { nil }
        var recipientExtension: String? { nil }
        var size: Int { 100 }
        func matches(query: String) throws -> Bool { seen.queries.append(query); return false }
    }

    @Test func aValueFromTheMessageIsOnePhrase() throws {
        let script = compile(#"""
            require ["variables", "vnd.notmuch"];
            if header :matches "X-Who" "*" {
                if notmuch "from:${1}" { keep; }
                if notmuch "thread:{from:\"${1}\"}" { keep; }
                set "mine" "tag:inbox or tag:flagged";
                if notmuch "${mine}" { keep; }
            }
            """#)!
        let seen = Recorder.Seen()
        _ = try script.run(Recorder(headers: [("X-Who", "x\" or tag:inbox} (y)")], seen: seen))
        #expect(seen.queries == [#"from:"x  or tag inbox   y ""#, #"thread:{from:"x  or tag inbox   y "}"#,
                                 "tag:inbox or tag:flagged"])
    }
}
