import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

struct Deliver: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Deliver the message on standard input (the default).")

    @OptionGroup var delivery: DeliveryArguments

    @Flag(help: "Keep the delivered file even if indexing fails.")
    var keep = false

    @Flag(name: [.customLong("no-hooks"), .customShort("n")], help: "Do not run the post-insert hook.")
    var noHooks = false

    @Flag(help: "Make the file readable by everyone (0644, less the umask) instead of 0600.")
    var worldReadable = false

    @Flag(name: [.short, .long], help: "Also log to standard error.")
    var verbose = false

    @Option(help: ArgumentHelp("Log to this file instead of syslog.", valueName: "file"))
    var log: String?

    @Option(help: ArgumentHelp("The mailbox's quota, e.g. 2G, 500M,100000C or 1000C (default: deliver.quota, "
                               + "else the first line of the mailbox's maildirsize).", valueName: "limit"))
    var quota: String?

    @Option(help: ArgumentHelp("Warn the mailbox's owner when its usage crosses these percentages, e.g. 80,95 "
                               + "(default: deliver.quota_warn).", valueName: "percentages"))
    var quotaWarn: String?

    @Flag(help: "Refuse a message over the quota permanently (exit 77, a bounce) instead of deferring it (75).")
    var quotaPermanent = false

    var request: DeliveryRequest {
        var request = delivery.request
        request.keep = keep
        request.noHooks = noHooks
        request.worldReadable = worldReadable
        request.verbose = verbose
        request.log = log
        request.quota = quota
        request.quotaWarn = quotaWarn
        request.quotaPermanent = quotaPermanent
        return request
    }

    func run() throws {
        _exit(request.deliver())
    }
}
