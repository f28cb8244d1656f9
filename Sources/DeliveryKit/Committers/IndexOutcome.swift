import Notmuch
import SystemPackage
import MaildirKit

/// What every committer does with the end of an indexing transaction.
enum IndexOutcome {
    /// A failed transaction's error, as a delivery reports it.
    static func classify(_ error: Error, file: FilePath) -> DeliveryError {
        if let error = error as? DeliveryError { return error }
        if let refused = error as? IndexJob.Refused, refused.error.status == .fileNotEmail {
            return DeliveryError(.notAMessage, "the input is not an email message (no From, Subject or To header)")
        }
        return DeliveryError(.temporary, "cannot index '\(file)': \(error)")
    }

    /// Renames and removals inside the transaction touched these
    /// directories; once committed, their entries must reach the disk.
    static func makeDurable(_ directories: [FilePath]) throws(DeliveryError) {
        var seen = Set<FilePath>()
        for directory in directories where seen.insert(directory).inserted {
            do { try FileSystem.fsyncDirectory(directory) } catch {
                throw DeliveryError(.temporary, "cannot sync '\(directory)': \(error)")
            }
        }
    }
}
