// FileCheck: every reader of a user file asks here first, so that a named pipe, a device or a folder given
// where a file belongs is refused before it is opened (opening a FIFO for reading blocks until a writer comes).
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum FileCheck {
    /// Checks with `stat` (following symbolic links, never opening the file) that `url` names an existing
    /// regular file; returns its size in bytes. Throws `FormatError(.unreadable)` naming the file and what it
    /// is instead (a folder, a named pipe, a device, a socket) or why it cannot be examined.
    @discardableResult
    public static func regularFile(_ url: URL) throws -> Int {
        var status = stat()
        guard stat(url.path, &status) == 0 else {
            let reason = errno == ENOENT ? "file does not exist" : String(cString: strerror(errno))
            throw FormatError(.unreadable, file: url, "cannot open: \(reason)")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw notRegular(url, status.st_mode) }
        guard let size = Int(exactly: status.st_size), size >= 0 else {
            throw FormatError(.unreadable, file: url, "invalid file size \(status.st_size)")
        }
        return size
    }

    /// The refusal of a path whose `st_mode` is not a regular file's, saying what it is.
    static func notRegular(_ url: URL, _ mode: mode_t) -> FormatError {
        FormatError(.unreadable, file: url, "not a regular file: it is \(describe(mode & S_IFMT))")
    }

    /// What a non-regular file type is, for messages.
    static func describe(_ type: mode_t) -> String {
        switch type {
        case S_IFDIR: return "a folder"
        case S_IFIFO: return "a named pipe (FIFO)"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "of an unknown file type (mode \(String(type, radix: 8)))"
        }
    }
}
