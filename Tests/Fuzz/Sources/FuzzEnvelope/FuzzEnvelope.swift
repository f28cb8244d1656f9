import MaildirKit

/// EnvelopeStripper against its specification, whatever the chunking: a
/// leading `From ` line (through its newline) goes, every other byte stays.
/// The first input byte seeds the chunk sizes; the rest is the stream.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEnvelope(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let stream = input.dropFirst()
    let expected = expectedOutput(Array(stream))

    var seed = UInt32(input[0]) &* 2_654_435_761 | 1
    for maximumChunk in [stream.count, 1, Int(input[0] % 16) + 1] {
        var stripper = EnvelopeStripper()
        var output: [UInt8] = []
        var rest = stream[...]
        while !rest.isEmpty {
            seed = seed &* 1_664_525 &+ 1_013_904_223
            let count = maximumChunk <= 1 ? 1 : Int(seed >> 16) % maximumChunk + 1
            output += stripper.feed(rest.prefix(count))
            rest = rest.dropFirst(count)
        }
        output += stripper.finish()
        if output != expected {
            fatalError("EnvelopeStripper: chunks of at most \(maximumChunk) bytes gave \(output.count) bytes, expected \(expected.count)")
        }
    }
    return 0
}

private func expectedOutput(_ stream: [UInt8]) -> [UInt8] {
    guard stream.starts(with: Array("From ".utf8)) else { return stream }
    guard let newline = stream.firstIndex(of: UInt8(ascii: "\n")) else { return [] }
    return Array(stream[(newline + 1)...])
}
