// swift-tools-version: 6.0
// libFuzzer targets for notmuch-deliver's own parsers. A package of its own,
// so that the main package carries no unsafe flags; built and run by run.sh:
//
//     swift build --package-path Tests/Fuzz --scratch-path .build-fuzz -c release \
//         --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address
//
// The -Xswiftc flag instruments every module of the build, the parsers
// included; the settings below alone would instrument only the harnesses.
// Each target defines LLVMFuzzerTestOneInput and no main: libFuzzer's main
// runs it.
import PackageDescription

let fuzzing: [SwiftSetting] = [.unsafeFlags(["-sanitize=fuzzer,address", "-parse-as-library"])]
let linking: [LinkerSetting] = [.unsafeFlags(["-sanitize=fuzzer,address"])]

func fuzzTarget(_ name: String, _ products: [String], support: [Target.Dependency] = []) -> Target {
    .executableTarget(name: name,
                      dependencies: products.map { .product(name: $0, package: "notmuch-deliver") } + support,
                      swiftSettings: fuzzing, linkerSettings: linking)
}

let package = Package(
    name: "notmuch-deliver-fuzz",
    dependencies: [.package(name: "notmuch-deliver", path: "../..")],
    targets: [
        // What more than one harness needs: a scratch file for code that reads a path.
        .target(name: "FuzzSupport", swiftSettings: fuzzing),
        // One fixed message for the harnesses that evaluate rules or run scripts.
        .target(name: "FuzzFacts", dependencies: [.product(name: "Rules", package: "notmuch-deliver")],
                swiftSettings: fuzzing),
        // The rules language: RuleParser, then evaluation against fixed facts.
        fuzzTarget("FuzzRules", ["Rules"], support: ["FuzzFacts"]),
        // Sieve scripts: parsing, checking, running against fixed facts.
        fuzzTarget("FuzzSieve", ["Sieve", "Rules"], support: ["FuzzFacts"]),
        // The From_ line stripper of a delivery, fed in random chunks.
        fuzzTarget("FuzzEnvelope", ["MaildirKit"]),
        // mbox splitting in every format, from memory; compressed input through a file.
        fuzzTarget("FuzzMbox", ["Mbox"], support: ["FuzzSupport"]),
        // Header reading through GMime, from memory and from a file.
        fuzzTarget("FuzzHeaders", ["MailParsing"], support: ["FuzzSupport"]),
        // Queue records: refused or read back the same; cut short, refused.
        fuzzTarget("FuzzRecord", ["DeliveryKit"]),
        // The LMTP engine, fed in random chunks, the server's answers seeded.
        fuzzTarget("FuzzLMTP", ["LMTP"]),
    ]
)
