internal import CNotmuch

/// One message in the database. Holds its owner (the database, or the query
/// it came from) so the talloc parent outlives it.
public final class Message {
    let handle: OpaquePointer
    private let owner: AnyObject
    private let database: OpaquePointer
    /// For extensions in other files of this module.
    var databaseHandle: OpaquePointer { database }

    init(handle: OpaquePointer, owner: Database) {
        self.handle = handle
        self.owner = owner
        self.database = owner.handle
    }

    init(handle: OpaquePointer, owner: MessageList) {
        self.handle = handle
        self.owner = owner
        self.database = owner.query.database.handle
    }

    deinit { notmuch_message_destroy(handle) }

    public var id: String { String(cString: notmuch_message_get_message_id(handle)) }
    public var threadID: String { String(cString: notmuch_message_get_thread_id(handle)) }

    /// Every file of this message, in libnotmuch's order.
    public var filenames: [String] {
        notmuch_message_get_filenames(handle).map(StringList.filenames) ?? []
    }

    public var tags: [String] {
        notmuch_message_get_tags(handle).map(StringList.tags) ?? []
    }

    /// A header's value as libnotmuch decodes it; nil when absent.
    public func header(_ name: String) -> String? {
        guard let value = notmuch_message_get_header(handle, name) else { return nil }
        let string = String(cString: value)
        return string.isEmpty ? nil : string
    }

    public func addTag(_ tag: String) throws(NotmuchError) {
        try check(notmuch_message_add_tag(handle, tag), database)
    }

    public func removeTag(_ tag: String) throws(NotmuchError) {
        try check(notmuch_message_remove_tag(handle, tag), database)
    }

    /// Applies several tag changes as one: nobody sees a state in between.
    public func withTagsFrozen<T>(_ body: () throws -> T) throws -> T {
        try check(notmuch_message_freeze(handle), database)
        let result = try body()
        try check(notmuch_message_thaw(handle), database)
        return result
    }

    /// The first value of a property (notmuch's per-message key/value store).
    public func property(_ key: String) throws(NotmuchError) -> String? {
        var value: UnsafePointer<CChar>?
        try check(notmuch_message_get_property(handle, key, &value), database)
        return value.map { String(cString: $0) }
    }

    public func addProperty(_ key: String, value: String) throws(NotmuchError) {
        try check(notmuch_message_add_property(handle, key, value), database)
    }

    /// Renames the message's files so their maildir flags match its tags
    /// (this may move a file from new/ to cur/).
    public func syncTagsToMaildirFlags() throws(NotmuchError) {
        try check(notmuch_message_tags_to_maildir_flags(handle), database)
    }
}
