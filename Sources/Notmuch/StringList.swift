internal import CNotmuch

/// libnotmuch's string lists (file names, tags) read into an array and
/// destroyed: the list is valid only while its parent lives, so it is
/// never kept.
enum StringList {
    static func filenames(_ list: OpaquePointer) -> [String] {
        defer { notmuch_filenames_destroy(list) }
        return read(list, valid: notmuch_filenames_valid, get: notmuch_filenames_get, next: notmuch_filenames_move_to_next)
    }

    static func tags(_ list: OpaquePointer) -> [String] {
        defer { notmuch_tags_destroy(list) }
        return read(list, valid: notmuch_tags_valid, get: notmuch_tags_get, next: notmuch_tags_move_to_next)
    }

    private static func read(_ list: OpaquePointer, valid: (OpaquePointer?) -> notmuch_bool_t,
                             get: (OpaquePointer?) -> UnsafePointer<CChar>?,
                             next: (OpaquePointer?) -> Void) -> [String] {
        var result: [String] = []
        while valid(list) != 0 {
            if let value = get(list) { result.append(String(cString: value)) }
            next(list)
        }
        return result
    }
}
