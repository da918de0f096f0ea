// Non-regular files given where a file belongs (named pipes, devices, folders) are refused by every reader of
// ArbiterFormats before it opens them: opening a FIFO for reading would block until a writer comes.
import ArbiterTensor
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import ArbiterFormats

/// Runs `body` on another thread and expects it to throw a `FormatError` naming `file` within `seconds`. If it
/// blocks (on a FIFO), the FIFO's write end is opened once to release it, and the test fails instead of hanging.
@discardableResult
func expectRefusedWithoutBlocking(_ file: URL, seconds: Double = 10, sourceLocation: SourceLocation = #_sourceLocation,
                                  _ body: @escaping @Sendable () throws -> Void) -> FormatError? {
    final class Outcome: @unchecked Sendable {  // written by the thread before it signals, read after
        var error: (any Error)?
        var returned = false
    }
    let outcome = Outcome()
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        do { try body(); outcome.returned = true } catch { outcome.error = error }
        done.signal()
    }
    if done.wait(timeout: .now() + seconds) == .timedOut {
        Issue.record("reading \(file.path) blocked for \(seconds) s", sourceLocation: sourceLocation)
        let writer = open(file.path, O_WRONLY | O_NONBLOCK)  // lets a reader blocked in open() return
        if writer >= 0 { close(writer) }
        _ = done.wait(timeout: .now() + seconds)
        return nil
    }
    guard let error = outcome.error as? FormatError else {
        let got = outcome.returned ? "success" : "\(String(describing: outcome.error))"
        Issue.record("expected a FormatError, got \(got)", sourceLocation: sourceLocation)
        return nil
    }
    #expect(error.description.contains(file.path), "\(error)", sourceLocation: sourceLocation)
    return error
}

@Suite("Non-regular files are refused before opening")
struct FileCheckTests {
    /// A reader of ArbiterFormats, by name, applied to a path.
    static let readers: [(String, @Sendable (URL) throws -> Void)] = [
        ("safetensors", { _ = try SafetensorsFile(url: $0) }),
        ("JSON", { _ = try JSONFile.data(at: $0) }),
        ("PNG", { _ = try PNGImage.read(url: $0) }),
        ("HDF5", { _ = try HDF5Reader(url: $0) }),
        ("golden", { _ = try GoldenActivations(url: $0) }),
    ]

    @Test("a named pipe, a character device and a folder are refused by every reader, saying what they are",
          arguments: readers.indices)
    func nonRegular(_ index: Int) throws {
        let (label, read) = Self.readers[index]
        let folder = try HDF5ScratchFolder("filecheck")
        defer { folder.remove() }
        let fifo = folder.file("input.fifo")
        try #require(mkfifo(fifo.path, 0o600) == 0, "mkfifo: \(String(cString: strerror(errno)))")
        let cases = [(fifo, "a named pipe (FIFO)"), (URL(fileURLWithPath: "/dev/null"), "a character device"),
                     (folder.url, "a folder")]
        for (url, what) in cases {
            let error = expectRefusedWithoutBlocking(url) { try read(url) }
            #expect(error?.kind == .unreadable, "\(label): \(String(describing: error))")
            #expect(error?.description.contains("not a regular file: it is \(what)") == true,
                    "\(label): \(String(describing: error))")
        }
        let missing = folder.file("absent")
        let error = expectRefusedWithoutBlocking(missing) { try read(missing) }
        #expect(error?.description.contains("cannot open: file does not exist") == true, "\(label)")
    }

    @Test("regularFile returns the size and follows symbolic links")
    func regularFile() throws {
        let folder = try HDF5ScratchFolder("filecheck")
        defer { folder.remove() }
        let file = folder.file("five.bin")
        try Data([1, 2, 3, 4, 5]).write(to: file)
        try FileManager.default.createSymbolicLink(at: folder.file("link"), withDestinationURL: file)
        #expect(try FileCheck.regularFile(file) == 5)
        #expect(try FileCheck.regularFile(folder.file("link")) == 5)
        try FileManager.default.createSymbolicLink(at: folder.file("dangling"), withDestinationURL: folder.file("gone"))
        #expect(throws: FormatError.self) { try FileCheck.regularFile(folder.file("dangling")) }
    }
}
