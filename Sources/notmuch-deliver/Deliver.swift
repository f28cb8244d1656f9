import ArgumentParser
import MaildirKit

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

    @OptionGroup var logging: LogArguments

    @OptionGroup var quotas: QuotaArguments

    var request: DeliveryRequest {
        var request = delivery.request
        request.keep = keep
        request.noHooks = noHooks
        request.worldReadable = worldReadable
        request.verbose = logging.verbose
        request.log = logging.log
        request.quota = quotas.quota
        request.quotaWarn = quotas.quotaWarn
        request.quotaPermanent = quotas.quotaPermanent
        return request
    }

    func run() throws {
        ProcessEnvironment.exitImmediately(request.deliver())
    }
}
