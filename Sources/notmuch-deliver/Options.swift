import ArgumentParser
import DeliveryKit
import Mbox
import Notmuch
import MaildirKit

extension DecryptPolicy: ExpressibleByArgument {}
extension MboxFormat: ExpressibleByArgument {}

/// Which notmuch configuration to read: every subcommand but a virtual
/// mailbox's delivery reads one, found as `notmuch` finds it.
struct NotmuchConfigArguments: ParsableArguments {
    @Option(help: "The notmuch config file (default: as notmuch finds it).")
    var config: String?

    @Option(help: "The notmuch profile.")
    var profile: String?

    /// These options onto delivery options, with the home directory the
    /// default config is found in.
    func apply(to options: inout DeliveryOptions) {
        options.config = config.map { .file($0) } ?? .search
        options.profile = profile
        options.home = ProcessEnvironment.value(of: "HOME")
    }
}

/// Where mail goes and how it is tagged: what a delivery, `explain` and
/// `import` share.
struct FilingArguments: ParsableArguments {
    @Option(name: .customLong("folder"), help: "Maildir folder, relative to database.mail_root.")
    var folder: String?

    @Flag(help: "Create the folder if it does not exist.")
    var createFolder = false

    @Option(name: .customLong("tag"), help: "Add this tag (repeatable).")
    var addTags: [String] = []

    @Option(name: .customLong("remove-tag"), help: "Remove this tag (repeatable).")
    var removeTags: [String] = []

    @OptionGroup var notmuch: NotmuchConfigArguments

    @OptionGroup var rules: RulesArguments

    var values: FilingValues {
        FilingValues(folder: folder, createFolder: createFolder, addTags: addTags, removeTags: removeTags,
                     config: notmuch.config, profile: notmuch.profile, rules: rules.rules, sieve: rules.sieve,
                     noRules: rules.noRules)
    }
}

/// Which rules apply: a delivery's, `explain`'s, `import`'s and the LMTP server's.
struct RulesArguments: ParsableArguments {
    @Option(help: "The rules file (default: deliver.rules in the notmuch config).")
    var rules: String?

    @Option(help: "The Sieve script, run before the rules (default: deliver.sieve in the notmuch config).")
    var sieve: String?

    @Flag(help: "Apply no rules and no Sieve script.")
    var noRules = false
}

/// The options a delivery and `explain` share.
struct DeliveryArguments: ParsableArguments {
    @OptionGroup var filing: FilingArguments

    @Option(help: "The envelope recipient (default: $RECIPIENT, then Delivered-To).")
    var recipient: String?

    @Option(help: ArgumentHelp("A virtual mailbox per recipient, e.g. /srv/vmail/%d/%u (%d domain, %u user); "
                               + "created with its database on first delivery; no notmuch config needed.",
                               valueName: "template"))
    var mailRoot: String?

    @Option(help: "The envelope sender (default: $SENDER, then Return-Path).")
    var sender: String?

    @Option(help: "How to index encrypted parts: false, true, auto or nostash.")
    var decrypt: DecryptPolicy?

    @Option(help: ArgumentHelp("Seconds to wait for the database's write lock before queueing the message "
                               + "(default: deliver.lock_timeout, else 5).", valueName: "seconds"))
    var lockTimeout: Double?

    @Argument(parsing: .allUnrecognized, help: "Tag operations: +TAG adds, -TAG removes, in order.")
    var tagOperations: [String] = []

    /// These options as plain values, to which `Deliver` adds its own.
    var request: DeliveryRequest {
        DeliveryRequest(filing: filing.values, recipient: recipient, mailRoot: mailRoot, sender: sender,
                        decrypt: decrypt, lockTimeout: lockTimeout, tagOperations: tagOperations)
    }
}

/// A virtual mailbox looked at (its rules, its quota) the way a delivery
/// with this mail root finds it for this recipient.
struct VirtualMailboxArguments: ParsableArguments {
    @Option(help: ArgumentHelp("With --recipient: a virtual mailbox, as a delivery with this --mail-root finds it.",
                               valueName: "template"))
    var mailRoot: String?

    @Option(help: "With --mail-root: the address whose mailbox it is.")
    var recipient: String?
}

/// A mailbox's quota: what a delivery and the LMTP server take alike.
struct QuotaArguments: ParsableArguments {
    @Option(help: ArgumentHelp("The mailbox's quota, e.g. 2G, 500M,100000C or 1000C (default: deliver.quota, "
                               + "else the first line of the mailbox's maildirsize).", valueName: "limit"))
    var quota: String?

    @Option(help: ArgumentHelp("Warn the mailbox's owner when its usage crosses these percentages, e.g. 80,95 "
                               + "(default: deliver.quota_warn).", valueName: "percentages"))
    var quotaWarn: String?

    @Flag(help: ArgumentHelp("Refuse a message over the quota permanently (a bounce: exit 77, or 552 5.2.2 "
                             + "over LMTP) instead of deferring it (75, or 452 4.2.2)."))
    var quotaPermanent = false
}

/// Where the log goes: a delivery's and the LMTP server's.
struct LogArguments: ParsableArguments {
    @Flag(name: [.short, .long], help: "Also log to standard error.")
    var verbose = false

    @Option(help: ArgumentHelp("Log to this file instead of syslog.", valueName: "file"))
    var log: String?
}
