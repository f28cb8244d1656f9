/// The one place the version is written: `--version` prints it, and
/// `make deb` names the package after what the built binary prints.
let notmuchDeliverVersion = "0.3.0"
