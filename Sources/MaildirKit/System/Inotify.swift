#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// Linux's inotify, the raw calls: one watch per directory (it is not
/// recursive), events read without blocking. The only file that knows it.
package final class Inotify {
    /// What an event says happened, by name rather than by IN_ constant.
    package struct What: OptionSet, Sendable {
        package let rawValue: UInt32
        package init(rawValue: UInt32) { self.rawValue = rawValue }

        /// An entry appeared by create(2), mkdir(2) or link(2).
        package static let created = What(rawValue: UInt32(IN_CREATE))
        /// An entry was renamed into the directory.
        package static let movedIn = What(rawValue: UInt32(IN_MOVED_TO))
        /// An entry was renamed out of the directory.
        package static let movedOut = What(rawValue: UInt32(IN_MOVED_FROM))
        package static let deleted = What(rawValue: UInt32(IN_DELETE))
        package static let modified = What(rawValue: UInt32(IN_MODIFY))
        /// A file open for writing was closed.
        package static let closedAfterWriting = What(rawValue: UInt32(IN_CLOSE_WRITE))
        /// The kernel's queue overflowed: events were lost.
        package static let overflowed = What(rawValue: UInt32(IN_Q_OVERFLOW))
        /// The watch is gone (its directory was removed, or it was unwatched).
        package static let watchRemoved = What(rawValue: UInt32(IN_IGNORED))
    }

    package struct Event {
        package let watch: Int32
        package let mask: UInt32
        package let cookie: UInt32
        /// The entry's name within the watched directory; "" for the directory itself.
        package let name: String

        /// Whether the event says any of `what`.
        package func has(_ what: What) -> Bool { mask & what.rawValue != 0 }
        package var isDirectory: Bool { mask & UInt32(IN_ISDIR) != 0 }
    }

    package enum Added {
        case watching(Int32)
        /// `max_user_watches` is used up (ENOSPC).
        case noWatchesLeft
        /// Gone meanwhile, or not a directory, or not readable.
        case failed(Int32)
    }

    package let descriptor: Int32

    /// What a maildir watcher needs to hear of: entries appearing (by
    /// create, link or rename), going (unlink, rename away), files written
    /// and closed, and the directory itself going.
    private static let mask = UInt32(IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_MODIFY
                                     | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF)
        | UInt32(IN_ONLYDIR)

    package init() throws(Errno) {
        descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if descriptor < 0 { throw Errno(rawValue: errno) }
    }

    deinit { close(descriptor) }

    package func watch(_ directory: String) -> Added {
        let watch = inotify_add_watch(descriptor, directory, Self.mask)
        if watch >= 0 { return .watching(watch) }
        return errno == ENOSPC ? .noWatchesLeft : .failed(errno)
    }

    package func unwatch(_ watch: Int32) {
        _ = inotify_rm_watch(descriptor, watch)
    }

    /// Every event queued now; empty when there is none.
    package func read() -> [Event] {
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
