import MaildirKit
/// One tag change, as `notmuch tag` and `notmuch insert` write it: `+tag` or `-tag`.
public enum TagOperation: Equatable, Sendable, CustomStringConvertible {
    case add(String)
    case remove(String)

    /// libnotmuch's limit (NOTMUCH_TAG_MAX).
    static let maximumLength = 200

    /// Parses `+tag` or `-tag`.
    public init(parsing argument: String) throws(DeliveryError) {
        guard let sign = argument.first, sign == "+" || sign == "-" else {
            throw DeliveryError(.usage, "'\(argument)' is not a tag operation; write +TAG to add a tag or -TAG to remove one")
        }
        let tag = String(argument.dropFirst())
        try Self.validate(tag, from: "the command line")
        self = sign == "+" ? .add(tag) : .remove(tag)
    }

    /// The tags `new.tags` adds; a `-` there is a mistake, not a removal.
    static func fromNewTags(_ tags: [String]) throws(DeliveryError) -> [TagOperation] {
        var operations: [TagOperation] = []
        for tag in tags {
            if tag.hasPrefix("-") {
                throw DeliveryError.config("tag '\(tag)' in new.tags starts with '-'; new.tags lists tags to add")
            }
            do { try validate(tag, from: "new.tags") } catch { throw DeliveryError.config(error.message) }
            operations.append(.add(tag))
        }
        return operations
    }

    static func validate(_ tag: String, from origin: String) throws(DeliveryError) {
        if tag.isEmpty {
            throw DeliveryError(.usage, "empty tag name in \(origin)")
        }
        if tag.utf8.count > maximumLength {
            throw DeliveryError(.usage, "tag '\(tag.prefix(20))…' in \(origin) is longer than \(maximumLength) bytes")
        }
    }

    public var description: String {
        switch self {
        case .add(let tag): return "+\(tag)"
        case .remove(let tag): return "-\(tag)"
        }
    }
}
