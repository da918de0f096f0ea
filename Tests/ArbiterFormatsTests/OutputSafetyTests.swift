// Output safety: every refusal of OutputSafety (checked before any work), and the replacements it allows.
import ArbiterTensor
import Foundation
import Testing
@testable import ArbiterFormats

@Suite("Output safety")
struct OutputSafetyTests {
    /// Expects `body` to throw an OutputError whose message holds `fragment`; returns it.
    @discardableResult
    func refused(_ fragment: String, _ body: () throws -> Void,
                 sourceLocation: SourceLocation = #_sourceLocation) -> OutputError? {
        let error = #expect(throws: OutputError.self, sourceLocation: sourceLocation) { try body() }
        #expect(error?.description.contains(fragment) == true, "\(error.map(String.init(describing:)) ?? "no error")",
                sourceLocation: sourceLocation)
        return error
    }

    /// Writes a small file tree: `names` relative paths, each with its own contents.
    func plant(_ names: [String], in folder: URL) throws {
        for name in names {
            let url = folder.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data("user file \(name)".utf8).write(to: url)
        }
    }

    // MARK: Folders that are never an output

    @Test("the empty string, /, the home folder, the current folder and its ancestors are refused")
    func forbiddenFolders() throws {
        let cwd = FileManager.default.currentDirectoryPath
        refused("is empty") { try OutputSafety.checkFolder("", kind: .verifyReport, option: "--out") }
        refused("is the root folder") { try OutputSafety.checkFolder("/", kind: .verifyReport, option: "--out") }
        refused("is the home folder") {
            try OutputSafety.checkFolder(NSHomeDirectory(), kind: .verifyReport, option: "--out")
        }
        refused("is the current folder") { try OutputSafety.checkFolder(".", kind: .verifyReport, option: "--out") }
        refused("is the current folder") { try OutputSafety.checkFolder(cwd + "/", kind: .dataset, option: "--out") }
        refused("holds the current folder") { try OutputSafety.checkFolder("..", kind: .verifyReport, option: "--out") }
        // The option and the path are named.
        let error = refused("is the current folder") { try OutputSafety.checkFolder(".", kind: .dataset, option: "--out") }
        #expect(error?.description.hasPrefix("--out .: ") == true)
    }

    @Test("an input of the run, or a folder holding one, is refused")
    func inputs() throws {
        let folder = try HDF5ScratchFolder("output")
        defer { folder.remove() }
        let model = folder.file("models/my-model")
        try plant(["models/my-model/config.json"], in: folder.url)
        refused("is an input of this run") {
            try OutputSafety.checkFolder(model.path, kind: .verifyReport, option: "--out", inputs: [model])
        }
        refused("holds an input of this run") {
            try OutputSafety.checkFolder(folder.file("models").path, kind: .verifyReport, option: "--out", inputs: [model])
        }
        // Through a symbolic link to the model's parent, the same folder.
        try FileManager.default.createSymbolicLink(at: folder.file("link"), withDestinationURL: folder.file("models"))
        refused("is an input of this run") {
            try OutputSafety.checkFolder(folder.file("link/my-model").path, kind: .verifyReport, option: "--out",
                                         inputs: [model])
        }
        #expect(try String(contentsOf: model.appendingPathComponent("config.json"), encoding: .utf8).hasPrefix("user"))
    }

    @Test("a folder Arbiter did not write, a file, a symbolic link, another kind or a stranger inside are refused")
    func notArbiters() throws {
        let folder = try HDF5ScratchFolder("output")
        defer { folder.remove() }
        try plant(["mine/notes.txt"], in: folder.url)
        refused("did not write") {
            try OutputSafety.checkFolder(folder.file("mine").path, kind: .verifyReport, option: "--out")
        }
        try plant(["file.txt"], in: folder.url)
        refused("is a file, not a folder") {
            try OutputSafety.checkFolder(folder.file("file.txt").path, kind: .verifyReport, option: "--out")
        }
        refused("is a file, not a folder") {
            try OutputSafety.checkFolder(folder.file("file.txt/report").path, kind: .verifyReport, option: "--out")
        }
        try FileManager.default.createSymbolicLink(at: folder.file("alias"), withDestinationURL: folder.file("mine"))
        refused("symbolic link") {
            try OutputSafety.checkFolder(folder.file("alias").path, kind: .verifyReport, option: "--out")
        }
        // An Arbiter dataset is not a report.
        let data = folder.file("data")
        try OutputSafety.writeFolder(data.path, kind: .dataset, option: "--out") { staging in
            try Data("{}".utf8).write(to: staging.appendingPathComponent("dataset.json"))
        }
        refused("is an Arbiter dataset folder, not a verify-report") {
            try OutputSafety.checkFolder(data.path, kind: .verifyReport, option: "--out")
        }
        // A file added to an Arbiter folder after it was written is not Arbiter's to delete.
        try plant(["data/images/mine.png"], in: folder.url)
        refused("holds 'images'") { try OutputSafety.checkFolder(data.path, kind: .dataset, option: "--out") }
        #expect(FileManager.default.fileExists(atPath: folder.file("data/images/mine.png").path))
    }

    @Test("new, empty and earlier Arbiter folders are written; the replacement is atomic")
    func writes() throws {
        let folder = try HDF5ScratchFolder("output")
        defer { folder.remove() }
        let report = folder.file("reports/verify")
        try OutputSafety.writeFolder(report.path, kind: .verifyReport, option: "--out") { staging in
            try plant(["report.md", "plots/a.png"], in: staging)
        }
        let marker = try JSONDecoder().decode(OutputMarker.self,
                                              from: Data(contentsOf: report.appendingPathComponent(".arbiter-output")))
        #expect(marker == OutputMarker(kind: .verifyReport, entries: ["plots", "plots/a.png", "report.md"]))
        // Replaced by a second report; nothing left beside it.
        try OutputSafety.writeFolder(report.path, kind: .verifyReport, option: "--out") { staging in
            try plant(["report.md"], in: staging)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: report.path).sorted() == [".arbiter-output",
                                                                                              "report.md"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.file("reports").path) == ["verify"])
        // A failing body leaves the earlier report whole and no staging folder.
        struct Boom: Error {}
        #expect(throws: OutputError.self) {
            try OutputSafety.writeFolder(report.path, kind: .verifyReport, option: "--out") { staging in
                try plant(["report.md"], in: staging)
                throw Boom()
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.file("reports").path) == ["verify"])
        #expect(try String(contentsOf: report.appendingPathComponent("report.md"), encoding: .utf8) == "user file report.md")
        // An empty folder is taken.
        try FileManager.default.createDirectory(at: folder.file("empty"), withIntermediateDirectories: false)
        try OutputSafety.writeFolder(folder.file("empty").path, kind: .dataset, option: "--out") { _ in }
        #expect(FileManager.default.fileExists(atPath: folder.file("empty/.arbiter-output").path))
    }

    // MARK: Files

    @Test("an existing file is replaced only when Arbiter wrote it as the same kind")
    func files() throws {
        let folder = try HDF5ScratchFolder("output")
        defer { folder.remove() }
        let text = folder.file("notes.h5")
        try Data("my notes".utf8).write(to: text)
        refused("not an HDF5 file Arbiter wrote") { try OutputSafety.checkFile(text.path, kind: .dump, option: "--dump") }
        #expect(throws: OutputError.self) { try HDF5Writer(url: text, output: .dump) }
        #expect(try String(contentsOf: text, encoding: .utf8) == "my notes")

        // An HDF5 file from someone else (a transformers golden, say) has no marker.
        let golden = folder.file("golden.h5")
        let plain = try HDF5Writer(url: golden)
        try plain.write("t", Tensor(shape: [2], scalars: [1, 2]))
        try plain.commit()
        refused("was not written by Arbiter") { try OutputSafety.checkFile(golden.path, kind: .dump, option: "--dump") }

        // An Arbiter dump is replaced by a dump, not by a golden claims file.
        let dump = folder.file("dump.h5")
        for value: Float in [1, 2] {
            let writer = try HDF5Writer(url: dump, output: .dump)
            try writer.write("t", Tensor(shape: [1], scalars: [value]))
            try writer.commit()
        }
        #expect(try HDF5Reader(url: dump).readFloat32("t").scalars == [2])
        #expect(try HDF5Reader(url: dump).stringAttribute("arbiter_output") == "dump")
        refused("is an Arbiter dump file, not a golden-claims") {
            try OutputSafety.checkFile(dump.path, kind: .goldenClaims, option: "--store-golden")
        }
        refused("is a folder") { try OutputSafety.checkFile(folder.url.path, kind: .dump, option: "--dump") }
        refused("does not exist") {
            try OutputSafety.checkFile(folder.file("nowhere/x.h5").path, kind: .dump, option: "--dump")
        }
        refused("is empty") { try OutputSafety.checkFile("", kind: .dump, option: "--dump") }
        try FileManager.default.createSymbolicLink(at: folder.file("link.h5"), withDestinationURL: dump)
        refused("symbolic link") { try OutputSafety.checkFile(folder.file("link.h5").path, kind: .dump, option: "--dump") }
    }

    @Test("a file output that is an input is refused even when Arbiter wrote it")
    func fileInput() throws {
        let folder = try HDF5ScratchFolder("output")
        defer { folder.remove() }
        let dump = folder.file("dump.h5")
        let writer = try HDF5Writer(url: dump, output: .dump)
        try writer.write("t", Tensor(shape: [1], scalars: [1]))
        try writer.commit()
        refused("is an input of this run") {
            try OutputSafety.checkFile(dump.path, kind: .dump, option: "--dump", inputs: [dump])
        }
    }
}
