internal import CNotmuch

/// A libnotmuch status code. Modelled on swift-system's `Errno`: a thin,
/// comparable wrapper with named constants, so callers can `switch` on it
/// without seeing `notmuch_status_t`.
public struct Status: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    init(_ status: notmuch_status_t) { self.rawValue = status.rawValue }

    public static let success = Status(NOTMUCH_STATUS_SUCCESS)
    public static let outOfMemory = Status(NOTMUCH_STATUS_OUT_OF_MEMORY)
    public static let readOnlyDatabase = Status(NOTMUCH_STATUS_READ_ONLY_DATABASE)
    public static let xapianException = Status(NOTMUCH_STATUS_XAPIAN_EXCEPTION)
    public static let fileError = Status(NOTMUCH_STATUS_FILE_ERROR)
    public static let fileNotEmail = Status(NOTMUCH_STATUS_FILE_NOT_EMAIL)
    public static let duplicateMessageID = Status(NOTMUCH_STATUS_DUPLICATE_MESSAGE_ID)
    public static let nullPointer = Status(NOTMUCH_STATUS_NULL_POINTER)
    public static let tagTooLong = Status(NOTMUCH_STATUS_TAG_TOO_LONG)
    public static let unbalancedFreezeThaw = Status(NOTMUCH_STATUS_UNBALANCED_FREEZE_THAW)
    public static let unbalancedAtomic = Status(NOTMUCH_STATUS_UNBALANCED_ATOMIC)
    public static let unsupportedOperation = Status(NOTMUCH_STATUS_UNSUPPORTED_OPERATION)
    public static let upgradeRequired = Status(NOTMUCH_STATUS_UPGRADE_REQUIRED)
    public static let pathError = Status(NOTMUCH_STATUS_PATH_ERROR)
    public static let ignored = Status(NOTMUCH_STATUS_IGNORED)
    public static let illegalArgument = Status(NOTMUCH_STATUS_ILLEGAL_ARGUMENT)
    public static let noConfig = Status(NOTMUCH_STATUS_NO_CONFIG)
    public static let noDatabase = Status(NOTMUCH_STATUS_NO_DATABASE)
    public static let databaseExists = Status(NOTMUCH_STATUS_DATABASE_EXISTS)
    public static let badQuerySyntax = Status(NOTMUCH_STATUS_BAD_QUERY_SYNTAX)
    public static let noMailRoot = Status(NOTMUCH_STATUS_NO_MAIL_ROOT)
    public static let closedDatabase = Status(NOTMUCH_STATUS_CLOSED_DATABASE)

    /// libnotmuch's own wording, e.g. "Cannot write to a read-only database."
    public var description: String {
        String(cString: notmuch_status_to_string(notmuch_status_t(rawValue: rawValue)))
    }
}

extension Status {
    /// Matches a thrown `NotmuchError` by its status, as GRDB's result codes
    /// do, so a caller writes `catch Status.fileNotEmail { … }` instead of
    /// binding the error and comparing.
    public static func ~= (pattern: Status, error: any Error) -> Bool {
        (error as? NotmuchError)?.status == pattern
    }
}

/// A failed libnotmuch call: the status, and the detail libnotmuch gave, if any.
public struct NotmuchError: Error, CustomStringConvertible, Sendable {
    public let status: Status
    /// libnotmuch's explanation (e.g. the Xapian exception), trimmed of its
    /// "Error: " prefix and trailing newline.
    public let detail: String?

    public init(_ status: Status, detail: String? = nil) {
        self.status = status
        self.detail = detail.map(NotmuchError.trimmed).flatMap { $0.isEmpty ? nil : $0 }
    }

    public var description: String {
        guard let detail, detail != status.description else { return status.description }
        return "\(status.description) (\(detail))"
    }

    private static func trimmed(_ text: String) -> String {
        var text = Substring(text)
        while let last = text.last, last.isWhitespace { text.removeLast() }
        if text.hasPrefix("Error: ") { text = text.dropFirst("Error: ".count) }
        return String(text)
    }
}

/// Turns a status into a throw; the detail comes from the database when there is one.
func check(_ status: notmuch_status_t, _ database: OpaquePointer? = nil) throws(NotmuchError) {
    guard status != NOTMUCH_STATUS_SUCCESS else { return }
    var detail: String?
    if let database, let text = notmuch_database_status_string(database) {
        detail = String(cString: text)
    }
    throw NotmuchError(Status(status), detail: detail)
}

/// Takes ownership of a malloc'd C string from libnotmuch.
func takeString(_ pointer: UnsafeMutablePointer<CChar>?) -> String? {
    guard let pointer else { return nil }
    defer { free(pointer) }
    return String(cString: pointer)
}
