internal import CNotmuch

/// A search over the database. Messages it yields keep it alive.
public final class Query {
    let handle: OpaquePointer
    let database: Database

    init(handle: OpaquePointer, database: Database) {
        self.handle = handle
        self.database = database
    }

    deinit { notmuch_query_destroy(handle) }

    public func count() throws(NotmuchError) -> Int {
        var count: UInt32 = 0
        try check(notmuch_query_count_messages(handle, &count), database.handle)
        return Int(count)
    }

    public func messages() throws(NotmuchError) -> [Message] {
        var messages: OpaquePointer?
        try check(notmuch_query_search_messages(handle, &messages), database.handle)
        guard let messages else { return [] }
        let list = MessageList(handle: messages, query: self)
        var result: [Message] = []
        while notmuch_messages_valid(messages) != 0 {
            if let message = notmuch_messages_get(messages) {
                result.append(Message(handle: message, owner: list))
            }
            notmuch_messages_move_to_next(messages)
        }
        return result
    }
}

/// libnotmuch's result list: the talloc parent of the messages it yields,
/// so each of them keeps it (and through it the query) alive.
final class MessageList {
    let handle: OpaquePointer
    let query: Query

    init(handle: OpaquePointer, query: Query) {
        self.handle = handle
        self.query = query
    }

    deinit { notmuch_messages_destroy(handle) }
}
