import Testing
@testable import Watch

/// new.ignore as notmuch reads it: bare names at any depth, /regex/ on the
/// path relative to the mail root.
@Suite struct IgnoreListTests {
    @Test func aNameIsIgnoredAtAnyDepth() throws {
        let list = try IgnoreList([".mbsyncstate", "dovecot.index"])
        #expect(list.ignores(name: ".mbsyncstate", relativePath: "work/.mbsyncstate"))
        #expect(list.ignores(name: ".mbsyncstate", relativePath: ".mbsyncstate"))
        #expect(!list.ignores(name: "x.mbsyncstate", relativePath: "work/x.mbsyncstate"))
    }

    @Test func aRegexMatchesTheRelativePathAndMustBeAnchored() throws {
        let list = try IgnoreList(["/.*/foo$/"])
        #expect(list.ignores(name: "foo", relativePath: "bar/foo"))
        #expect(list.ignores(name: "foo", relativePath: "bar/baz/foo"))
        #expect(!list.ignores(name: "foo", relativePath: "foo"))
        #expect(!list.ignores(name: "foobar", relativePath: "bar/foobar"))
    }

    @Test func aBrokenRegexIsRefusedWithItsEntry() {
        #expect(throws: IgnoreList.BadPattern.self) { try IgnoreList(["/(unclosed/"]) }
    }
}
