/// A place in a Sieve script: line and column, both from 1; columns count
/// characters, not bytes.
public struct SieveLocation: Sendable, Equatable, CustomStringConvertible {
    public let line: Int
    public let column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

/// A mistake in a Sieve script, or a reason it cannot run: reported as
/// `FILE:LINE:COLUMN: message`, as `check-rules` reports the rules format's.
public struct SieveError: Error, Sendable, Equatable, CustomStringConvertible {
    public let file: String
    public let location: SieveLocation
    public let message: String

    public init(file: String, location: SieveLocation, message: String) {
        self.file = file
        self.location = location
        self.message = message
    }

    public var description: String { "\(file):\(location.line):\(location.column): \(message)" }
}

/// What the lexer, the parser and the compiler throw before the file name is known.
struct LocatedProblem: Error {
    let location: SieveLocation
    let message: String
}
