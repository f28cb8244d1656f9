#if canImport(Glibc)
import Glibc
#endif

/// Linux's inotify, the raw calls: one watch per directory (it is not
/// recursive), events read without blocking. The only file that knows it.
final class Inotify {
    struct Event {
        let watch: Int32
        let mask: UInt32
        let cookie: UInt32
        /// The entry's name within the watched directory; "" for the directory itself.
        let name: String

        func has(_ flag: Int32) -> Bool { mask & UInt32(bitPattern: flag) != 0 }
        func has(_ flag: UInt32) -> Bool { mask & flag != 0 }
        var isDirectory: Bool { has(IN_ISDIR) }
    }

    enum Added {
        case watching(Int32)
        /// `max_user_watches` is used up (ENOSPC).
        case noWatchesLeft
        /// Gone meanwhile, or not a directory, or not readable.
        case failed(Int32)
    }

    let descriptor: Int32

    /// What a maildir watcher needs to hear of: entries appearing (by
    /// create, link or rename), going (unlink, rename away), files opened,
    /// written and closed, and the directory itself going. (The open tells
    /// a file created by a writer, which closes it later, from one made by
    /// link(), which nobody closes.)
    private static let mask = UInt32(IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_MODIFY
                                     | IN_OPEN | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF)
        | UInt32(IN_ONLYDIR)

    init?() {
        descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if descriptor < 0 { return nil }
    }

    deinit { close(descriptor) }

    func watch(_ directory: String) -> Added {
        let watch = inotify_add_watch(descriptor, directory, Self.mask)
        if watch >= 0 { return .watching(watch) }
        return errno == ENOSPC ? .noWatchesLeft : .failed(errno)
    }

    func unwatch(_ watch: Int32) {
        _ = inotify_rm_watch(descriptor, watch)
    }

    /// Every event queued now; empty when there is none.
    func read() -> [Event] {
        var events: [Event] = []
        let capacity = 64 * 1024
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let count = Glibc.read(descriptor, buffer, capacity)
            if count <= 0 { break }
            var offset = 0
            let headerSize = MemoryLayout<inotify_event>.size
            while offset + headerSize <= count {
                let header = buffer.load(fromByteOffset: offset, as: inotify_event.self)
                let nameLength = Int(header.len)
                var name = ""
                if nameLength > 0 {
                    let start = (buffer + offset + headerSize).assumingMemoryBound(to: CChar.self)
                    // The name is NUL-padded to its field's length.
                    name = String(cString: start)
                }
                events.append(Event(watch: header.wd, mask: header.mask, cookie: header.cookie, name: name))
                offset += headerSize + nameLength
            }
        }
        return events
    }
}
