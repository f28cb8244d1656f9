internal import CNotmuch

/// A directory as the database remembers it: the mtime stored for it and
/// the names of the files and subdirectories indexed below it, which is
/// what `notmuch new` compares a directory's listing against. Holds the
/// database, its talloc parent, alive.
public final class Directory {
    /// Nil once deleted: libnotmuch's delete frees the object too.
    private var handle: OpaquePointer?
    private let database: Database

    init(handle: OpaquePointer, database: Database) {
        self.handle = handle
        self.database = database
    }

    deinit { if let handle { notmuch_directory_destroy(handle) } }

    private func live() throws(NotmuchError) -> OpaquePointer {
        guard let handle else { throw NotmuchError(.illegalArgument, detail: "directory used after delete()") }
        return handle
    }

    /// The mtime (whole seconds since the epoch) stored for it; 0 when none is.
    public func mtime() throws(NotmuchError) -> Int {
        Int(notmuch_directory_get_mtime(try live()))
    }

    /// Stores `seconds` as its mtime (read-write databases only).
    public func setMtime(_ seconds: Int) throws(NotmuchError) {
        try check(notmuch_directory_set_mtime(try live(), time_t(seconds)), database.handle)
    }

    /// The names (not paths) of the files indexed directly in it, sorted
    /// as `strcmp` sorts them.
    public func childFiles() throws(NotmuchError) -> [String] {
        try names(notmuch_directory_get_child_files(try live()))
    }

    /// The names of the subdirectories the database knows, sorted likewise.
    public func childDirectories() throws(NotmuchError) -> [String] {
        try names(notmuch_directory_get_child_directories(try live()))
    }

    /// Deletes its document; the object is unusable afterwards. Its files
    /// and subdirectories are to be removed first, as `notmuch new` does.
    public func delete() throws(NotmuchError) {
        let handle = try live()
        self.handle = nil
        // Frees the object whatever the outcome.
        try check(notmuch_directory_delete(handle), database.handle)
    }

    private func names(_ list: OpaquePointer?) throws(NotmuchError) -> [String] {
        // libnotmuch returns NULL when Xapian threw.
        guard let list else { throw NotmuchError(.xapianException) }
        return StringList.filenames(list)
    }
}

extension Database {
    /// The directory at `path` (absolute under the mail root, or relative
    /// to it), or nil when the database has no document for it: libnotmuch
    /// makes one when it indexes the first file below it.
    public func directory(_ path: String) throws(NotmuchError) -> Directory? {
        var directory: OpaquePointer?
        try check(notmuch_database_get_directory(handle, path, &directory), handle)
        return directory.map { Directory(handle: $0, database: self) }
    }

    /// What removing one filename left behind.
    public enum Removal: Sendable, Equatable {
        /// The message is gone with its last file (and its tags with it).
        case messageRemoved
        /// The message stays under its other files (a rename, a copy).
        case otherFilesRemain
    }

    /// Removes one filename of a message, saying whether the message went
    /// with it (libnotmuch's DUPLICATE_MESSAGE_ID means it did not).
    public func removeFilename(_ path: String) throws(NotmuchError) -> Removal {
        let status = notmuch_database_remove_message(handle, path)
        if status == NOTMUCH_STATUS_DUPLICATE_MESSAGE_ID { return .otherFilesRemain }
        try check(status, handle)
        return .messageRemoved
    }
}

extension Message {
    /// Removes every value of a property.
    public func removeProperty(_ key: String) throws(NotmuchError) {
        try check(notmuch_message_remove_all_properties(handle, key), databaseHandle)
    }

    /// Sets the five flag tags (draft, flagged, passed, replied, unread)
    /// from the maildir flags of all its files, as `notmuch new` does; a
    /// message none of whose files has a `:2,` part is left alone.
    public func syncMaildirFlagsToTags() throws(NotmuchError) {
        try check(notmuch_message_maildir_flags_to_tags(handle), databaseHandle)
    }
}
