import Glibc

/// The time of day, in whole seconds since the epoch: for what is stored
/// or shown (a date header, a record's time), never for measuring a
/// duration (that is `Monotonic`'s).
public enum WallClock {
    public static var seconds: Int { Int(time(nil)) }

    /// `seconds` in UTC, formatted by strftime(3)'s `format`.
    public static func utc(_ seconds: Int, format: String) -> String {
        var value = time_t(seconds)
        var parts = tm()
        gmtime_r(&value, &parts)
        var buffer = [CChar](repeating: 0, count: 128)
        let length = strftime(&buffer, buffer.count, format, &parts)
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
