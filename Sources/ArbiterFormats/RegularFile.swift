// Refusing what is not a regular file before opening it: opening a named pipe blocks until someone writes to it,
// and a device or a folder has no meaningful size, so readers that take paths from outside check here first.
import Foundation

public enum RegularFile {
    /// The size in bytes of the regular file at `url` (symlinks followed). Throws `.unreadable` when it does not
    /// exist or cannot be examined, `.unsupported` when it is a folder, a pipe, a socket or a device.
    public static func size(at url: URL) throws -> Int {
        var info = stat()
        guard stat(url.path, &info) == 0 else {
            let code = errno
            if code == ENOENT { throw FormatError(.unreadable, file: url, "cannot open: file does not exist") }
            throw FormatError(.unreadable, file: url, "cannot open: \(String(cString: strerror(code)))")
        }
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG else {
            let kind: String
            switch type {
            case S_IFDIR: kind = "a folder"
            case S_IFIFO: kind = "a named pipe"
            case S_IFSOCK: kind = "a socket"
            case S_IFCHR, S_IFBLK: kind = "a device"
            default: kind = "a file of an unknown kind"
            }
            throw FormatError(.unsupported, file: url, "is \(kind), not a regular file")
        }
        return Int(info.st_size)
    }
}
