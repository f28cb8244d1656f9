import Notmuch
import Threads

/// What the opening thread hands over. Not `Result<Database,
/// NotmuchError>`: building that generic type at run time has the Swift
/// runtime look up `NotmuchError: Error` by scanning every conformance
/// record in the binary, about 0.1 ms of each delivery's CPU.
enum DatabaseOpening {
    case opened(Database)
    case failed(NotmuchError)
}

extension Mailbox {
    /// Opens the database for writing on a thread of its own: libnotmuch
    /// waits for the write lock with no time limit, and a wait that lasts
    /// too long must be left behind (see `BackgroundCall.wait(upTo:)`).
    func startOpening() -> BackgroundCall<DatabaseOpening> {
        let location = location
        return BackgroundCall { () -> DatabaseOpening in
            do throws(NotmuchError) { return .opened(try location.openDatabase()) } catch { return .failed(error) }
        }
    }
}
