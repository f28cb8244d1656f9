import MaildirKit
import SystemPackage

/// Why a delivery did not happen, in one line a mail administrator can act on.
public struct DeliveryError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The command line is wrong: retrying cannot help.
        case usage
        /// The input is not a message: retrying cannot help.
        case notAMessage
        /// The recipient can never have a mailbox here (say, a local part
        /// too long for a directory name): retrying cannot help.
        case noSuchMailbox
        /// A quota refused the message: for good when the administrator
        /// made that permanent (`--quota-permanent`; the MTA bounces), else
        /// until there is room (the MTA retries).
        case overQuota(permanent: Bool)
        /// Anything that may pass: a full disk, a database that cannot be
        /// opened, a configuration being fixed. The MTA keeps the mail and retries.
        case temporary
    }

    package let kind: Kind
    public let message: String
    /// Where the delivered file was when the delivery failed, if a rule's
    /// folder or a flag rename had moved it by then.
    package var location: FilePath?
    /// The database (through another process's flush) already names the
    /// delivered file: it must stay, whatever failed afterwards.
    package var fileIsNamedElsewhere = false
    /// The message is over a size limit (its header block's): an LMTP
    /// server says 552 5.3.4 rather than 554 5.6.0.
    public var isTooBig = false

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// What the folder gate (MailFolder) refused, as a delivery's outcome:
    /// a bad name is the caller's mistake, a bad mail root a configuration
    /// one, a folder that cannot be opened or made now may pass.
    package init(_ refusal: FolderError) {
        switch refusal.kind {
        case .refusedName: self.init(.usage, refusal.message)
        case .badMailRoot: self = .config(refusal.message)
        case .unavailable: self.init(.temporary, refusal.message)
        }
    }

    /// Whether the MTA keeps the mail and retries.
    public var isTemporary: Bool {
        switch kind {
        case .temporary, .overQuota(permanent: false): return true
        case .usage, .notAMessage, .noSuchMailbox, .overQuota(permanent: true): return false
        }
    }

    /// Configuration mistakes defer rather than bounce: postfix turns
    /// EX_CONFIG into a permanent 5.3.5, and a typo must never cost mail.
    public static func config(_ message: String) -> DeliveryError {
        DeliveryError(.temporary, "configuration error: \(message); the mail is deferred until it is fixed")
    }

    public var exitStatus: ExitStatus {
        switch kind {
        case .usage: return .usage
        case .notAMessage: return .dataError
        case .noSuchMailbox: return .noUser
        case .overQuota(let permanent): return permanent ? .noPermission : .temporaryFailure
        case .temporary: return .temporaryFailure
        }
    }

    public var description: String { message }
}
