/// The bytes the protocol is made of, by name.
enum ASCII {
    static let tab = UInt8(ascii: "\t")
    static let lf = UInt8(ascii: "\n")
    static let cr = UInt8(ascii: "\r")
    static let space = UInt8(ascii: " ")
    static let quote = UInt8(ascii: "\"")
    static let comma = UInt8(ascii: ",")
    static let hyphen = UInt8(ascii: "-")
    static let dot = UInt8(ascii: ".")
    static let colon = UInt8(ascii: ":")
    static let lessThan = UInt8(ascii: "<")
    static let equals = UInt8(ascii: "=")
    static let greaterThan = UInt8(ascii: ">")
    static let questionMark = UInt8(ascii: "?")
    static let at = UInt8(ascii: "@")
    static let backslash = UInt8(ascii: "\\")

    static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }
    static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
    }
    /// Visible characters and the space: what may appear in reply text and addresses.
    static func isPrintable(_ byte: UInt8) -> Bool { (0x20...0x7E).contains(byte) }
    /// What a command line may not hold: controls other than tab, and DEL.
    static func isControl(_ byte: UInt8) -> Bool { (byte < 0x20 && byte != tab) || byte == 0x7F }
    static func uppercased(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) ? byte - 0x20 : byte
    }
    static func uppercased(_ bytes: some Sequence<UInt8>) -> String {
        String(decoding: bytes.map(uppercased), as: UTF8.self)
    }
    /// Case-insensitive comparison with an upper-case ASCII word.
    static func matches(_ bytes: some Collection<UInt8>, _ upperCaseWord: String) -> Bool {
        bytes.count == upperCaseWord.utf8.count && zip(bytes, upperCaseWord.utf8).allSatisfy { uppercased($0) == $1 }
    }
}
