internal import CPosix
#if canImport(Glibc)
import Glibc
#endif

/// The date at the end of a From_ line (`From sender Mon Nov 24 09:00:00
/// 2025`), in UTC by convention: what an imported message's file time is set to.
package enum FromLineDate {
    /// Seconds since the epoch, nil when the line ends in no such date.
    package static func seconds(in envelope: String) -> Int? {
        let words = envelope.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard words.count >= 5 else { return nil }
        let date = words.suffix(5).joined(separator: " ")
        var parts = tm()
        guard cposix_strptime(date, "%a %b %d %H:%M:%S %Y", &parts) != nil else { return nil }
        return timegm(&parts)
    }
}
