import Testing
import MaildirKit
@testable import DeliveryKit
@testable import Watch

/// A new file's flags as tags, as libnotmuch and notmuch new make them.
@Suite struct FlagTagsTests {
    @Test func flagsInCurBecomeTagsAndSeenRemovesUnread() {
        #expect(FoundMail.flagTags("/m/INBOX/cur/x:2,FRS", synchronizing: true)
                == [.add("flagged"), .add("replied"), .remove("unread")])
        #expect(FoundMail.flagTags("/m/INBOX/cur/x:2,", synchronizing: true) == [.add("unread")])
        #expect(FoundMail.flagTags("/m/INBOX/cur/x:2,DP", synchronizing: true)
                == [.add("draft"), .add("passed"), .add("unread")])
    }

    @Test func noInfoPartOrNoMaildirMeansNoFlags() {
        #expect(FoundMail.flagTags("/m/INBOX/new/x", synchronizing: true).isEmpty)
        #expect(FoundMail.flagTags("/m/INBOX/cur/x", synchronizing: true).isEmpty)
        #expect(FoundMail.flagTags("/m/INBOX/x:2,S", synchronizing: true).isEmpty)
    }

    @Test func withoutSynchronisingOnlySeenStillKeepsUnreadAway() {
        #expect(FoundMail.flagTags("/m/INBOX/cur/x:2,FS", synchronizing: false) == [.remove("unread")])
        #expect(FoundMail.flagTags("/m/INBOX/cur/x:2,F", synchronizing: false).isEmpty)
    }

    @Test func listingsSortAsStrcmpDoes() {
        // Bytes, not Unicode order: "Z" (0x5A) before "a", "é" (0xC3...) after "z".
        let names = ["é", "a", "Z", "a:2,S", "a-1"]
        #expect(names.sorted(by: DirectoryListing.precedes) == ["Z", "a", "a-1", "a:2,S", "é"])
    }
}
