/// Decodes a compressed archive once, keeping nothing, before anything from
/// it is stored. gzip's CRC and length, xz's and bzip2's block checksums are
/// checked only as each member or block ends, so a damaged archive decodes
/// into garbage for a while before the decoder notices; hundreds of garbled
/// messages were stored that way. Decoding is cheap next to indexing.
public enum ArchiveCheck {
    public enum Verdict: Sendable, Equatable {
        /// Not compressed: there is no checksum to check.
        case plain
        case intact
        /// Stops short of its end: what decodes before the cut is kept,
        /// as no checksum can say more of it.
        case truncated(String)
        /// Refused by the decoder: nothing from it may be stored.
        case corrupt(String)
        case unreadable(String)
    }

    public static func verify(_ path: String, name: String? = nil) -> Verdict {
        let source: ByteSource
        do { source = try Archive.open(path, name: name) } catch { return .unreadable("\(error)") }
        guard !(source is PlainSource) else { return .plain }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        do {
            while try buffer.withUnsafeMutableBytes({ try source.read(into: $0) }) > 0 {}
            return .intact
        } catch let error as ArchiveError {
            switch error.kind {
            case .truncated: return .truncated(error.description)
            case .corrupt: return .corrupt(error.description)
            case .unreadable: return .unreadable(error.description)
            }
        } catch {
            return .unreadable("\(error)")
        }
    }
}
