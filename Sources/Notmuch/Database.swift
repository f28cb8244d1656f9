internal import CNotmuch

/// Where libnotmuch should look for its configuration file.
public enum ConfigSource: Sendable, Equatable {
    /// As the notmuch CLI does: NOTMUCH_CONFIG, then the XDG location, then ~/.notmuch-config.
    case search
    /// This file.
    case file(String)
    /// No file at all: only the database's own config and libnotmuch's defaults.
    case none

    func withCString<R>(_ body: (UnsafePointer<CChar>?) throws -> R) rethrows -> R {
        switch self {
        case .search: return try body(nil)
        case .file(let path): return try path.withCString(body)
        case .none: return try "".withCString(body)
        }
    }
}

/// How an indexed message's encrypted parts are handled (`index.decrypt`).
public enum DecryptPolicy: String, Sendable, CaseIterable {
    case `false`, `true`, auto, nostash

    var cValue: notmuch_decryption_policy_t {
        switch self {
        case .false: return NOTMUCH_DECRYPT_FALSE
        case .true: return NOTMUCH_DECRYPT_TRUE
        case .auto: return NOTMUCH_DECRYPT_AUTO
        case .nostash: return NOTMUCH_DECRYPT_NOSTASH
        }
    }
}

/// An open notmuch database: the root of libnotmuch's ownership tree.
///
/// Every object obtained from it (messages, queries) holds a strong reference
/// back to it, so the database is destroyed only after the last of them, as
/// talloc requires. Not thread-safe, like the handle it wraps.
public final class Database {
    public enum Mode: Sendable { case readOnly, readWrite }

    let handle: OpaquePointer

    private init(handle: OpaquePointer) { self.handle = handle }

    deinit { notmuch_database_destroy(handle) }

    /// Opens the database exactly as the notmuch CLI would find it.
    public static func open(
        mode: Mode, config: ConfigSource = .search, profile: String? = nil, databasePath: String? = nil
    ) throws(NotmuchError) -> Database {
        let cMode = mode == .readWrite ? NOTMUCH_DATABASE_MODE_READ_WRITE : NOTMUCH_DATABASE_MODE_READ_ONLY
        return try opening(config: config, profile: profile, databasePath: databasePath) {
            notmuch_database_open_with_config($0, cMode, $1, $2, &$3, &$4)
        }.database
    }

    /// Creates a new database at the configured path.
    public static func create(
        config: ConfigSource = .search, profile: String? = nil, databasePath: String? = nil
    ) throws(NotmuchError) -> Database {
        try opening(config: config, profile: profile, databasePath: databasePath) {
            notmuch_database_create_with_config($0, $1, $2, &$3, &$4)
        }.database
    }

    /// What `loadConfig` found missing; neither stops the config from being read.
    public struct LoadedConfig {
        public let database: Database
        /// No config file was found (libnotmuch's defaults apply).
        public let missingConfigFile: Bool
        /// The database does not exist yet; the config is still usable.
        public let missingDatabase: Bool
    }

    /// Reads the configuration without taking the write lock.
    public static func loadConfig(
        config: ConfigSource = .search, profile: String? = nil, databasePath: String? = nil
    ) throws(NotmuchError) -> LoadedConfig {
        let (database, status) = try opening(config: config, profile: profile, databasePath: databasePath,
                                             alsoUsable: [.noConfig, .noDatabase]) {
            notmuch_database_load_config($0, $1, $2, &$3, &$4)
        }
        return LoadedConfig(database: database, missingConfigFile: status == .noConfig,
                            missingDatabase: status == .noDatabase)
    }

    /// The shape all of libnotmuch's `*_with_config` calls share: database
    /// path, config path and profile in (nil: search for it), a handle and a
    /// malloc'd message out.
    private typealias OpenCall = (
        _ databasePath: UnsafePointer<CChar>?, _ configPath: UnsafePointer<CChar>?, _ profile: UnsafePointer<CChar>?,
        _ handle: inout OpaquePointer?, _ message: inout UnsafeMutablePointer<CChar>?
    ) -> notmuch_status_t

