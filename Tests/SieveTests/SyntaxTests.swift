@testable import Sieve
import Testing

/// RFC 5228's lexical and generic syntax, and the errors located in it.
@Suite struct SieveSyntaxTests {
    @Test func numbersTakeQuantifiers() throws {
        let message = Message(size: 2 * 1024 * 1024)
        #expect(try actions("if size :over 1M { discard; }", message) == ["discard"])
        #expect(try actions("if size :over 3m { discard; }", message) == ["store INBOX"])
        #expect(try actions("if size :under 1G { discard; }", message) == ["discard"])
        #expect(try actions("if size :over 2047K { discard; }", message) == ["discard"])
    }

    @Test func quotedStringsUndoOnlyTheirEscapes() throws {
        let message = Message([("Subject", "a \"b\" \\ c")])
        #expect(try actions(#"if header :is "subject" "a \"b\" \\ \c" { discard; }"#, message) == ["discard"])
    }

    @Test func multilineStringsWithDotStuffing() throws {
        var lexer = Lexer("text: # comment\nline one\n..dotted\n.\n;")
        #expect(try lexer.next().token == .string("line one\r\n.dotted\r\n"))
        #expect(try lexer.next().token == .semicolon)
        #expect(try lexer.next().token == .end)
    }

    @Test func commentsOfBothKinds() throws {
        #expect(try actions("# hash\n/* bracket\n comment */ discard; # end") == ["discard"])
    }

    @Test func identifiersAreCaseInsensitive() throws {
        #expect(try actions(#"REQUIRE "fileinto"; IF TRUE { FileInto "x"; }"#) == ["store x"])
    }

    @Test func errorsAreLocated() {
        #expect(errors("keep") == ["test.sieve:1:5: expected ';' or '{' after the command 'keep', found the end of the script"])
        #expect(errors("if true {\n  keep;\n") == ["test.sieve:3:1: expected '}' to close the '{' at line 1, column 9, found the end of the script"])
        #expect(errors("if header :is \"a\" \"b\n") == ["test.sieve:1:19: unterminated string: expected a closing '\"'"])
        #expect(errors("frobnicate;") == ["test.sieve:1:1: unknown command 'frobnicate'"])
        #expect(errors("keep;\nrequire \"fileinto\";") == ["test.sieve:2:1: require must come before any other command, at the top of the script"])
        #expect(errors("fileinto \"x\";") == ["test.sieve:1:1: fileinto needs require \"fileinto\""])
        #expect(errors("/* open") == ["test.sieve:1:1: unterminated comment: expected '*/'"])
        #expect(errors("if size :over 5 { keep; }") == [])
        #expect(errors("if size 5 { keep; }") == ["test.sieve:1:9: size needs :over or :under", "test.sieve:1:9: size: too many arguments"])
        #expect(errors("if header :frob \"a\" \"b\" { keep; }") == ["test.sieve:1:11: header: unknown tagged argument ':frob'"])
    }

    @Test func unsupportedExtensionsAreErrorsInRequire() {
        let found = errors("require [\"fileinto\",\n  \"vacation\"];\nrequire \"duplicate\";\nrequire \"include\";")
        #expect(found == [
            "test.sieve:1:9: unsupported extension 'vacation': notmuch-deliver sends no mail (use your MTA's autoresponder)",
            "test.sieve:3:9: unsupported extension 'duplicate': not supported (notmuch already keeps one message per Message-ID)",
            "test.sieve:4:9: unsupported extension 'include': not supported: put everything in one script",
        ])
        #expect(errors("require \"x-unheard-of\";") == ["test.sieve:1:9: unknown extension 'x-unheard-of'"])
        #expect(errors("redirect \"a@b.c\";") == ["test.sieve:1:1: redirect is not supported: notmuch-deliver sends no mail"])
    }

    @Test func deepNestingIsALocatedErrorNotACrash() {
        let deep = String(repeating: "if true {\n", count: 20_000) + String(repeating: "}\n", count: 20_000)
        let found = errors(deep)
        #expect(found == ["test.sieve:101:4: blocks and tests nested more than 100 deep"])
        let notNot = "if " + String(repeating: "not ", count: 50_000) + "true { keep; }"
        #expect(errors(notNot).first?.hasSuffix("blocks and tests nested more than 100 deep") == true)
        let lists = "if " + String(repeating: "anyof(", count: 50_000) + "true" + String(repeating: ")", count: 50_000) + " { keep; }"
        #expect(errors(lists).count == 1)
    }

    @Test func nestingUpToTheLimitRuns() throws {
        let depth = SieveParser.maximumDepth
        let text = String(repeating: "if true {\n", count: depth) + "discard;" + String(repeating: "}", count: depth)
        #expect(try actions(text) == ["discard"])
    }

    @Test func overlongScriptIsRefused() {
        let text = String(repeating: "keep;\n", count: (SieveParser.maximumScriptLength / 6) + 1)
        #expect(errors(text) == ["test.sieve:1:1: script longer than 1048576 bytes"])
    }

    @Test func hugeNumbersAreErrors() {
        #expect(errors("if size :over 99999999999999999999 { keep; }") == ["test.sieve:1:15: number too large"])
        #expect(errors("if size :over 9999999999G { keep; }") == ["test.sieve:1:15: number too large"])
    }
}

