import Testing
import DeliveryKit
import MaildirKit

/// One way to say over quota, and the folder gate's refusals mapped to
/// delivery outcomes: the exit statuses MTAs act on stay what they were.
@Suite struct DeliveryErrorTests {
    @Test func exitStatusesByKind() {
        #expect(DeliveryError(.usage, "x").exitStatus == .usage)
        #expect(DeliveryError(.notAMessage, "x").exitStatus == .dataError)
        #expect(DeliveryError(.noSuchMailbox, "x").exitStatus == .noUser)
        #expect(DeliveryError(.overQuota(permanent: true), "x").exitStatus == .noPermission)
        #expect(DeliveryError(.overQuota(permanent: false), "x").exitStatus == .temporaryFailure)
        #expect(DeliveryError(.temporary, "x").exitStatus == .temporaryFailure)
        #expect(DeliveryError.config("x").exitStatus == .temporaryFailure)
    }

    @Test func onlyDeferralsAreTemporary() {
        #expect(DeliveryError(.overQuota(permanent: false), "x").isTemporary)
        #expect(DeliveryError(.temporary, "x").isTemporary)
        #expect(!DeliveryError(.overQuota(permanent: true), "x").isTemporary)
        #expect(!DeliveryError(.usage, "x").isTemporary)
        #expect(!DeliveryError(.notAMessage, "x").isTemporary)
    }

    @Test func folderRefusalsBecomeDeliveryOutcomes() {
        let name = DeliveryError(FolderError(.refusedName, "folder 'tmp' is reserved"))
        #expect(name.kind == .usage && name.message == "folder 'tmp' is reserved")
        let root = DeliveryError(FolderError(.badMailRoot, "mail root '/x' is not a directory"))
        #expect(root.kind == .temporary && root.message.hasPrefix("configuration error: mail root '/x'"))
        let missing = DeliveryError(FolderError(.unavailable, "folder 'a' does not exist"))
        #expect(missing.kind == .temporary && missing.message == "folder 'a' does not exist")
    }
}
