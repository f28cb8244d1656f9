/// The commands the engine knows, HELO and EHLO included so that they can
/// be told apart from the unknown.
enum Verb: CaseIterable {
    case lhlo, mail, rcpt, data, rset, noop, quit, vrfy, help, helo, ehlo

    var name: String {
        switch self {
        case .lhlo: "LHLO"
        case .mail: "MAIL"
        case .rcpt: "RCPT"
        case .data: "DATA"
        case .rset: "RSET"
        case .noop: "NOOP"
        case .quit: "QUIT"
        case .vrfy: "VRFY"
        case .help: "HELP"
        case .helo: "HELO"
        case .ehlo: "EHLO"
        }
    }

    /// Allowed before LHLO (RFC 5321 4.1.4 lets NOOP, RSET and QUIT come anywhere).
    var allowedBeforeGreeting: Bool { [.lhlo, .noop, .rset, .quit].contains(self) }

    init?(_ word: ArraySlice<UInt8>) {
        guard let verb = Verb.allCases.first(where: { ASCII.matches(word, $0.name) }) else { return nil }
        self = verb
    }
}

/// A command line cut into its verb and argument. (Not `CommandLine`: the
/// standard library has one.)
struct CommandText {
    enum Problem: Error, Equatable {
        /// A control character (other than tab) or DEL: 500 5.5.2.
        case controlCharacter
        /// Nothing but spaces.
        case empty
    }

    /// The first word, as sent.
    var word: ArraySlice<UInt8>
    /// After the word and the spaces following it; trailing spaces dropped.
    var argument: ArraySlice<UInt8>

    init(_ line: [UInt8]) throws(Problem) {
        guard !line.contains(where: ASCII.isControl) else { throw .controlCharacter }
        var text = line[...]
        while let last = text.last, last == ASCII.space || last == ASCII.tab { text.removeLast() }
        while text.first == ASCII.space { text.removeFirst() }
        guard !text.isEmpty else { throw .empty }
        let space = text.firstIndex(of: ASCII.space) ?? text.endIndex
        word = text[text.startIndex..<space]
        argument = text[space...]
        while argument.first == ASCII.space { argument.removeFirst() }
    }

    /// The argument after `keyword:` (FROM:, TO:), spaces after the colon
    /// skipped; nil when it does not start so.
    func argument(after keyword: String) -> ArraySlice<UInt8>? {
        let length = keyword.utf8.count
        guard argument.count > length, ASCII.matches(argument.prefix(length), keyword),
              argument.dropFirst(length).first == ASCII.colon else { return nil }
        var rest = argument.dropFirst(length + 1)
        while rest.first == ASCII.space { rest.removeFirst() }
        return rest
    }
}
