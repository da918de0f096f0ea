// The golden activation layout (GoldenData/README.md): written by GoldenWriter, read by GoldenActivations,
// and read from a file in the same layout written by h5py.
import ArbiterTensor
import Foundation
import Testing
@testable import ArbiterFormats

@Suite("Golden activation files")
struct GoldenActivationsTests {
    @Test("GoldenWriter output reads back through GoldenActivations")
    func roundTrip() throws {
        let folder = try HDF5ScratchFolder("golden")
        defer { folder.remove() }
        let url = folder.file("text-short.h5")
        let writer = try GoldenWriter(url: url, modelID: "tiny-llava", modelType: "llava",
                                      source: "arbiter run --dump (test)", seed: 42, caseName: "image-dog",
                                      prompt: "USER: <image>\nWhat is this? ASSISTANT:")
        let embed = HDF5Fixtures.ramp([4, 3])
        let pattern = HDF5Fixtures.ramp([2, 4, 4], scale: 1.0 / 16, offset: 0)
        let pixels = HDF5Fixtures.ramp([1, 3, 2, 2], scale: 0.1)
        try writer.writeInputIDs([1, 32000, 910, 2])
        try writer.write(hook: "hook_embed", tensor: embed)
        try writer.write(hook: "blocks.0.attn.hook_pattern", tensor: pattern)
        try writer.write(hook: "pixel_values", tensor: pixels)
        try writer.writeIntegers("image_grid_thw", [1, 2, 2], shape: [1, 3])
        #expect(throws: FormatError.self) { try writer.write(hook: "input_ids", tensor: embed) }
        #expect(!FileManager.default.fileExists(atPath: url.path))
        try writer.commit()

        let golden = try GoldenActivations(url: url)
        #expect(golden.modelID == "tiny-llava")
        #expect(golden.modelType == "llava")
        #expect(golden.source == "arbiter run --dump (test)")
        #expect(golden.seed == 42)
        #expect(golden.caseName == "image-dog")
        #expect(golden.prompt == "USER: <image>\nWhat is this? ASSISTANT:")
        #expect(golden.tokenCount == 4)
        #expect(golden.hookNames == ["blocks.0.attn.hook_pattern", "hook_embed", "pixel_values"])
        #expect(try golden.inputIDs() == [1, 32000, 910, 2])
        #expect(golden.integerNames == ["image_grid_thw", "input_ids"])
        #expect(try golden.integers("image_grid_thw").shape == [1, 3])
        #expect(try golden.integers("image_grid_thw").values == [1, 2, 2])
        #expect(throws: FormatError.self) { try golden.integers("hook_embed") }
        #expect(throws: FormatError.self) { try golden.tensor("image_grid_thw") }
        #expect(try golden.tensor("hook_embed") == embed)
        #expect(try golden.tensor("blocks.0.attn.hook_pattern") == pattern)
        #expect(try golden.tensor("pixel_values") == pixels)
        #expect(try golden.shape(of: "pixel_values") == [1, 3, 2, 2])
        #expect(golden.contains("hook_embed") && !golden.contains("input_ids"))
        let reader = try HDF5Reader(url: url)
        #expect(try reader.intAttribute("format_version") == GoldenActivations.formatVersion)
    }

    @Test("the prompt is optional")
    func withoutPrompt() throws {
        let folder = try HDF5ScratchFolder("golden")
        defer { folder.remove() }
        let url = folder.file("no-prompt.h5")
        let writer = try GoldenWriter(url: url, modelID: "m", modelType: "qwen2", source: "s", seed: 0, caseName: "c")
        try writer.writeInputIDs([7])
        try writer.commit()
        let golden = try GoldenActivations(url: url)
        #expect(golden.prompt == nil)
        #expect(golden.hookNames.isEmpty)
        #expect(try golden.inputIDs() == [7])
    }

    @Test("a golden file written by h5py reads, float64 datasets included")
    func h5pyFixture() throws {
        let golden = try GoldenActivations(url: HDF5Fixtures.h5py)
        #expect(golden.modelID == "tiny-llama")
        #expect(golden.modelType == "llama")  // stored as fixed-length bytes
        #expect(golden.seed == 1234)
        #expect(golden.caseName == "text-short")
        #expect(golden.prompt == "Décris l’image ✓")
        #expect(try golden.inputIDs() == [1, 15043, 3186, 29892, 2])
        #expect(try golden.tensor("logits").shape == [5, 7])
        #expect(try golden.tensor("blocks.0.attn.hook_pattern").shape == [2, 5, 5])
        #expect(golden.hookNames.contains("hook_embed") && !golden.hookNames.contains("input_ids"))
    }

