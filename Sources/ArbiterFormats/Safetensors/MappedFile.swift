// MappedFile: a whole file memory-mapped read-only; the owner that keeps zero-copy tensor views alive.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A regular file mapped read-only into memory for the lifetime of the object (`munmap` in `deinit`).
/// `StoredTensor`s made from it hold it as their `owner`, so their `bytes` stay valid as long as they do.
public final class MappedFile: @unchecked Sendable {  // immutable after init; the mapping is read-only
    public let url: URL
    /// Start of the file's bytes (a private, valid pointer to no bytes for an empty file).
    public let bytes: UnsafeRawPointer
    /// The file's size in bytes.
    public let count: Int
    private let isMapped: Bool

    /// Maps the file at `url`. Throws `FormatError(.unreadable)` when it cannot be opened, is not a regular
    /// file (checked before opening: a named pipe would block `open`), or cannot be mapped.
    public init(url: URL) throws {
        self.url = url
        try FileCheck.regularFile(url)
        // O_NONBLOCK: should the path turn into a FIFO after the check, `open` returns instead of waiting;
        // the fstat below then refuses it. It has no effect on regular files.
        let descriptor = open(url.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else {
            throw FormatError(.unreadable, file: url, "cannot open: \(Self.errnoText())")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw FormatError(.unreadable, file: url, "cannot stat: \(Self.errnoText())")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw FileCheck.notRegular(url, status.st_mode) }
        guard let size = Int(exactly: status.st_size), size >= 0 else {
            throw FormatError(.unreadable, file: url, "invalid file size \(status.st_size)")
        }
        count = size
        if size == 0 {
            // mmap refuses zero lengths; an empty file gets a 1-byte placeholder that nothing reads.
            bytes = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 16))
            isMapped = false
            return
        }
        let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
        guard let address, address != MAP_FAILED else {
            throw FormatError(.unreadable, file: url, "cannot memory-map \(size) bytes: \(Self.errnoText())")
        }
        bytes = UnsafeRawPointer(address)
        isMapped = true
    }

    deinit {
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: bytes), count)
        } else {
            UnsafeMutableRawPointer(mutating: bytes).deallocate()
        }
    }

    /// The file's bytes as a buffer (valid while `self` lives).
    public var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: bytes, count: count) }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
