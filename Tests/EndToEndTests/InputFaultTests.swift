import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What the input itself can do to a delivery: fail half-way through, or be
/// very large. The executable runs as a child of posix_spawn, reaped with
/// wait4, so that its stdin can be any descriptor (a TCP socket) and its own
/// peak memory is known.
@Suite("Input faults")
struct InputFaultTests {
    @Test("a read error mid-message gives 75 and leaves nothing")
    func readErrorMidMessage() throws {
        let fixture = try MailFixture()
        #expect(try fixture.deliver(sampleMessage(id: "before@example.org")).status == 0)
        let filesBefore = fixture.files()
        let countBefore = try fixture.count()

        // stdin is one end of a loopback TCP connection; this test holds the other.
        let (peer, accepted) = try TCPConnection.open()
        var peerOpen = true
        defer { if peerOpen { close(peer) }; close(accepted) }
        let output = try ChildOutput()
        let child = try ChildProcess(MailFixture.deliverExecutable.path, [], environment: fixture.environment,
                                     stdin: accepted, output: output)

        let body = (1...300).map { "line \($0) of a message that never ends\n" }.joined()
        let part = Array(sampleMessage(id: "cut-short@example.org", subject: "cut short", body: body).utf8)
        try writeAll(peer, part[...])

        // Mid-message: the deliverer has read all of it into its file in tmp/.
        let tmp = fixture.mailRoot.appendingPathComponent("tmp")
        let wroteIt = waitFor(seconds: 20) {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? []
            guard names.count == 1 else { return false }
            let size = (try? FileManager.default.attributesOfItem(atPath: tmp.appendingPathComponent(names[0]).path))?[.size]
            return (size as? Int) == part.count
        }
        #expect(wroteIt, "the deliverer never wrote the \(part.count) bytes sent to tmp/")
        usleep(200_000)

        // A reset, not an orderly close: the next read() fails with ECONNRESET.
        var reset = linger(l_onoff: 1, l_linger: 0)
        #expect(setsockopt(peer, SOL_SOCKET, SO_LINGER, &reset, socklen_t(MemoryLayout<linger>.size)) == 0)
        close(peer)
        peerOpen = false

        let exit = child.wait()
        let stderr = output.stderr()
        #expect(exit.status == 75, "status \(exit.status): \(stderr)")
        #expect(stderr.hasPrefix("notmuch-deliver: "), "\(stderr)")
        #expect(stderr.contains("Connection reset by peer"), "\(stderr)")
        #expect(fixture.files() == filesBefore)
        for sub in ["tmp", "new", "cur"] {
            let names = try FileManager.default.contentsOfDirectory(atPath: fixture.mailRoot.appendingPathComponent(sub).path)
            let expected = filesBefore.filter { $0.hasPrefix(sub + "/") }.map { String($0.dropFirst(sub.count + 1)) }
            #expect(names.sorted() == expected.sorted(), "\(sub)/ holds \(names)")
        }
        #expect(try fixture.count() == countBefore)
        #expect(try fixture.count("id:cut-short@example.org") == 0)
        try fixture.expectNothingNew()
    }