    /// Makes one `*_with_config` call and takes ownership of what it gives.
    /// A failed call may still hand back a handle (libnotmuch leaves the
    /// caller to destroy it); `alsoUsable` names the statuses, besides
    /// success, whose handle is worth keeping.
    private static func opening(
        config: ConfigSource, profile: String?, databasePath: String?, alsoUsable: [Status] = [],
        _ call: OpenCall
    ) throws(NotmuchError) -> (database: Database, status: Status) {
        var handle: OpaquePointer?
        var message: UnsafeMutablePointer<CChar>?
        let status = config.withCString { configPath in
            withOptionalCString(profile) { profile in
                withOptionalCString(databasePath) { path in call(path, configPath, profile, &handle, &message) }
            }
        }
        let detail = takeString(message)
        let result = Status(status)
        guard result == .success || alsoUsable.contains(result), let handle else {
            if let handle { notmuch_database_destroy(handle) }
            throw NotmuchError(result, detail: detail)
        }
        return (Database(handle: handle), result)
    }

    /// Commits and closes. Objects from this database stay valid to release,
    /// but no longer to use. Report the error: it means the commit failed.
    public func close() throws(NotmuchError) {
        try check(notmuch_database_close(handle))
    }

    public var path: String { String(cString: notmuch_database_get_path(handle)) }

    // MARK: Atomic sections

    /// How an atomic section ends, and the value it gives back.
    public enum SectionEnd<Value> {
        /// End the section: its changes are committed with the rest of the
        /// batch (Xapian commits every `database.autocommit` sections and
        /// at close).
        case commit(Value)
        /// Cancel the section by closing the database (see `atomicSection`).
        case abort(Value)
    }

    /// Runs `body` as one atomic section that ends as `body` says.
    ///
    /// libnotmuch has no call to cancel one section: an atomic section left
    /// open is cancelled when the database is closed or destroyed. An abort
    /// therefore closes the database here and now; objects from it may be
    /// released but no longer used. It throws if the close fails, as then
    /// nothing says the section's changes were not committed.
    ///
    /// What the cancel takes with it is more than the section: libnotmuch
    /// runs its outermost sections as unflushed Xapian transactions, and
    /// cancelling one discards every change since Xapian's last commit to
    /// disk, so earlier committed sections of the same batch go too (and an
    /// abort in a nested section takes the enclosing ones). Abort from a
    /// database that has nothing else uncommitted, as `explain` does.
    ///
    /// When `body` throws, the section is left open, and the database must
    /// be closed or let go without committing anything else.
    public func atomicSection<T>(_ body: () throws -> SectionEnd<T>) throws -> T {
        try check(notmuch_database_begin_atomic(handle), handle)
        switch try body() {
        case .commit(let value):
            try check(notmuch_database_end_atomic(handle), handle)
            return value
        case .abort(let value):
            try close()
            return value
        }
    }

    /// Runs `body` as one atomic section, committed when it returns. When
    /// `body` throws, the section is left open on purpose: closing or
    /// destroying the database then cancels it, so a half-done change is
    /// never committed.
    public func atomically<T>(_ body: () throws -> T) throws -> T {
        try atomicSection { .commit(try body()) }
    }

    // MARK: Messages

    /// The result of indexing a file: the message it belongs to, and whether
    /// that message was already in the database under another file.
    public struct Indexed {
        public let message: Message
        public let isDuplicate: Bool
    }

