import MaildirKit

/// Where the server listens: `unix:PATH`, `HOST:PORT` or `[V6HOST]:PORT`;
/// or sockets systemd opened for it.
public enum ListenAddress: Sendable, Equatable, CustomStringConvertible {
    case unix(String)
    case tcp(host: String, port: Int)

    public init?(parsing text: String) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty, !path.contains("\0") else { return nil }
            self = .unix(path)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self = .tcp(host: host, port: port)
    }

    public var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

/// systemd socket activation (sd_listen_fds(3)): the sockets are the
/// descriptors from 3 on, when LISTEN_PID names this process.
enum SocketActivation {
    static let firstDescriptor: Int32 = 3

    static func descriptors() -> [Int32] {
        guard let pid = ProcessEnvironment.value(of: "LISTEN_PID"), Int32(pid) == ProcessEnvironment.processID,
              let countText = ProcessEnvironment.value(of: "LISTEN_FDS"), let count = Int32(countText),
              count > 0, count < 1024 else { return [] }
        // Not passed on to anything the server starts (a hook).
        ProcessEnvironment.remove("LISTEN_PID")
        ProcessEnvironment.remove("LISTEN_FDS")
        ProcessEnvironment.remove("LISTEN_FDNAMES")
        return (0..<count).map { firstDescriptor + $0 }
    }
}