    @Test("a 100 MB message is delivered with bounded memory")
    func hundredMegabyteMessage() throws {
        let fixture = try MailFixture()
        // The same executable on a small message: what a delivery costs
        // anyway (Swift runtime, libnotmuch, Xapian, GMime).
        let small = try Self.deliverMeasured(fixture, Array(sampleMessage(id: "small@example.org").utf8))
        #expect(small.status == 0, "\(small.stderr)")

        let subject = "hundred megabytes \(UUID().uuidString.prefix(8))"
        var message = LargeMessage(subject: subject, messageID: "large@example.org", approximateSize: 100 << 20)
        let deliverInput = try PipeEnds()
        let hashInput = try PipeEnds()
        let output = try ChildOutput(), hashOutput = try ChildOutput()
        let started = Date()
        let child = try ChildProcess.measured(MailFixture.deliverExecutable.path, [], environment: fixture.environment,
                                              stdin: deliverInput.read, output: output)
        let hasher = try ChildProcess("/usr/bin/sha256sum", [], environment: [:], stdin: hashInput.read, output: hashOutput)
        deliverInput.closeRead()
        hashInput.closeRead()
        // Generated and written a chunk at a time, to the deliverer and to
        // sha256sum: the whole message is never in this process either.
        var sent = 0
        var deliverFailed = false
        while let chunk = message.nextChunk() {
            if !deliverFailed {
                do { try writeAll(deliverInput.write, chunk[...]) } catch { deliverFailed = true }
            }
            try writeAll(hashInput.write, chunk[...])
            sent += chunk.count
        }
        deliverInput.closeWrite()
        hashInput.closeWrite()
        let exit = child.wait()
        let elapsed = Date().timeIntervalSince(started)
        #expect(hasher.wait().status == 0)
        let expectedHash = hashOutput.stdout().prefix(64)

        #expect(exit.status == 0, "status \(exit.status): \(output.stderr())")
        #expect(!deliverFailed)
        // The small message and this one, both in new/; nothing left in tmp/.
        let files = fixture.files()
        #expect(files.count == 2 && files.allSatisfy { $0.hasPrefix("new/") }, "\(files)")
        let paths = try fixture.notmuch("search", "--output=files", "subject:\"\(subject)\"").split(separator: "\n")
        #expect(paths.count == 1)
        if let path = paths.first {
            let size = try FileManager.default.attributesOfItem(atPath: String(path))[.size] as? Int
            #expect(size == sent)
            #expect(try Self.sha256(ofFile: String(path)) == expectedHash, "stored bytes differ from the sent ones")
            #expect(path.hasPrefix(fixture.mailRoot.appendingPathComponent("new").path))
        }
        #expect(try fixture.count("id:large@example.org") == 1)
        try fixture.expectNothingNew()

        let mib = 1 << 20
        print("100 MB message: \(sent) bytes in \(String(format: "%.1f", elapsed)) s (deliverer CPU "
              + "\(String(format: "%.1f", exit.cpuSeconds)) s); peak RSS \(exit.peakRSS / 1024) KiB, "
              + "small message \(small.peakRSS / 1024) KiB")
        // The deliverer copies 64 KiB at a time, and libnotmuch does not
        // index an octet-stream attachment's content: measured (debug
        // build), the peak is the small message's (about 23 MiB) plus about
        // 1 MiB. A tenth of the message is well above that, and far below
        // any copy of it. (A 100 MB text/plain body is another matter:
        // libnotmuch holds the decoded text to index it, about 2.2 bytes
        // per byte, in `notmuch insert` just the same.)
        #expect(exit.peakRSS < small.peakRSS + 10 * mib, "peak RSS \(exit.peakRSS / 1024) KiB")
        #expect(exit.peakRSS < 64 * mib, "peak RSS \(exit.peakRSS / 1024) KiB")
    }

    /// Delivers `bytes` through a pipe, reaped with wait4.
    private static func deliverMeasured(_ fixture: MailFixture, _ bytes: [UInt8]) throws -> (status: Int32, peakRSS: Int, stderr: String) {
        let input = try PipeEnds()
        let output = try ChildOutput()
        let child = try ChildProcess.measured(MailFixture.deliverExecutable.path, [], environment: fixture.environment,
                                              stdin: input.read, output: output)
        input.closeRead()
        try? writeAll(input.write, bytes[...])
        input.closeWrite()
        let exit = child.wait()
        return (exit.status, exit.peakRSS, output.stderr())
    }

    /// sha256sum of a file, as hex.
    private static func sha256(ofFile path: String) throws -> Substring {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXError(.ENOENT) }
        defer { close(fd) }
        let output = try ChildOutput()
        let child = try ChildProcess("/usr/bin/sha256sum", [], environment: [:], stdin: fd, output: output)
        #expect(child.wait().status == 0)
        return output.stdout().prefix(64)
    }
}

// MARK: - Helpers

