import MailParsing
import Notmuch
import Rules
import SystemPackage
import MaildirKit

/// The envelope of a delivery: who it is for and from, as the MTA said.
public struct Envelope: Sendable, Equatable {
    public var recipient: String?
    public var sender: String?
    public var recipientExtension: String?

    public init(recipient: String? = nil, sender: String? = nil, recipientExtension: String? = nil) {
        self.recipient = recipient
        self.sender = sender
        self.recipientExtension = recipientExtension
    }

    /// What `from` reads of postfix local(8)'s environment.
    public static let environmentVariables = ["RECIPIENT", "ORIGINAL_RECIPIENT", "SENDER", "EXTENSION"]

    /// The command line first, then postfix local(8)'s environment, then
    /// (see `completed(with:)`) the Delivered-To and Return-Path headers.
    public static func from(recipient: String?, sender: String?, environment: [String: String]) -> Envelope {
        func nonEmpty(_ s: String?) -> String? { (s?.isEmpty ?? true) ? nil : s }
        let recipient = nonEmpty(recipient) ?? nonEmpty(environment["RECIPIENT"]) ?? nonEmpty(environment["ORIGINAL_RECIPIENT"])
        return Envelope(recipient: recipient,
                        sender: nonEmpty(sender) ?? nonEmpty(environment["SENDER"]),
                        recipientExtension: nonEmpty(environment["EXTENSION"]))
    }

    func completed(with headers: MessageHeaders) -> Envelope {
        var envelope = self
        if envelope.recipient == nil { envelope.recipient = headers.values("Delivered-To").first.map(Self.bareAddress) }
        if envelope.sender == nil { envelope.sender = headers.values("Return-Path").first.map(Self.bareAddress) }
        if envelope.recipientExtension == nil, let recipient = envelope.recipient {
            let local = recipient.split(separator: "@", maxSplits: 1).first ?? ""
            if let plus = local.firstIndex(of: "+") {
                let value = local[local.index(after: plus)...]
                envelope.recipientExtension = value.isEmpty ? nil : String(value)
            }
        }
        return envelope
    }

    static func bareAddress(_ value: String) -> String {
        var text = Substring(value)
        if text.hasPrefix("<") { text = text.dropFirst() }
        if text.hasSuffix(">") { text = text.dropLast() }
        return String(text)
    }
}

/// Answers the rules' questions about one delivered message. Headers are
/// read from the file once, on first use.
final class DeliveryFacts: MessageFacts {
    let path: String
    private let givenEnvelope: Envelope
    private let database: Database?
    private let messageID: String?
    private var cachedHeaders: MessageHeaders?
    private var cachedEnvelope: Envelope?

    init(path: String, envelope: Envelope, database: Database?, messageID: String?) {
        self.path = path
        self.givenEnvelope = envelope
        self.database = database
        self.messageID = messageID
    }

    var headers: MessageHeaders {
        if let cachedHeaders { return cachedHeaders }
        let headers = MessageHeaders.read(fromFile: path)
        cachedHeaders = headers
        return headers
    }

    var envelope: Envelope {
        if let cachedEnvelope { return cachedEnvelope }
        let envelope = givenEnvelope.completed(with: headers)
        cachedEnvelope = envelope
        return envelope
    }

    func headerValues(_ name: String) -> [String] { headers.values(name) }
    var recipient: String? { envelope.recipient }
    var sender: String? { envelope.sender }
    var recipientExtension: String? { envelope.recipientExtension }

    lazy var size: Int = {
        guard let fd = try? FileSystem.openRegularFile(path) else { return 0 }
        defer { try? fd.close() }
        return Int((try? fd.seek(offset: 0, from: .end)) ?? 0)
    }()

    /// A query libnotmuch rejects (a typo the rules file's syntax cannot
    /// see, like `date:bogus..`) does not match, and is logged: a rule
    /// must never stop mail.
    func matches(query: String) throws -> Bool {
        guard let database, let messageID else { return false }
        let quoted = "id:\"" + messageID.replacingAll("\"", with: "\"\"") + "\""
        do {
            return try database.query("\(quoted) and (\(query))").count() > 0
        } catch {
            DeliveryLog.logger.error("rule query '\(query)' failed: \(error); taken as not matching")
            return false
        }
    }

    func report(_ problem: String) {
        DeliveryLog.logger.warning("\(problem)")
    }
}

/// Finds and reads the rules file once per delivery. A file that does not
/// parse costs its rules, never the mail: the errors are returned for the
/// log and the delivery goes on without rules.
public enum RulesLoader {
    /// The notmuch config key naming the rules file.
    public static let configKey = "deliver.rules"

    static func load(path: String) -> (RuleSet, [String]) {
        let text: String
        do {
            text = try readFile(path)
        } catch {
            return (.empty, ["\(path): cannot read the rules file: \(error); delivering without rules"])
        }
        let (rules, errors) = RuleParser.parse(text, origin: path)
        if errors.isEmpty { return (rules, []) }
        return (.empty, errors.map { "\($0); delivering without rules until it is fixed (check with: notmuch-deliver check-rules)" })
    }

    /// The largest rules file read (1 MiB): far more than any hand-written
    /// rules, small enough that reading and parsing it costs milliseconds.
    public static let maximumFileSize = 1 << 20

