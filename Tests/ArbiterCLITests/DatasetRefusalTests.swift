// `arbiter eval`, `verify --data` and `data check` on broken datasets and on runs with nothing to score, run as
// subprocesses of the executable built beside the test bundle: each must exit nonzero (not by a signal) with a
// message naming the file and the item, where the image used to be redrawn from its scene and NaN was printed.
import ArbiterData
import Foundation
import Testing

@Suite("arbiter refuses bad datasets and empty runs")
struct DatasetRefusalTests {
    static let model = Repository.model("tiny-llava").path
    /// A PNG whose IHDR (with a correct CRC) declares 100000×100000 8-bit RGB, then a little image data and IEND:
    /// a decoder that trusted the header would allocate 30 GB.
    static let hugePNG = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/ihdr-100000x100000.png")

    /// A 10-item dataset of 16-pixel images (`mix` weights by kind; default: every kind).
    static func dataset(_ folder: TemporaryFolder, mix: [ItemKind: Double]? = nil) throws -> (URL, [ConflictItem]) {
        let dir = folder.file("data")
        let weights = mix ?? Dictionary(uniqueKeysWithValues: ItemKind.allCases.map { ($0, 1.0) })
        let configuration = GeneratorConfiguration(imageSize: 16, mix: KindMix(weights))
        let items = ConflictGenerator(seed: 5, configuration: configuration).generate(count: 10)
        try ConflictDataset.write(items: items, to: dir)
        return (dir, items)
    }

    @Test func splitLeavesNothing() throws {
        let folder = try TemporaryFolder()
        let dir = folder.file("data")
        let configuration = GeneratorConfiguration(imageSize: 16, mix: KindMix([.conflict: 1]),
                                                   includeHeldoutInstructions: false)
        let items = ConflictGenerator(seed: 2, configuration: configuration).generate(count: 6)
        try ConflictDataset.write(items: items, to: dir)
        let run = try CLI.run(["eval", "--model", Self.model, "--data", dir.path, "--split", "heldout"], in: folder.url)
        #expect(run.status != 0 && !run.signalled, "\(run.output)")
        #expect(run.output.contains("nothing to score in \(dir.path)/dataset.json: 0 items"), "\(run.output)")
    }

    @Test func allItemsWithoutInstruction() throws {
        let folder = try TemporaryFolder()
        let (dir, items) = try Self.dataset(folder, mix: [.noInstruction: 1])
        let run = try CLI.run(["eval", "--model", Self.model, "--data", dir.path], in: folder.url)
        #expect(run.status != 0 && !run.signalled, "\(run.output)")
        #expect(run.output.contains("nothing to score in \(dir.path)/dataset.json: \(items.count) items, none with an instruction"),
                "\(run.output)")
        #expect(!run.output.lowercased().contains("nan"), "\(run.output)")
    }

    @Test(arguments: ["data check", "eval", "verify"], ["truncated", "text", "100000x100000", "symlink out"])
    func brokenImage(_ command: String, _ breakage: String) throws {
        let folder = try TemporaryFolder()
        let (dir, items) = try Self.dataset(folder)
        let item = try #require(items.first { $0.kind == .conflict })
        let url = dir.appendingPathComponent(try #require(item.image))
        switch breakage {
        case "truncated": try Data(contentsOf: url).prefix(60).write(to: url)
        case "text": try Data("not a picture\n".utf8).write(to: url)
        case "100000x100000": try Data(contentsOf: Self.hugePNG).write(to: url)
        default:
            let outside = folder.file("outside.png")
            try FileManager.default.moveItem(at: url, to: outside)
            try FileManager.default.createSymbolicLink(at: url, withDestinationURL: outside)
        }
        let arguments = command == "data check" ? ["data", "check", "--data", dir.path]
            : [command, "--model", Self.model, "--data", dir.path]
        let run = try CLI.run(arguments, in: folder.url)
        #expect(run.status != 0 && !run.signalled, "\(command), \(breakage): \(run.output)")
        for part in [dir.appendingPathComponent("dataset.json").path, "item '\(item.id)'", url.path] {
            #expect(run.output.contains(part), "\(command), \(breakage): '\(part)' not in \(run.output)")
        }
    }

    @Test func megabyteQuestion() throws {
        let folder = try TemporaryFolder()
        var (dir, items) = try Self.dataset(folder)
        items[0].question = String(repeating: "why ", count: 1 << 18)
        try ConflictDataset.encode(items: items).write(to: dir.appendingPathComponent("dataset.json"))
        for arguments in [["data", "check", "--data", dir.path], ["eval", "--model", Self.model, "--data", dir.path]] {
            let run = try CLI.run(arguments, in: folder.url)
            #expect(run.status != 0 && !run.signalled, "\(run.output)")
            #expect(run.output.contains("item '\(items[0].id)'"), "\(run.output)")
            #expect(run.output.contains("field 'question' is 1048576 bytes"), "\(run.output)")
        }
    }
}