/// Polls `condition` every 10 ms until it holds or the time is up.
private func waitFor(seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// Marks `fd` close-on-exec (accept4, pipe2 and mkostemp are _GNU_SOURCE
/// only, out of Swift's sight) and returns it.
private func setCloseOnExec(_ fd: Int32) -> Int32 {
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    return fd
}

/// Writes every byte, retrying short writes and EINTR; throws on EPIPE and
/// other errors (SIGPIPE is ignored).
private func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) throws {
    signal(SIGPIPE, SIG_IGN)
    var rest = bytes
    while !rest.isEmpty {
        let count = rest.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        rest = rest.dropFirst(count)
    }
}

/// Both ends of a pipe, close-on-exec so that no other child inherits them.
private final class PipeEnds {
    private(set) var read: Int32 = -1
    private(set) var write: Int32 = -1

    init() throws {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        read = setCloseOnExec(ends[0])
        write = setCloseOnExec(ends[1])
    }

    func closeRead() { if read >= 0 { close(read); read = -1 } }
    func closeWrite() { if write >= 0 { close(write); write = -1 } }
    deinit { closeRead(); closeWrite() }
}

/// A connected pair of TCP sockets on 127.0.0.1: (the peer's end, the accepted end).
private enum TCPConnection {
    static func open() throws -> (peer: Int32, accepted: Int32) {
        func check(_ result: Int32) throws {
            if result < 0 { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        }
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try check(listener)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                try check(bind(listener, generic, length))
                try check(listen(listener, 1))
                try check(getsockname(listener, generic, &length))
            }
        }
        let peer = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try check(peer)
        do {
            try withUnsafePointer(to: &address) { pointer in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { try check(connect(peer, $0, length)) }
            }
            let accepted = accept(listener, nil, nil)
            try check(accepted)
            return (peer, setCloseOnExec(accepted))
        } catch {
            close(peer)
            throw error
        }
    }
}

/// A child's stdout and stderr, in unlinked temporary files (a pipe could
/// fill while the test is busy writing the child's input).
private final class ChildOutput {
    let stdoutFD: Int32
    let stderrFD: Int32

    init() throws {
        stdoutFD = try Self.anonymousFile()
        stderrFD = try Self.anonymousFile()
    }

    deinit { close(stdoutFD); close(stderrFD) }

    func stdout() -> String { Self.contents(stdoutFD) }
    func stderr() -> String { Self.contents(stderrFD) }