    /// Why a file is not read.
    struct UnreadableFile: Error, CustomStringConvertible {
        let description: String
    }

    /// The whole of a regular file of at most `limit` bytes, as text. A
    /// FIFO would block the delivery until some writer came, a device like
    /// /dev/zero never ends: only a regular file is read, opened without
    /// blocking and checked with fstat before the first read, and never
    /// more than `limit` bytes of it (a file that grows while read included).
    public static func readFile(_ path: String, limit: Int = maximumFileSize) throws -> String {
        let fd: FileDescriptor
        do { fd = try FileSystem.openRegularFile(path) } catch {
            switch error {
            case .notRegular: throw UnreadableFile(description: "not a regular file")
            case .failed(let errno): throw errno
            case .missing: throw Errno.noSuchFileOrDirectory
            case .symlink: throw Errno.tooManySymbolicLinkLevels
            }
        }
        defer { try? fd.close() }
        let tooLarge = UnreadableFile(description: "larger than the limit of \(limit) bytes")
        guard try fd.stat().size <= limit else { throw tooLarge }
        var bytes: [UInt8] = []
        try fd.readChunks { chunk in
            bytes += chunk
            guard bytes.count <= limit else { throw tooLarge }
            return true
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Loads a rules file; its errors go to the log.
    static func loadLogging(path: String) -> RuleSet {
        let (rules, errors) = load(path: path)
        for error in errors { DeliveryLog.logger.error("\(error)") }
        return rules
    }

    /// `~/x` and relative paths are taken from the home directory, as notmuch does for database.path.
    public static func expand(_ path: String, home: String?) -> String {
        if path.hasPrefix("/") { return path }
        let home = home ?? "/"
        if path == "~" { return home }
        if path.hasPrefix("~/") { return home + path.dropFirst(1) }
        return home + "/" + path
    }
}

extension RulesLoader {
    /// The rules file a delivery with `options` reads, nil for none: the
    /// file given; else a virtual mailbox's own `deliver.rules` in its database folder
    /// (`mailRootTemplate` and the envelope's recipient name the mailbox),
    /// if it has one; else `deliver.rules` from the notmuch config. Creates
    /// nothing, so that `check-rules` can ask before the first delivery.
    public static func path(for options: DeliveryOptions, recipient: String?) throws(DeliveryError) -> String? {
        try ScriptLocation.rules.path(for: options, recipient: recipient)
    }

    /// The resolution, for a delivery that has loaded its config already:
    /// `configured` gives `deliver.rules` from it, and is asked only when
    /// neither the options nor a virtual mailbox decide.
    static func path(for options: DeliveryOptions, mailboxRoot: String?,
                     configured: () throws(DeliveryError) -> String?) throws(DeliveryError) -> String? {
        try ScriptLocation.rules.path(for: options, mailboxRoot: mailboxRoot, configured: configured)
    }
}

/// Where a delivery's rules file or Sieve script is found, the same way
/// for both: the file given; else a virtual mailbox's own file in its
/// `.notmuch` folder, if it has one (`mailRootTemplate` and the envelope's
/// recipient name the mailbox); else the notmuch config's key. Creates
/// nothing, so that `check-rules` can ask before the first delivery.
enum ScriptLocation {
    case rules, sieve

    private func source(_ options: DeliveryOptions) -> RulesSource {
        self == .rules ? options.rules : options.sieve
    }

    private var configKey: String { self == .rules ? RulesLoader.configKey : SieveLoader.configKey }
    private var mailboxFileName: String { self == .rules ? "deliver.rules" : SieveLoader.mailboxFileName }

    func path(for options: DeliveryOptions, recipient: String?) throws(DeliveryError) -> String? {
        var mailboxRoot: String?
        if source(options) == .configured, let template = options.mailRootTemplate {
            guard let recipient else {
                throw DeliveryError(.usage, "--mail-root needs the recipient: pass --recipient ADDR")
            }
            mailboxRoot = try VirtualMailbox.path(template: template, recipient: recipient)
        }
        return try path(for: options, mailboxRoot: mailboxRoot) { () throws(DeliveryError) -> String? in
            let loaded: Database.LoadedConfig
            do {
                loaded = try Database.loadConfig(config: options.config, profile: options.profile)
            } catch {
                throw DeliveryError(.temporary, "cannot load the notmuch configuration: \(error)")
            }
            if case .file(let path) = options.config, loaded.missingConfigFile {
                throw DeliveryError(.usage, "config file '\(path)' not found")
            }
            return loaded.database.configValues(configKey).first
        }
    }

    /// The resolution, for a delivery that has loaded its config already:
    /// `configured` gives the config key's value, and is asked only when
    /// neither the options nor a virtual mailbox decide.
    func path(for options: DeliveryOptions, mailboxRoot: String?,
              configured: () throws(DeliveryError) -> String?) throws(DeliveryError) -> String? {
        switch source(options) {
        case .none: return nil
        case .file(let path): return path
        case .configured:
            if let mailbox = mailboxRoot {
                let own = FilePath(Database.standardFolder(databasePath: mailbox)).appending(mailboxFileName)
                return FileSystem.kind(of: own) == .notADirectory ? own.string : nil
            }
            return try configured().map { RulesLoader.expand($0, home: options.home) }
        }
    }
}
