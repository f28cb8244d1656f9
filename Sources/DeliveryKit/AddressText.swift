internal import CGLib

/// An envelope address as text from outside (the command line, postfix's
/// environment, an LMTP envelope), which may be UTF-8 (RFC 6531): what it
/// may not hold, and how a part of it names a virtual mailbox's directory.
public enum AddressText {
    /// Why `address` cannot be an envelope address, or nil: a control
    /// character (C0, DEL, C1, U+2028, U+2029), as the LMTP server refuses
    /// them, or U+FFFD, which is what bytes that are not UTF-8 became when
    /// the command line or the environment was read.
    public static func problem(_ address: String) -> String? {
        for scalar in address.unicodeScalars {
            let value = scalar.value
            if value < 0x20 || (0x7F...0x9F).contains(value) || value == 0x2028 || value == 0x2029 {
                return "holds a control character"
            }
            if value == 0xFFFD { return "is not valid UTF-8 (it holds U+FFFD)" }
        }
        return nil
    }

    /// A local part or domain as a directory name: lower-cased (Unicode's
    /// case mapping, which is ASCII's for ASCII, so `Jörg` and `jörg` are
    /// one mailbox, as `Bob` and `bob` always were) and in Unicode NFC, so
    /// that the composed and decomposed spellings of `ö`, which look the
    /// same and are one address to a person, are one directory.
    static func directoryName(_ part: some StringProtocol) -> String {
        let lower = part.lowercased()
        guard !lower.utf8.allSatisfy({ $0 < 0x80 }),
              let normalized = g_utf8_normalize(lower, -1, G_NORMALIZE_NFC) else { return lower }
        defer { g_free(normalized) }
        return String(cString: normalized)
    }
}