    private static func anonymousFile() throws -> Int32 {
        var template = Array((NSTemporaryDirectory() + "/nd-output-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        return setCloseOnExec(fd)
    }

    private static func contents(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += buffer[..<count]
            offset += off_t(count)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A child started with posix_spawn and reaped with wait4: its exit status
/// and its own peak resident set size and CPU time.
private struct ChildProcess {
    struct Exit {
        /// The exit status, or 128 + the signal that killed it.
        let status: Int32
        let peakRSS: Int
        let cpuSeconds: Double
    }

    let pid: pid_t
    /// Where the measuring parent writes the child's ru_maxrss (see `measured`).
    private var rssFile: String?

    /// Linux starts a program's ru_maxrss at the high-water mark of the
    /// process image it replaced, so a child spawned straight from this
    /// test runner (large, and larger when suites run in parallel) would
    /// report the runner's size. A small python3 parent spawns it instead
    /// and writes the child's own ru_maxrss (KiB) to a file.
    static func measured(_ executable: String, _ arguments: [String], environment: [String: String],
                         stdin: Int32, output: ChildOutput) throws -> ChildProcess {
        let rssFile = NSTemporaryDirectory() + "nd-rss-\(UUID().uuidString)"
        let parent = """
            import os, sys
            pid = os.fork()
            if pid == 0:
                os.execv(sys.argv[2], sys.argv[2:])
            _, status, usage = os.wait4(pid, 0)
            with open(sys.argv[1], "w") as f:
                f.write(str(usage.ru_maxrss))
            sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
            """
        var child = try ChildProcess("/usr/bin/env", ["python3", "-c", parent, rssFile, executable] + arguments,
                                     environment: environment, stdin: stdin, output: output)
        child.rssFile = rssFile
        return child
    }

    /// glibc's posix_spawn_file_actions_addclosefrom_np (2.34), which Swift
    /// does not see: it is declared only under _GNU_SOURCE.
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    init(_ executable: String, _ arguments: [String], environment: [String: String],
         stdin: Int32, output: ChildOutput) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, output.stdoutFD, 1)
        posix_spawn_file_actions_adddup2(&actions, output.stderrFD, 2)
        // Nothing else: the descriptors of tests running alongside stay theirs.
        if let closeFrom = Self.addCloseFrom { _ = closeFrom(&actions, 3) }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        let result = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard result == 0 else { throw POSIXError(POSIXErrorCode(rawValue: result) ?? .EIO) }
        self.pid = pid
    }

    func wait() -> Exit {
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            if errno != EINTR { return Exit(status: -1, peakRSS: 0, cpuSeconds: 0) }
        }
        let signal = status & 0x7f
        let code = signal == 0 ? (status >> 8) & 0xff : 128 + signal
        let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        // ru_maxrss is in KiB on Linux.
        var peak = usage.ru_maxrss * 1024
        if let rssFile {
            peak = ((try? String(contentsOfFile: rssFile, encoding: .utf8)).flatMap { Int($0) } ?? -1) * 1024
            try? FileManager.default.removeItem(atPath: rssFile)
        }
        return Exit(status: code, peakRSS: peak, cpuSeconds: cpu)
    }
}

/// A MIME message of about `approximateSize` bytes, made a chunk (about
/// 1 MiB) at a time: headers, a short text part, and an
/// application/octet-stream attachment in base64 lines of 76 characters
/// (pseudo-random, so every line differs).
private struct LargeMessage {
    private var head: [UInt8]?
    private var tail: [UInt8]?
    private var linesLeft: Int
    private var random: UInt64 = 0x9E37_79B9_7F4A_7C15
    private static let lineLength = 77
    private static let linesPerChunk = 13_600
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    init(subject: String, messageID: String, approximateSize: Int) {
        let boundary = "=-large-message-boundary-="
        head = Array("""
            From: Alice <alice@example.org>
            To: Bob <bob@example.org>
            Subject: \(subject)
            Date: Mon, 24 Nov 2025 09:00:00 +0000
            Message-ID: <\(messageID)>
            MIME-Version: 1.0
            Content-Type: multipart/mixed; boundary="\(boundary)"

            --\(boundary)
            Content-Type: text/plain; charset=utf-8

            The disk image, as promised.

            --\(boundary)
            Content-Type: application/octet-stream; name="disk.img"
            Content-Disposition: attachment; filename="disk.img"
            Content-Transfer-Encoding: base64


            """.utf8)
        tail = Array("\n--\(boundary)--\n".utf8)
        linesLeft = approximateSize / Self.lineLength
    }

    mutating func nextChunk() -> [UInt8]? {
        if let head {
            self.head = nil
            return head
        }
        guard linesLeft > 0 else {
            defer { tail = nil }
            return tail
        }
        let lines = min(linesLeft, Self.linesPerChunk)
        linesLeft -= lines
        var chunk = [UInt8](repeating: UInt8(ascii: "\n"), count: lines * Self.lineLength)
        var state = random
        Self.alphabet.withUnsafeBufferPointer { alphabet in
            chunk.withUnsafeMutableBufferPointer { out in
                var index = 0
                for _ in 0..<lines {
                    var column = 0
                    while column < Self.lineLength - 1 {
                        // xorshift64: ten base64 digits from each step.
                        state ^= state << 13
                        state ^= state >> 7
                        state ^= state << 17
                        var bits = state
                        var digits = 0
                        while digits < 10 && column < Self.lineLength - 1 {
                            out[index + column] = alphabet[Int(bits & 63)]
                            bits >>= 6
                            digits += 1
                            column += 1
                        }
                    }
                    index += Self.lineLength
                }
            }
        }
        random = state
        return chunk
    }
}
