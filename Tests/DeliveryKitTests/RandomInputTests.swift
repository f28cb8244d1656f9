import DeliveryKit
import MailParsing
import Testing
import MaildirKit

@Suite struct RandomMessageInputTests {
    @Test func envelopeStripperMatchesAReferenceOnRandomStreams() {
        var state: UInt64 = 99
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        let alphabet = Array("From \n\r:xF>".utf8)
        for _ in 0..<5000 {
            let input = (0..<Int(next() % 30)).map { _ in alphabet[Int(next()) % alphabet.count] }
            // Reference: drop the first line only if the input starts with "From ".
            var expected = input
            if input.starts(with: Array("From ".utf8)) {
                if let newline = input.firstIndex(of: 10) { expected = Array(input[(newline + 1)...]) } else { expected = [] }
            }
            var stripper = EnvelopeStripper()
            var output: [UInt8] = []
            var rest = input[...]
            while !rest.isEmpty {
                let size = 1 + Int(next() % 4)
                output += stripper.feed(rest.prefix(size))
                rest = rest.dropFirst(size)
            }
            output += stripper.finish()
            #expect(output == expected, "\(input)")
        }
    }

    @Test func headerParsingSurvivesGarbage() {
        var state: UInt64 = 5
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        for _ in 0..<500 {
            let bytes = (0..<Int(next() % 400)).map { _ in UInt8(truncatingIfNeeded: next()) }
            _ = MessageHeaders.parse(headerBlock: bytes)
        }
        let hostile = Array(("Subject: " + String(repeating: "=?utf-8?q?x?= ", count: 5000) + "\n").utf8)
        #expect(MessageHeaders.parse(headerBlock: hostile).values("subject").count == 1)
        let nul = Array("X-A: a\u{0}b\nX-B: c\n".utf8)
        #expect(MessageHeaders.parse(headerBlock: nul).values("x-b") == ["c"])
    }
}
