// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "notmuch-deliver",
    // Linux only (glibc, OFD locks, /proc): no platforms line, which would
    // name an Apple platform the code does not build on.
    products: [
        .executable(name: "notmuch-deliver", targets: ["notmuch-deliver"]),
        .library(name: "Notmuch", targets: ["Notmuch"]),
        .library(name: "DeliveryKit", targets: ["DeliveryKit"]),
        .library(name: "MaildirKit", targets: ["MaildirKit"]),
        .library(name: "Rules", targets: ["Rules"]),
        .library(name: "Sieve", targets: ["Sieve"]),
        .library(name: "Mbox", targets: ["Mbox"]),
        .library(name: "MailParsing", targets: ["MailParsing"]),
        .library(name: "LMTP", targets: ["LMTP"]),
        .library(name: "Watch", targets: ["Watch"]),
        .library(name: "Threads", targets: ["Threads"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.65.0"),
    ],
    targets: [
        // C glue only: module maps and shims for what Swift cannot import.
        .systemLibrary(name: "CNotmuch", path: "Modules/CNotmuch"),
        .systemLibrary(name: "CGMime", path: "Modules/CGMime", pkgConfig: "gmime-3.0",
                       providers: [.apt(["libgmime-3.0-dev"])]),
        .systemLibrary(name: "CGLib", path: "Modules/CGLib", pkgConfig: "glib-2.0",
                       providers: [.apt(["libglib2.0-dev"])]),
        .systemLibrary(name: "CPosix", path: "Modules/CPosix"),
        .systemLibrary(name: "CCompression", path: "Modules/CCompression",
                       providers: [.apt(["zlib1g-dev", "liblzma-dev", "libbz2-dev"])]),

        // Threads and time: the monotonic clock, a pause, a thread started
        // and waited for with a deadline, a condition variable, a handoff.
        // What the standard library's Synchronization (Mutex, Atomic) cannot
        // do, hand-made once on pthreads.
        .target(name: "Threads"),

        // A safe Swift face for libnotmuch; no C type leaves it.
        .target(name: "Notmuch", dependencies: ["CNotmuch"]),

        // Reading mail: headers through GMime.
        .target(name: "MailParsing", dependencies: [
            "CGMime", "MaildirKit", .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // mbox archives: splitting, unescaping, compressed input (a stream
        // copied to MaildirKit's spool file to be checked whole).
        .target(name: "Mbox", dependencies: [
            "MailParsing", "MaildirKit", "CCompression", .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // The rules language: parsing and evaluation, independent of notmuch.
        // Folder names pass MaildirKit's one gate (MailFolder) when a rule is read.
        .target(name: "Rules", dependencies: ["CGLib", "MaildirKit"]),

        // Sieve scripts (RFC 5228 and extensions): parsing, checking and
        // running them over the rules' message facts, independent of
        // notmuch; the outcome becomes the rules' effects.
        .target(name: "Sieve", dependencies: ["Rules", "MaildirKit"]),

        // Maildirs and the file system, knowing nothing of notmuch: writing
        // and naming messages, folders contained in the mail root (their
        // refusals as its own FolderError), the From_ line, content
        // checksums, exit statuses. With Threads and Notmuch's lock probe,
        // the syscall layer: every libc call swift-system lacks (files,
        // processes, signals, inotify, syslog) behind a named wrapper; no
        // other target imports Glibc or CPosix.
        .target(name: "MaildirKit", dependencies: [
            "CGLib", "CPosix", .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // The delivery pipeline: settings, rules on messages, the queue,
        // indexing through libnotmuch, import, delivery errors; what every
        // front door uses.
        .target(name: "DeliveryKit", dependencies: [
            "MaildirKit", "Notmuch", "Rules", "Sieve", "MailParsing", "Mbox", "Threads", "CGLib",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // LMTP (RFC 2033), the server side, as a pure engine: bytes in,
        // replies and delivery requests out. No I/O and no other target, so
        // that the network server and the tests drive it the same way.
        .target(name: "LMTP"),

        // The LMTP server: SwiftNIO sockets around the engine, deliveries
        // through DeliveryKit's group commits. The only target that knows NIO.
        .target(name: "LMTPServer", dependencies: [
            "LMTP", "DeliveryKit", "MaildirKit", "Threads",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),

        // The maildir watcher: a scan of the tree as `notmuch new` makes it,
        // inotify events in bursts, each burst one transaction through
        // DeliveryKit (new.tags, flags, rules, the queue).
        .target(name: "Watch", dependencies: [
            "DeliveryKit", "Notmuch", "MaildirKit", "Threads",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "SystemPackage", package: "swift-system"),
        ]),

        .executableTarget(name: "notmuch-deliver", dependencies: [
            "DeliveryKit", "MaildirKit", "Notmuch", "Rules", "Sieve", "Mbox", "LMTPServer", "Watch", "Threads",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // What more than one test target needs: a seeded random generator,
        // message facts from a table, the notmuch CLI's answers, a dead pid.
        .target(name: "TestSupport", dependencies: ["Rules"], path: "Tests/TestSupport"),

        .testTarget(name: "NotmuchTests", dependencies: ["Notmuch"]),
        .testTarget(name: "ThreadsTests", dependencies: ["Threads"]),
        .testTarget(name: "DeliveryKitTests", dependencies: [
            "DeliveryKit", "MaildirKit", "MailParsing", "Notmuch", "TestSupport", "Threads",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        .testTarget(name: "RulesTests", dependencies: ["Rules", "TestSupport"]),
        .testTarget(name: "SieveTests", dependencies: ["Sieve", "Rules", "TestSupport"]),
        .testTarget(name: "MboxTests", dependencies: ["Mbox"]),
        .testTarget(name: "LMTPTests", dependencies: ["LMTP", "TestSupport"]),
        // The server's channel handlers on NIO's EmbeddedChannel.
        .testTarget(name: "LMTPServerTests", dependencies: [
            "LMTPServer", "LMTP", "DeliveryKit", "TestSupport", "Threads",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .testTarget(name: "WatchTests", dependencies: ["Watch", "Notmuch", "DeliveryKit", "MaildirKit", "TestSupport"]),
        // The executable's quick command-line reader against ArgumentParser.
        .testTarget(name: "CommandLineTests", dependencies: [
            "notmuch-deliver", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Runs the built executable against real maildirs and the real notmuch CLI.
        .testTarget(name: "EndToEndTests", dependencies: ["notmuch-deliver", "TestSupport"]),
    ]
)
