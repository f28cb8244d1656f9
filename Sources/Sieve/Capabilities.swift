/// The extensions a script may `require`, and why others are refused.
enum Capabilities {
    static let supported: Set<String> = [
        "fileinto", "envelope", "encoded-character",
        "comparator-i;octet", "comparator-i;ascii-casemap", "comparator-i;ascii-numeric",
        "imap4flags", "variables", "subaddress", "regex", "relational", "mailbox", "copy",
        "vnd.notmuch",
    ]

    /// Extensions people meet in real scripts, with the reason each cannot
    /// work here; anything else is simply unknown.
    static let refused: [String: String] = [
        "vacation": "notmuch-deliver sends no mail (use your MTA's autoresponder)",
        "vacation-seconds": "notmuch-deliver sends no mail",
        "reject": "notmuch-deliver cannot refuse a message it was handed (reject at the MTA)",
        "ereject": "notmuch-deliver cannot refuse a message it was handed (reject at the MTA)",
        "redirect": "notmuch-deliver sends no mail",
        "enotify": "notmuch-deliver sends no notifications",
        "notify": "notmuch-deliver sends no notifications",
        "duplicate": "not supported (notmuch already keeps one message per Message-ID)",
        "include": "not supported: put everything in one script",
        "body": "not supported: the body is not read before delivery",
        "editheader": "not supported: notmuch-deliver stores messages unchanged",
        "date": "not supported",
        "index": "not supported",
        "spamtest": "not supported: test the spam filter's header instead",
        "spamtestplus": "not supported: test the spam filter's header instead",
        "virustest": "not supported: test the virus scanner's header instead",
        "environment": "not supported",
        "ihave": "not supported",
        "mime": "not supported",
        "foreverypart": "not supported",
        "extracttext": "not supported",
        "imapflags": "the old draft; write require \"imap4flags\"",
        "vnd.dovecot.pipe": "notmuch-deliver runs no programs from scripts",
        "vnd.dovecot.filter": "notmuch-deliver runs no programs from scripts",
        "vnd.dovecot.execute": "notmuch-deliver runs no programs from scripts",
    ]

    static func refusal(_ name: String) -> String {
        if let reason = refused[name] { return "unsupported extension '\(name)': \(reason)" }
        if name.hasPrefix("comparator-") { return "unsupported comparator extension '\(name)'" }
        return "unknown extension '\(name)'"
    }
}
