import Notmuch
import SystemPackage
import MaildirKit

/// Tells a failure that belongs to one message (a file that is not mail or
/// has vanished, a rule that fails at run time; a refused tag is not even a
/// failure, see IndexJob.apply)
/// from one that belongs to the run (a full disk, a broken database). The
/// first costs that message only: a batch goes on without it, and a re-run
/// does not stop on it. The second stops the run, as waiting may cure it.
enum MessageFault {
    static func belongsToMessage(_ error: any Error) -> Bool {
        if error is IndexJob.Refused { return true }
        if let error = error as? NotmuchError { return messageStatuses.contains(error.status) }
        if let error = error as? Errno { return messageErrnos.contains(error) }
        if let error = error as? DeliveryError { return !error.isTemporary }
        // Anything else comes from the rules (a pattern that fails on this
        // message's text): the message's own.
        return true
    }

    /// What libnotmuch says about the message, not about itself.
    private static let messageStatuses: Set<Status> = [
        .fileError, .fileNotEmail, .tagTooLong, .illegalArgument, .badQuerySyntax, .pathError, .ignored,
    ]

    /// A file that is gone or cannot be this kind of file: the message's
    /// path, not the disk. ENOSPC, EIO, EROFS and the like are the run's.
    private static let messageErrnos: Set<Errno> = [
        .noSuchFileOrDirectory, .notDirectory, .isDirectory, .tooManySymbolicLinkLevels, .fileNameTooLong,
        .improperLink,
    ]
}
