/// Reading a Sieve script: the entry point `check-rules` and the delivery use.
public enum SieveParser {
    /// The deepest nesting of blocks and tests accepted.
    public static var maximumDepth: Int { Parser.maximumDepth }
    /// The longest script accepted, in bytes.
    public static var maximumScriptLength: Int { Parser.maximumScriptLength }

    /// The script, or every mistake found, each as FILE:LINE:COLUMN.
    public static func parse(_ text: String, origin: String) -> Result<SieveScript, SieveErrors> {
        let commands: [CommandNode]
        do {
            commands = try Parser.parse(text)
        } catch {
            return .failure(SieveErrors(errors: [SieveError(file: origin, location: error.location, message: error.message)]))
        }
        let (script, problems) = Compiler.compile(commands, origin: origin)
        if let script { return .success(script) }
        let errors = problems.map { SieveError(file: origin, location: $0.location, message: $0.message) }
            .sorted { ($0.location.line, $0.location.column) < ($1.location.line, $1.location.column) }
        return .failure(SieveErrors(errors: errors))
    }
}

/// The mistakes of a script that does not compile.
public struct SieveErrors: Error, Sendable, CustomStringConvertible {
    public let errors: [SieveError]

    public init(errors: [SieveError]) {
        self.errors = errors
    }

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
