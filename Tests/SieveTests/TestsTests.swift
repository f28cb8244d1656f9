@testable import Sieve
import Testing

/// The tests of RFC 5228 and its extensions, one behaviour each.
@Suite struct SieveTestCommandTests {
    let list = Message([
        ("From", "\"Alice Example\" <Alice@Example.COM>"),
        ("To", "bob+lists@example.org, Carol <carol@example.net>"),
        ("Cc", "undisclosed-recipients:;"),
        ("Subject", "[dev] Release 2.0 is out"),
        ("List-Id", "Developers <dev.lists.example.org>"),
        ("X-Spam-Score", "7"),
        ("Received", "from a"), ("Received", "from b"), ("Received", "from c"),
    ], recipient: "bob+lists@example.org", sender: "bounce-42@lists.example.org", size: 5000)

    @Test func headerMatchTypesAndComparators() throws {
        #expect(try actions(#"if header :is "subject" "[DEV] release 2.0 is out" { discard; }"#, list) == ["discard"])
        #expect(try actions(#"if header :comparator "i;octet" :is "subject" "[DEV] release 2.0 is out" { discard; }"#, list) == ["store INBOX"])
        #expect(try actions(#"if header :contains ["x", "subject"] "RELEASE" { discard; }"#, list) == ["discard"])
        #expect(try actions(#"if header :matches "subject" "[*] ?elease*" { discard; }"#, list) == ["discard"])
        #expect(try actions(#"if header :matches "subject" "dev*" { discard; }"#, list) == ["store INBOX"])
        #expect(try actions(#"if header :matches "subject" "\[dev\] *" { discard; }"#, list) == ["discard"])
        #expect(try actions(#"if header :is "x-missing" "" { discard; }"#, list) == ["store INBOX"])
    }

    @Test func addressParts() throws {
        #expect(try actions(#"if address :is "from" "alice@example.com" { discard; }"#, list) == ["discard"])
        #expect(try actions(#"if address :localpart :is "from" "alice" { discard; }"#, list) == ["discard"])
        #expect(try actions(#"if address :domain :is "to" "example.net" { discard; }"#, list) == ["discard"])
        #expect(try actions(#"if address :all :contains "from" "Alice Example" { discard; }"#, list) == ["store INBOX"])
        // A group with no members has no addresses.
        #expect(try actions(#"if address :matches "cc" "*" { discard; }"#, list) == ["store INBOX"])
    }

    @Test func subaddress() throws {
        let script = #"require ["subaddress", "fileinto"]; if address :detail "to" "lists" { fileinto "l"; } if address :user "to" "carol" { fileinto "c"; }"#
        #expect(try actions(script, list) == ["store c", "store l"])
        // No `+`: :detail has nothing to compare, even with "*".
        let plain = Message([("To", "carol@example.net")])
        #expect(try actions(#"require "subaddress"; if address :detail :matches "to" "*" { discard; }"#, plain) == ["store INBOX"])
        let empty = Message([("To", "dan+@example.net")])
        #expect(try actions(#"require "subaddress"; if address :detail :is "to" "" { discard; }"#, empty) == ["discard"])
    }

    @Test func envelope() throws {
        let script = #"require "envelope"; if envelope :domain :is "from" "lists.example.org" { discard; }"#
        #expect(try actions(script, list) == ["discard"])
        #expect(try actions(#"require ["envelope", "subaddress"]; if envelope :detail "to" "lists" { discard; }"#, list) == ["discard"])
        #expect(errors(#"require "envelope"; if envelope "cc" "x" { keep; }"#) == ["test.sieve:1:24: envelope: unknown part 'cc' (from or to)"])
    }

    @Test func existsSizeAndLogic() throws {
        #expect(try actions(#"if exists ["list-id", "subject"] { discard; }"#, list) == ["discard"])
        #expect(try actions(#"if exists ["list-id", "x-nope"] { discard; }"#, list) == ["store INBOX"])
        #expect(try actions("if allof (size :over 4K, size :under 4900) { discard; }", list) == ["store INBOX"])
        #expect(try actions("if allof (size :over 4K, not size :over 5000) { discard; }", list) == ["discard"])
        #expect(try actions("if anyof (false, true) { discard; }", list) == ["discard"])
        #expect(try actions("if anyof (false, not true) { discard; }", list) == ["store INBOX"])
        #expect(try actions("if false { keep; } elsif true { discard; } else { keep; }", list) == ["discard"])
    }

    @Test func relational() throws {
        let req = #"require ["relational", "comparator-i;ascii-numeric"];"#
        #expect(try actions(req + #"if header :count "ge" :comparator "i;ascii-numeric" "received" "3" { discard; }"#, list) == ["discard"])
        #expect(try actions(req + #"if header :count "gt" :comparator "i;ascii-numeric" "received" "3" { discard; }"#, list) == ["store INBOX"])
        #expect(try actions(req + #"if address :count "eq" :comparator "i;ascii-numeric" "to" "2" { discard; }"#, list) == ["discard"])
        #expect(try actions(req + #"if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "5" { discard; }"#, list) == ["discard"])
        #expect(try actions(req + #"if header :value "lt" :comparator "i;ascii-numeric" "x-spam-score" "10" { discard; }"#, list) == ["discard"])
        // As strings "7" sorts after "10".
        #expect(try actions(req + #"if header :value "gt" "x-spam-score" "10" { discard; }"#, list) == ["discard"])
        #expect(errors(#"if header :count "ge" "a" "1" { keep; }"#) == ["test.sieve:1:4: :count needs require \"relational\""])
    }

    @Test func regexWithCaptures() throws {
        let script = #"""
        require ["regex", "variables", "fileinto"];
        if header :regex "list-id" "<([a-z]+)\\.lists\\.([a-z.]+)>" { fileinto "lists.${1}.${2}"; }
        """#
        #expect(try actions(script, list) == ["store lists.dev.example.org"])
        #expect(errors(#"require "regex"; if header :regex "s" "(" { keep; }"#).first?.hasPrefix("test.sieve:1:") == true)
    }

    @Test func matchesTakesAsLittleAsItCanLeftToRight() throws {
        let script = #"""
        require ["variables", "fileinto"];
        if header :matches "subject" "[*] *" { fileinto "${1}/${2}"; }
        """#
        let message = Message([("Subject", "[acme-users] [fwd] version 1.0 is out")])
        #expect(try actions(script, message) == ["store acme-users/[fwd] version 1.0 is out"])
        // A pathological pattern finishes quickly.
        let long = Message([("Subject", String(repeating: "a", count: 60_000))])
        #expect(try actions(#"if header :matches "subject" "*a*a*a*a*a*a*a*a*b" { discard; }"#, long) == ["store INBOX"])
    }

    @Test func notmuchExtension() throws {
        var message = list
        message.queries = ["thread:{tag:muted}": true]
        let outcome = try run(#"require "vnd.notmuch"; if notmuch "thread:{tag:muted}" { tag "+muted -inbox"; }"#, message)
        #expect(outcome?.tagOperations == ["+muted -inbox"])
        #expect(compile(#"require "vnd.notmuch"; if notmuch "x" { keep; }"#)?.needsDatabase == true)
        #expect(compile(#"require "vnd.notmuch"; tag "+x";"#)?.needsDatabase == false)
    }
}