    /// Indexes the file at `path`, which must lie under the mail root.
    public func indexFile(_ path: String, decrypt: DecryptPolicy? = nil) throws(NotmuchError) -> Indexed {
        var options: OpaquePointer?
        if let decrypt {
            options = notmuch_database_get_default_indexopts(handle)
            guard let options else { throw NotmuchError(.outOfMemory) }
            try check(notmuch_indexopts_set_decrypt_policy(options, decrypt.cValue))
        }
        // The options must outlive the call that reads them.
        defer { if let options { notmuch_indexopts_destroy(options) } }
        var message: OpaquePointer?
        let status = notmuch_database_index_file(handle, path, options, &message)
        guard status == NOTMUCH_STATUS_SUCCESS || status == NOTMUCH_STATUS_DUPLICATE_MESSAGE_ID,
              let message
        else {
            try check(status == NOTMUCH_STATUS_SUCCESS ? NOTMUCH_STATUS_NULL_POINTER : status, handle)
            throw NotmuchError(.nullPointer)
        }
        return Indexed(message: Message(handle: message, owner: self),
                       isDuplicate: status == NOTMUCH_STATUS_DUPLICATE_MESSAGE_ID)
    }

    /// Removes one filename of a message; the message goes when its last file does.
    public func removeFile(_ path: String) throws(NotmuchError) {
        let status = notmuch_database_remove_message(handle, path)
        if status == NOTMUCH_STATUS_DUPLICATE_MESSAGE_ID { return }
        try check(status, handle)
    }

    public func findMessage(id: String) throws(NotmuchError) -> Message? {
        var message: OpaquePointer?
        try check(notmuch_database_find_message(handle, id, &message), handle)
        return message.map { Message(handle: $0, owner: self) }
    }

    public func findMessage(filename: String) throws(NotmuchError) -> Message? {
        var message: OpaquePointer?
        try check(notmuch_database_find_message_by_filename(handle, filename, &message), handle)
        return message.map { Message(handle: $0, owner: self) }
    }

    /// A query in notmuch's Xapian syntax, as `notmuch search` takes it.
    public func query(_ string: String) throws(NotmuchError) -> Query {
        var query: OpaquePointer?
        try check(notmuch_query_create_with_syntax(handle, string, NOTMUCH_QUERY_SYNTAX_XAPIAN, &query), handle)
        guard let query else { throw NotmuchError(.outOfMemory) }
        return Query(handle: query, database: self)
    }

    // MARK: Configuration

    /// `database.mail_root`, resolved as libnotmuch resolves it.
    public var mailRoot: String? { configString(NOTMUCH_CONFIG_MAIL_ROOT) }
    /// `database.path`: where the database lives (its Xapian files are in
    /// `xapian/` or `.notmuch/xapian/` below it).
    public var databasePath: String? { configString(NOTMUCH_CONFIG_DATABASE_PATH) }
    /// The directory holding hooks (`database.hook_dir` or its default).
    public var hookDirectory: String? { configString(NOTMUCH_CONFIG_HOOK_DIR) }
    /// `new.tags`, in order.
    public var newTags: [String] { collect(notmuch_config_get_values(handle, NOTMUCH_CONFIG_NEW_TAGS)) }

    /// `maildir.synchronize_flags`; libnotmuch defaults it to true.
    public func synchronizesFlags() throws(NotmuchError) -> Bool {
        var value: notmuch_bool_t = 0
        try check(notmuch_config_get_bool(handle, NOTMUCH_CONFIG_SYNC_MAILDIR_FLAGS, &value), handle)
        return value != 0
    }

    /// Every value of any `group.key`, including keys notmuch does not know.
    public func configValues(_ key: String) -> [String] {
        collect(notmuch_config_get_values_string(handle, key))
    }

    private func configString(_ key: notmuch_config_key_t) -> String? {
        guard let value = notmuch_config_get(handle, key) else { return nil }
        let string = String(cString: value)
        return string.isEmpty ? nil : string
    }

    private func collect(_ values: OpaquePointer?) -> [String] {
        guard let values else { return [] }
        defer { notmuch_config_values_destroy(values) }
        var result: [String] = []
        while notmuch_config_values_valid(values) != 0 {
            let value = String(cString: notmuch_config_values_get(values))
            if !value.isEmpty { result.append(value) }
            notmuch_config_values_move_to_next(values)
        }
        return result
    }
}

func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) throws -> R) rethrows -> R {
    guard let string else { return try body(nil) }
    return try string.withCString(body)
}
