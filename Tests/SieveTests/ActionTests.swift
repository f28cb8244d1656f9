import Rules
@testable import Sieve
import Testing

/// Actions, the implicit keep, flags and variables.
@Suite struct SieveActionTests {
    @Test func implicitKeepAndWhatCancelsIt() throws {
        #expect(try actions("") == ["store INBOX"])
        #expect(try actions("discard;") == ["discard"])
        #expect(try actions(#"require "fileinto"; fileinto "a";"#) == ["store a"])
        #expect(try actions(#"require ["fileinto", "copy"]; fileinto :copy "a";"#) == ["store INBOX", "store a"])
        #expect(try actions(#"require "fileinto"; fileinto "a"; keep;"#) == ["store INBOX", "store a"])
        #expect(try actions(#"require "fileinto"; fileinto "a"; discard;"#) == ["store a"])
        #expect(try actions(#"require "fileinto"; fileinto "a"; fileinto "a"; fileinto "INBOX";"#) == ["store INBOX", "store a"])
        // As Pigeonhole: a duplicate store is one store with the later flags, and cancels nothing.
        #expect(try actions(#"require ["fileinto", "copy", "imap4flags"]; fileinto :copy :flags "a" "x"; fileinto :flags "b" "x";"#)
                == ["store INBOX", "store x b"])
    }

    @Test func stopEndsTheScript() throws {
        #expect(try actions(#"require "fileinto"; if true { fileinto "a"; stop; } fileinto "b";"#) == ["store a"])
        #expect(try actions("stop; discard;") == ["store INBOX"])
    }

    @Test func internalFlagsApplyWhenTheActionRuns() throws {
        let script = #"""
        require ["imap4flags", "fileinto"];
        addflag "\\Seen";
        fileinto "a";
        addflag ["$Junk foo", "\\Seen"];
        removeflag "foo";
        keep;
        setflag "\\Flagged";
        fileinto :flags "x y" "b";
        """#
        #expect(try actions(script) == ["store INBOX $junk \\seen", "store a \\seen", "store b x y"])
    }

    @Test func implicitKeepTakesTheFlagsAtTheEnd() throws {
        let script = #"require "imap4flags"; addflag "\\Answered"; if hasflag :is "\\answered" { addflag "done"; }"#
        #expect(try actions(script) == ["store INBOX \\answered done"])
    }

    @Test func flagVariables() throws {
        let script = #"""
        require ["imap4flags", "variables", "fileinto"];
        setflag "f" "\\Flagged";
        addflag "f" ["a", "\\flagged"];
        if hasflag :count "eq" "f" "2" { fileinto :flags "${f}" "two"; }
        """#
        #expect(errors(script) == ["test.sieve:4:4: :count needs require \"relational\""])
        let fixed = script.replacingFirst(#""fileinto"]"#, with: #""fileinto", "relational"]"#)
        #expect(try actions(fixed) == ["store two \\flagged a"])
    }

    @Test func setModifiers() throws {
        // The value comes back as a fileinto's mailbox, where it is visible.
        func value(_ modifiers: String, _ text: String) throws -> String? {
            let probe = compile("require [\"variables\", \"fileinto\"]; set \(modifiers) \"v\" \"\(text)\"; fileinto \"${v}\";")
            return try probe?.run(Message()).stores.first?.mailbox
        }
        #expect(try value(":length", "juMBlEd lETteRS") == "15")
        #expect(try value(":lower", "juMBlEd lETteRS") == "jumbled letters")
        #expect(try value(":upperfirst", "juMBlEd lETteRS") == "JuMBlEd lETteRS")
        #expect(try value(":upperfirst :lower", "juMBlEd lETteRS") == "Jumbled letters")
        #expect(try value(":quotewildcard", "Rock*") == "Rock\\*")
        #expect(errors(#"require "variables"; set :lower :upper "a" "b";"#) == ["test.sieve:1:40: set: :lower and :upper cannot be combined"])
    }

    @Test func variablesAreBounded() throws {
        let script = #"require ["variables", "fileinto"]; set "a" "${b}${b}"; if header :matches "subject" "*" { set "b" "${1}${1}${1}"; } fileinto "${b}";"#
        let outcome = try run(script, Message([("Subject", String(repeating: "x", count: 10_000))]))
        #expect(outcome?.stores.first?.mailbox?.utf8.count == Variables.maximumValueLength)
    }

    @Test func encodedCharacters() throws {
        let script = #"require ["encoded-character", "fileinto"]; fileinto "${hex:41 42}${unicode:00e9}";"#
        #expect(try actions(script) == ["store ABé"])
    }

    @Test func tooManyActionsFailTheRun() throws {
        var script = "require \"fileinto\";\n"
        for n in 0...SieveScript.maximumActions { script += "fileinto \"f\(n)\";\n" }
        #expect(throws: SieveError.self) { try run(script) }
    }

    @Test func timeBudgetEndsTheRun() throws {
        let script = compile(#"require "regex"; if header :regex "s" "^(a|a)*$" { keep; }"#)
        let headers = (0..<1000).map { _ in ("S", String(repeating: "a", count: 3000) + "b") }
        #expect(throws: SieveError.self) { try script?.run(Message(headers), budget: .milliseconds(50)) }
    }
}

/// What the script's outcome becomes for notmuch.
@Suite struct SieveMappingTests {
    @Test func flagsBecomeTags() {
        #expect(SieveRules.tagEffect(forFlag: "\\Seen") == .removeTag("unread"))
        #expect(SieveRules.tagEffect(forFlag: "\\FLAGGED") == .addTag("flagged"))
        #expect(SieveRules.tagEffect(forFlag: "\\Answered") == .addTag("replied"))
        #expect(SieveRules.tagEffect(forFlag: "\\Draft") == .addTag("draft"))
        #expect(SieveRules.tagEffect(forFlag: "\\Deleted") == .addTag("deleted"))
        #expect(SieveRules.tagEffect(forFlag: "$Junk") == .addTag("spam"))
        #expect(SieveRules.tagEffect(forFlag: "$Forwarded") == .addTag("passed"))
        #expect(SieveRules.tagEffect(forFlag: "Work/Urgent") == .addTag("work_urgent"))
        #expect(SieveRules.tagEffect(forFlag: "$label1") == .addTag("label1"))
        #expect(SieveRules.tagEffect(forFlag: "\\Recent") == nil)
    }

    @Test func mailboxNamesBecomeFolders() {
        let slash = SieveRules(script: compile("keep;")!, separator: "/")
        #expect(slash.folder(for: "INBOX") == nil)
        #expect(slash.folder(for: "inbox/Lists/dev") == "Lists/dev")
        #expect(slash.folder(for: "Lists.dev") == "Lists.dev")
        let dot = SieveRules(script: compile("keep;")!, separator: ".")
        #expect(dot.folder(for: "INBOX.Lists.dev") == "Lists/dev")
        #expect(dot.folder(for: "Junk") == "Junk")
    }

    @Test func effectsOfARun() {
        let rules = SieveRules(script: compile(#"""
            require ["fileinto", "imap4flags", "mailbox"];
            addflag "\\Seen";
            fileinto :create :flags "$Junk" "Junk";
            fileinto "Other";
            """#)!)
        let result = rules.run(Message(), budget: .seconds(2))
        // The second store is one more file of the message.
        #expect(result.effects == [.addTag("spam"), .removeTag("unread"), .folder("Junk"), .copy("Other", mustExist: true)])
        // A store kept beside a fileinto :copy: a copy at the top level,
        // which always exists; the same folder twice is one file.
        let both = SieveRules(script: compile(#"require ["fileinto", "copy"]; fileinto :copy "A";"#)!)
        #expect(both.run(Message(), budget: .seconds(2)).effects == [.existingFolder("A"), .copy("", mustExist: false)])
        let twice = SieveRules(script: compile(#"require ["fileinto", "copy"]; fileinto :copy "A"; fileinto :copy "A";"#)!)
        #expect(twice.run(Message(), budget: .seconds(2)).effects == [.existingFolder("A"), .copy("", mustExist: false)])
        let plain = SieveRules(script: compile(#"require "fileinto"; fileinto "Lists/dev";"#)!)
        #expect(plain.run(Message(), budget: .seconds(2)).effects == [.existingFolder("Lists/dev")])
        let gone = SieveRules(script: compile("discard;")!)
        #expect(gone.run(Message(), budget: .seconds(2)).effects == [.discard])
    }

    @Test func aFailingRunHasNoEffects() {
        var script = "require \"fileinto\";\n"
        for n in 0...SieveScript.maximumActions { script += "fileinto :copy \"f\(n)\";\n" }
        let rules = SieveRules(script: compile(script.replacingFirst("\"fileinto\"", with: "[\"fileinto\", \"copy\"]"))!)
        let result = rules.run(Message(), budget: .seconds(2))
        #expect(result.effects.isEmpty)
        #expect(result.notes.first?.contains("more than 32 actions") == true)
    }

    @Test func preludeRunsBeforeTheRules() throws {
        let (rules, errors) = RuleParser.parse("+seen-by-rules -- tag:spam", origin: "rules")
        #expect(errors.isEmpty)
        let combined = rules.with(prelude: SieveRules(script: compile(#"require "imap4flags"; addflag "$Junk";"#)!))
        var applied: [Effect] = []
        var message = Message()
        message.queries = ["tag:spam": true]
        try combined.evaluate(message) { applied.append($0) }
        #expect(applied == [.addTag("spam"), .addTag("seen-by-rules")])
        let discarding = rules.with(prelude: SieveRules(script: compile("discard;")!))
        applied = []
        try discarding.evaluate(message) { applied.append($0) }
        #expect(applied == [.discard])
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        replacing(target, with: replacement, maxReplacements: 1)
    }
}
