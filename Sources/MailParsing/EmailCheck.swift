internal import CGMime
#if canImport(Glibc)
import Glibc
#endif

/// Whether libnotmuch will take a file as an email message, decided the way
/// `notmuch_database_index_file` decides it, without the database: GMime
/// must build a message from the file (a file starting with `From ` is read
/// as an mbox, which must hold exactly one message), and at least one of
/// From, Subject and To must be present and non-empty once decoded.
///
/// Asked before a delivery reports anything, so that "is this mail?" gets
/// the same answer whether the database's lock was free or not.
public enum EmailCheck {
    public enum Verdict: Equatable, Sendable {
        case email
        case notEmail
        /// The file could not be opened or read (errno).
        case unreadable(Int32)
    }

    public static func verdict(forFile path: String) -> Verdict {
        inspect(path, logged: false).verdict
    }

    /// The verdict, and for mail its From and Subject headers (decoded as
    /// `MessageHeaders` decodes them): what a delivery's log line shows,
    /// taken from this parse instead of reading the file once more.
    public static func verdictAndLogHeaders(forFile path: String) -> (verdict: Verdict, headers: MessageHeaders?) {
        inspect(path, logged: true)
    }

    private static func inspect(_ path: String, logged: Bool) -> (verdict: Verdict, headers: MessageHeaders?) {
        let verdict: Verdict
        var headers: MessageHeaders?
        verdict = inspect(path) { message in
            if logged { headers = MessageHeaders(of: message, only: ["from", "subject"]) }
        }
        return (verdict, verdict == .email ? headers : nil)
    }

    private static func inspect(_ path: String, message seen: (UnsafeMutablePointer<GMimeMessage>) -> Void) -> Verdict {
        GMimeLibrary.initialise
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .unreadable(errno) }
        // The stream owns the descriptor and closes it.
        guard let stream = g_mime_stream_fs_new(fd) else {
            close(fd)
            return .unreadable(ENOMEM)
        }
        defer { g_object_unref(stream) }
        var prefix = [UInt8](repeating: 0, count: 5)
        let count = prefix.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 5, 0) }
        if count < 0 { return .unreadable(errno) }
        let isMbox = count == 5 && prefix == Array("From ".utf8)

        guard let parser = g_mime_parser_new_with_stream(stream) else { return .unreadable(ENOMEM) }
        defer { g_object_unref(parser) }
        g_mime_parser_set_format(parser, isMbox ? GMIME_FORMAT_MBOX : GMIME_FORMAT_MESSAGE)
        guard let message = g_mime_parser_construct_message(parser, nil) else { return .notEmail }
        defer { g_object_unref(message) }
        // libnotmuch reads a one-message mbox, and refuses one with more.
        if isMbox && g_mime_parser_eos(parser) == 0 { return .notEmail }
        seen(message)

        let object = cgmime_object(message)
        for name in ["From", "Subject", "To"] {
            guard let raw = g_mime_object_get_header(object, name) else { continue }
            guard let decoded = g_mime_utils_header_decode_text(nil, raw) else { continue }
            defer { g_free(decoded) }
            if decoded.pointee != 0 { return .email }
        }
        return .notEmail
    }
}
