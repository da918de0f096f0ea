// HDF5Writer writes to a temporary file and renames it into place only on commit().
import ArbiterTensor
import Foundation
import Testing
@testable import ArbiterFormats

@Suite("HDF5 writer atomicity")
struct HDF5AtomicityTests {
    @Test("a writer dropped without commit leaves no file and no temporary file")
    func droppedWithoutCommit() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let url = folder.file("dropped.h5")
        do {
            let writer = try HDF5Writer(url: url)
            try writer.write("t", HDF5Fixtures.ramp([4, 4]))
            try writer.setAttribute("format_version", 1)
            #expect(FileManager.default.fileExists(atPath: writer.temporaryURL.path))
            #expect(writer.temporaryURL.deletingLastPathComponent().path == folder.url.path)
            #expect(!FileManager.default.fileExists(atPath: url.path))
        }
        #expect(try folder.contents() == [])
    }

    @Test("an existing file is untouched by an uncommitted writer and replaced by a committed one")
    func existingFile() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let url = folder.file("existing.h5")
        let original = Data("not even HDF5, but it must survive".utf8)
        try original.write(to: url)
        do {
            let writer = try HDF5Writer(url: url)
            try writer.write("t", HDF5Fixtures.ramp([2]))
        }
        #expect(try Data(contentsOf: url) == original)
        #expect(try folder.contents() == ["existing.h5"])

        let writer = try HDF5Writer(url: url)
        try writer.write("t", HDF5Fixtures.ramp([2]))
        #expect(try Data(contentsOf: url) == original)  // still the old file before commit
        try writer.commit()
        #expect(try HDF5Reader(url: url).readFloat32("t") == HDF5Fixtures.ramp([2]))
        #expect(try folder.contents() == ["existing.h5"])
    }

    @Test("the same content written twice gives the same bytes (no timestamps)")
    func deterministic() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let first = try HDF5Fixtures.writeGolden(to: folder.file("first.h5"))
        Thread.sleep(forTimeInterval: 1.1)  // a timestamp would now differ
        let second = try HDF5Fixtures.writeGolden(to: folder.file("second.h5"))
        #expect(first == second)
    }

    @Test("a failed write does not corrupt the committed file of an earlier writer")
    func failedSecondWriter() throws {
        let folder = try HDF5ScratchFolder()
        defer { folder.remove() }
        let url = folder.file("stable.h5")
        try HDF5Fixtures.writeGolden(to: url)
        let before = try Data(contentsOf: url)
        do {
            let writer = try HDF5Writer(url: url)
            try writer.write("x", HDF5Fixtures.ramp([2]))
            #expect(throws: FormatError.self) { try writer.write("x", HDF5Fixtures.ramp([2])) }
            // the caller gives up: no commit
        }
        #expect(try Data(contentsOf: url) == before)
        #expect(try folder.contents() == ["stable.h5"])
    }
}
