import Foundation

/// The id of a process that has ended and been reaped: no process has it
/// (until the kernel hands it out again, which takes a while).
public func deadProcessID() throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/true")
    try process.run()
    process.waitUntilExit()
    return process.processIdentifier
}

/// The notmuch CLI failed: its arguments, exit status and stderr.
public struct NotmuchFailed: Error, Sendable, CustomStringConvertible {
    public let arguments: [String]
    public let status: Int32
    public let stderr: String
    public var description: String { "notmuch \(arguments.joined(separator: " ")) exited \(status): \(stderr)" }
}

/// What the real notmuch CLI says about the database `config` names (HOME
/// set to `home` when given): its stdout, trimmed; a failure throws.
public func notmuchOutput(_ arguments: [String], config: String, home: String? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/notmuch")
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("NOTMUCH_") }
    environment["NOTMUCH_CONFIG"] = config
    if let home { environment["HOME"] = home }
    process.environment = environment
    let output = Pipe(), errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw NotmuchFailed(arguments: arguments, status: process.terminationStatus,
                            stderr: String(decoding: errorData, as: UTF8.self))
    }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}
