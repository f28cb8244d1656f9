internal import CGMime
import SystemPackage

/// Whether libnotmuch will take a file as an email message, decided the way
/// `notmuch_database_index_file` decides it, without the database: GMime
/// must build a message from the file (a file starting with `From ` is read
/// as an mbox, which must hold exactly one message), and at least one of
/// From, Subject and To must be present and non-empty once decoded.
///
/// Asked before a delivery reports anything, so that "is this mail?" gets
/// the same answer whether the database's lock was free or not. A message
/// over `MessageLimits` is refused before GMime reads it: parsing and
/// indexing it would cost hundreds of times its size in memory.
public enum EmailCheck {
    public enum Verdict: Equatable, Sendable {
        case email
        case notEmail
        /// Mail, perhaps, but too costly to parse and index.
        case overLimit(MessageLimits.Excess)
        /// The file could not be opened or read (errno).
        case unreadable(Int32)
    }

    /// `checkingLimits`: false when the caller has scanned the file already.
    public static func verdict(forFile path: String, checkingLimits: Bool = true) -> Verdict {
        inspect(path, checkingLimits: checkingLimits, logged: false).verdict
    }

    /// The verdict, and for mail its From and Subject headers (decoded as
    /// `MessageHeaders` decodes them): what a delivery's log line shows,
    /// taken from this parse instead of reading the file once more.
    public static func verdictAndLogHeaders(forFile path: String,
                                            checkingLimits: Bool = true) -> (verdict: Verdict, headers: MessageHeaders?) {
        inspect(path, checkingLimits: checkingLimits, logged: true)
    }

    private static func inspect(_ path: String, checkingLimits: Bool,
                                logged: Bool) -> (verdict: Verdict, headers: MessageHeaders?) {
        var headers: MessageHeaders?
        let verdict = inspect(path, checkingLimits: checkingLimits) { message in
            if logged { headers = MessageHeaders(of: message, only: ["from", "subject"]) }
        }
        return (verdict, verdict == .email ? headers : nil)
    }

    private static func inspect(_ path: String, checkingLimits: Bool,
                                message seen: (UnsafeMutablePointer<GMimeMessage>) -> Void) -> Verdict {
        GMimeLibrary.initialise
        func code(_ error: any Error) -> Int32 { (error as? Errno ?? .ioError).rawValue }
        let file: FileDescriptor
        do { file = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) } catch {
            return .unreadable(code(error))
        }
        do {
            if checkingLimits, let excess = try MessageLimits.scan(file).excess {
                try? file.close()
                return .overLimit(excess)
            }
            // GMime's stream starts at the descriptor's offset.
            _ = try file.seek(offset: 0, from: .start)
        } catch {
            try? file.close()
            return .unreadable(code(error))
        }
        // The stream owns the descriptor and closes it.
        guard let stream = g_mime_stream_fs_new(file.rawValue) else {
            try? file.close()
            return .unreadable(Errno.noMemory.rawValue)
        }
        defer { g_object_unref(stream) }
        var prefix = [UInt8](repeating: 0, count: 5)
        let count: Int
        do { count = try prefix.withUnsafeMutableBytes { try file.read(fromAbsoluteOffset: 0, into: $0) } } catch {
            return .unreadable(code(error))
        }
        let isMbox = count == 5 && prefix == Array("From ".utf8)

        guard let parser = g_mime_parser_new_with_stream(stream) else { return .unreadable(Errno.noMemory.rawValue) }
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
