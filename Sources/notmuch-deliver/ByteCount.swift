import ArgumentParser

/// A size on the command line: bytes, or with a k, M or G suffix (powers
/// of 1024, as `ls -h` and most mail tools read them).
enum ByteCount {
    static func parse(_ text: String) throws -> Int {
        let multipliers: [Character: Int] = ["k": 1 << 10, "K": 1 << 10, "m": 1 << 20, "M": 1 << 20,
                                             "g": 1 << 30, "G": 1 << 30]
        var digits = Substring(text)
        var multiplier = 1
        if let last = digits.last, let factor = multipliers[last] {
            multiplier = factor
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let value = Int(digits), value > 0 else {
            throw ValidationError("'\(text)' is not a size: a positive number of bytes, or with k, M or G")
        }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { throw ValidationError("'\(text)' is too large") }
        return bytes
    }
}
