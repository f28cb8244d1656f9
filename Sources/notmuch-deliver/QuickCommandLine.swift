import Notmuch

/// Reads the delivery command lines MTAs and fetchers send, without
/// swift-argument-parser. That parser builds its model of the command by
/// reflection and dynamic casts, about 4 ms of CPU in every process: a
/// seventh of a whole delivery, paid once per message.
///
/// This is hand-written on purpose and deliberately narrow: anything it is
/// not sure of (help, an unknown or repeated option, a value that looks like
/// an option, a malformed number) gives nil, and ArgumentParser, which stays
/// the reference for syntax, help and error messages, parses the line. Tests
/// check that both give the same request for every line this one accepts,
/// and that this one knows every option `Deliver` declares.
enum QuickCommandLine {
    /// `arguments` without the program name and with the `+TAG`/`-TAG`
    /// operations already taken out.
    static func deliveryRequest(_ arguments: [String]) -> DeliveryRequest? {
        var request = DeliveryRequest()
        var seen: Set<String> = []
        var index = arguments.startIndex
        while index < arguments.endIndex {
            var name = arguments[index]
            index += 1
            var attached: String?
            if name.hasPrefix("--"), let equals = name.firstIndex(of: "=") {
                attached = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            // Only --tag and --remove-tag may repeat.
            let repeatable = name == "--tag" || name == "--remove-tag"
            guard repeatable || seen.insert(name).inserted else { return nil }

            func value() -> String? {
                // An empty folder is the top-level one, as for notmuch insert.
                let mayBeEmpty = name == "--folder"
                if let attached { return attached.isEmpty && !mayBeEmpty ? nil : attached }
                guard index < arguments.endIndex else { return nil }
                let next = arguments[index]
                guard !next.isEmpty || mayBeEmpty, !next.hasPrefix("-") else { return nil }
                index += 1
                return next
            }

            if let flag = flags[name] {
                guard attached == nil else { return nil }
                switch flag {
                case .createFolder: request.filing.createFolder = true
                case .noRules: request.filing.noRules = true
                case .keep: request.keep = true
                case .noHooks: request.noHooks = true
                case .worldReadable: request.worldReadable = true
                case .verbose: request.verbose = true
                case .quotaPermanent: request.quotaPermanent = true
                }
                continue
            }
            guard let option = options[name], let text = value() else { return nil }
            switch option {
            case .folder: request.filing.folder = text
            case .tag: request.filing.addTags.append(text)
            case .removeTag: request.filing.removeTags.append(text)
            case .config: request.filing.config = text
            case .profile: request.filing.profile = text
            case .rules: request.filing.rules = text
            case .sieve: request.filing.sieve = text
            case .recipient: request.recipient = text
            case .sender: request.sender = text
            case .mailRoot: request.mailRoot = text
            case .log: request.log = text
            case .quota: request.quota = text
            case .quotaWarn: request.quotaWarn = text
            case .decrypt:
                guard let policy = DecryptPolicy(rawValue: text) else { return nil }
                request.decrypt = policy
            case .lockTimeout:
                guard let seconds = Double(text) else { return nil }
                request.lockTimeout = seconds
            }
        }
        return request
    }

    enum Flag { case createFolder, noRules, keep, noHooks, worldReadable, verbose, quotaPermanent }
    enum Option { case folder, tag, removeTag, config, profile, rules, sieve, recipient, sender, mailRoot, log, decrypt, lockTimeout,
                  quota, quotaWarn }

    /// Every name of every `Deliver` option and flag, as ArgumentParser
    /// declares them: a test holds the two to the same names, and taking
    /// tag operations apart (`NotmuchDeliver.splitTagOperations`) reads
    /// these tables too.
    static let flags: [String: Flag] = [
        "--create-folder": .createFolder, "--no-rules": .noRules, "--keep": .keep,
        "--no-hooks": .noHooks, "-n": .noHooks, "--world-readable": .worldReadable,
        "--verbose": .verbose, "-v": .verbose, "--quota-permanent": .quotaPermanent,
    ]
    static let options: [String: Option] = [
        "--folder": .folder, "--tag": .tag, "--remove-tag": .removeTag, "--config": .config,
        "--profile": .profile, "--rules": .rules, "--sieve": .sieve, "--recipient": .recipient, "--sender": .sender,
        "--mail-root": .mailRoot, "--log": .log, "--decrypt": .decrypt, "--lock-timeout": .lockTimeout,
        "--quota": .quota, "--quota-warn": .quotaWarn,
    ]
}
