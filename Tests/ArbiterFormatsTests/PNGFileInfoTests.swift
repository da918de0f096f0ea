// PNGImage.info: the declared size from the first 33 bytes, refusing what is not a regular file before opening
// it (as PNGImage.read does) and what does not start like a PNG, each error naming the file.
import Foundation
import Testing
@testable import ArbiterFormats

@Suite("PNG file info")
struct PNGFileInfoTests {
    let folder: HDF5ScratchFolder

    init() throws { folder = try HDF5ScratchFolder("png-info") }

    func write(_ bytes: [UInt8], _ name: String = "image.png") throws -> URL {
        let url = folder.file(name)
        try Data(bytes).write(to: url)
        return url
    }

    func error(_ url: URL) -> FormatError? {
        do { _ = try PNGImage.info(url: url) } catch let e as FormatError { return e } catch { return nil }
        return nil
    }

    @Test func validFile() throws {
        defer { folder.remove() }
        let bytes = try PNGBytes.smallRGB(width: 7, height: 3)
        let info = try PNGImage.info(url: try write(bytes))
        #expect(info == PNGFileInfo(width: 7, height: 3, bytes: bytes.count))
    }

    @Test func hugeDeclaredSizeIsReportedNotDecoded() throws {
        defer { folder.remove() }
        let bytes = PNGStructure.signature + PNGBytes.ihdr(width: 100_000, height: 100_000)
        let info = try PNGImage.info(url: try write(bytes))
        #expect(info.width == 100_000 && info.height == 100_000)
    }

    @Test(arguments: [
        ([UInt8](), FormatError.Kind.truncated, "empty data"),
        (Array(PNGStructure.signature.prefix(5)), .truncated, "signature is cut short"),
        (Array("just some text, long enough to fill a PNG header".utf8), .malformed, "not a PNG image"),
        (Array((PNGStructure.signature + PNGBytes.ihdr(width: 4, height: 4)).prefix(20)), .truncated, "the IHDR"),
        (PNGStructure.signature + PNGBytes.chunk("IDAT", [UInt8](repeating: 0, count: 13)), .malformed, "is 'IDAT'"),
        (PNGStructure.signature + PNGBytes.ihdr(width: 0, height: 4), .malformed, "must be positive"),
    ])
    func badStart(bytes: [UInt8], kind: FormatError.Kind, message: String) throws {
        defer { folder.remove() }
        let url = try write(bytes)
        let e = try #require(error(url))
        #expect(e.kind == kind && e.file == url.path && e.problem.contains(message), "\(e)")
    }

    @Test func notRegularFiles() throws {
        defer { folder.remove() }
        let pipe = folder.file("pipe.png")
        #expect(mkfifo(pipe.path, 0o600) == 0)
        let sub = folder.file("folder.png")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: false)
        let device = URL(fileURLWithPath: "/dev/null")
        for (url, what) in [(pipe, "a named pipe"), (sub, "a folder"), (device, "a character device")] {
            let e = try #require(error(url), "\(what)")
            #expect(e.kind == .unreadable && e.file == url.path && e.problem.contains(what), "\(e)")
            // Reading the whole image refuses it the same way (a pipe would block the read).
            #expect(throws: FormatError.self) { _ = try PNGImage.read(url: url) }
        }
        let missing = try #require(error(folder.file("missing.png")))
        #expect(missing.kind == .unreadable && missing.problem.contains("does not exist"))
    }
}