    /// The golden files committed under GoldenData/activations (written by Tools/golden.py; the bundled
    /// models' `heldout.h5` item files have their own layout and test, BundledGoldenTests).
    static let committedGoldens: [URL] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../GoldenData/activations").standardizedFileURL
        let files = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)?
            .compactMap { $0 as? URL }.filter { $0.pathExtension == "h5" && $0.lastPathComponent != "heldout.h5" } ?? []
        return files.sorted { $0.path < $1.path }
    }()

    @Test("every committed golden file opens and every dataset reads with the layout's shapes")
    func committedGoldenFiles() throws {
        #expect(!Self.committedGoldens.isEmpty, "no golden files under GoldenData/activations")
        for url in Self.committedGoldens {
            let golden = try GoldenActivations(url: url)
            #expect(try golden.inputIDs().count == golden.tokenCount, "\(url.path)")
            #expect(golden.hookNames.contains("logits") && golden.hookNames.contains("hook_embed"), "\(url.path)")
            for hook in golden.hookNames {
                let tensor = try golden.tensor(hook)  // shape rules checked here
                #expect(tensor.isFinite, "\(url.lastPathComponent): \(hook) has non-finite values")
            }
            for name in golden.integerNames { _ = try golden.integers(name) }
            #expect(!golden.modelID.isEmpty && !golden.source.isEmpty && !golden.caseName.isEmpty)
        }
    }

    /// Peak resident memory of this process (VmHWM), in bytes.
    static func peakResidentBytes() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return (line.split(separator: " ").compactMap { Int($0) }.first ?? 0) * 1024
    }

    @Test("input_ids declaring 100 M tokens (a 22 kB gzip-chunked file) are refused from the declared shape, unread")
    func declaredHugeInputIDs() throws {
        let url = HDF5Fixtures.folder.appendingPathComponent("golden_huge_input_ids.h5")
        let before = Self.peakResidentBytes()
        let error = expectHDF5Error(naming: url) { try GoldenActivations(url: url) }
        #expect(error?.kind == .tooLarge)
        let text = error?.description ?? "no error"
        #expect(text.contains("dataset 'input_ids' declares 100000000 tokens, over the 1048576-token limit of a "
                              + "golden file; not read"), "\(text)")
        // Reading them would take 800 MB; other tests running alongside stay far below the margin.
        #expect(Self.peakResidentBytes() - before < 400 << 20)
    }

    @Test("a dataset declaring another shape than expected (3.6 GB of logits in 15 kB) is refused before reading")
    func declaredHugeDataset() throws {
        let url = HDF5Fixtures.folder.appendingPathComponent("golden_huge_logits.h5")
        let golden = try GoldenActivations(url: url)
        #expect(try golden.shape(of: "logits") == [3, 300_000_000])
        let before = Self.peakResidentBytes()
        let error = expectHDF5Error(naming: url) { try golden.tensor("logits", expectedShape: [3, 512]) }
        #expect(error?.kind == .inconsistent)
        let text = error?.description ?? "no error"
        #expect(text.contains("dataset 'logits' has shape [3, 300000000] but the model computed [3, 512]; not read"),
                "\(text)")
        #expect(Self.peakResidentBytes() - before < 400 << 20)
    }

    @Test("held-out item files are recognised by their item_offsets dataset")
    func heldOutItemFiles() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let activations = root.appendingPathComponent("GoldenData/activations")
        let heldOut = try GoldenActivations(url: activations.appendingPathComponent("arbiter-main/heldout.h5"))
        #expect(heldOut.isItemSet && heldOut.itemDataset == "GoldenData/heldout")
        let single = try GoldenActivations(url: activations.appendingPathComponent("tiny-llama/random-24.h5"))
        #expect(!single.isItemSet && single.itemDataset == nil)
        // The structure decides, not the file name or the attribute.
        let folder = try HDF5ScratchFolder("golden")
        defer { folder.remove() }
        let url = folder.file("random-24.h5")
        let writer = try GoldenWriter(url: url, modelID: "m", modelType: "llama", source: "s", seed: 0, caseName: "c")
        try writer.writeInputIDs([1, 2, 3, 4])
        try writer.writeIntegers("item_offsets", [0, 1, 4], shape: [3])
        try writer.commit()
        let items = try GoldenActivations(url: url)
        #expect(items.isItemSet && items.itemDataset == nil)
    }

    @Test("shape rules of known hooks", arguments: [
        ("hook_embed", [3, 8], true), ("hook_embed", [4, 8], false), ("hook_embed", [3], false),
        ("logits", [3, 11], true), ("ln_final.hook_normalized", [2, 8], false),
        ("blocks.12.hook_resid_mid", [3, 8], true), ("blocks.1.hook_mlp_out", [1, 3, 8], false),
        ("blocks.0.attn.hook_pattern", [4, 3, 3], true), ("blocks.0.attn.hook_pattern", [4, 3, 2], false),
        ("vision.blocks.0.hook_resid_post", [50, 16], true), ("image_features", [9, 8], true),
        ("blocks.x.hook_resid_pre", [9], true),
    ] as [(String, [Int], Bool)])
    func shapeRules(hook: String, shape: [Int], fits: Bool) {
        #expect((GoldenActivations.shapeProblem(hook: hook, shape: shape, tokens: 3) == nil) == fits)
    }
}
