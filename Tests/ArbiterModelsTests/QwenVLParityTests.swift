// Qwen2-VL / Qwen2.5-VL against transformers: every golden dataset, both weight layouts, bf16 weights, the
// image processor from the PNG, and hooks on the vision attention.
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

enum QwenVLFixtures {
    static let models = ["tiny-qwen2_5-vl", "tiny-qwen2-vl"]
    static let images = ["tiny-qwen2_5-vl": "images/qwen2_5-vl-test-45x29.png",
                         "tiny-qwen2-vl": "images/qwen2-vl-test-70x38.png"]

    static func golden(_ model: String) throws -> GoldenActivations {
        try GoldenActivations(url: Repository.activations.appendingPathComponent("\(model)/image-prompt.h5"))
    }

    static func load(_ id: String) throws -> QwenVLModel {
        try load(Repository.model(id))
    }

    static func load(_ url: URL) throws -> QwenVLModel {
        let model = try ModelRegistry.load(url)
        guard let qwen = model as? QwenVLModel else {
            throw ModelError.invalidInput("\(url.lastPathComponent) loaded as \(type(of: model)), not QwenVLModel")
        }
        return qwen
    }

    static func grids(_ golden: GoldenActivations) throws -> [VisionGrid] {
        let (shape, v) = try golden.integers("image_grid_thw")
        return (0..<shape[0]).map { VisionGrid(t: v[3 * $0], h: v[3 * $0 + 1], w: v[3 * $0 + 2]) }
    }

    static func positions(_ golden: GoldenActivations) throws -> [[Int]] {
        let (shape, v) = try golden.integers("position_ids")
        return (0..<shape[0]).map { a in (0..<shape[1]).map { v[a * shape[1] + $0] } }
    }
}

@Suite("Qwen-VL parity with transformers")
struct QwenVLParityTests {
    @Test("every golden dataset matches within the float32 tolerance", arguments: QwenVLFixtures.models)
    func goldenMatches(_ id: String) throws {
        let golden = try QwenVLFixtures.golden(id)
        let model = try QwenVLFixtures.load(id)
        let reports = try GoldenComparison.run(model: model, golden: golden)
        // Every float dataset but pixel_values, plus the exact check of the integer position_ids.
        #expect(golden.integerNames == ["image_grid_thw", "input_ids", "position_ids"])
        #expect(reports.count == golden.hookNames.count - 1 + 1)
        #expect(reports.contains { $0.label.hasSuffix("position_ids") })
        #expect(reports.contains { $0.label.hasSuffix("vision.blocks.3.hook_resid_post") })
        for report in reports {
            #expect(report.passed, "\(report)")
        }
    }

    @Test("3-D position ids equal transformers' get_rope_index", arguments: QwenVLFixtures.models)
    func positionsMatch(_ id: String) throws {
        let golden = try QwenVLFixtures.golden(id)
        let model = try QwenVLFixtures.load(id)
        let positions = try model.positionIDs(ids: try golden.inputIDs(), grids: try QwenVLFixtures.grids(golden))
        #expect(positions.axes == (try QwenVLFixtures.positions(golden)))
    }

    @Test("the image processor turns the PNG into the golden pixel patches and grid, bit for bit",
          arguments: QwenVLFixtures.models)
    func processorFromPNG(_ id: String) throws {
        let golden = try QwenVLFixtures.golden(id)
        let image = try PNGImage.read(url: Repository.goldenData.appendingPathComponent(try #require(QwenVLFixtures.images[id])))
        let processor = try Qwen2VLImageProcessor(contentsOf: Repository.model(id).appendingPathComponent("preprocessor_config.json"))
        let processed = try processor.preprocess(image)
        #expect([processed.grid] == (try QwenVLFixtures.grids(golden)))
        let reference = try golden.tensor("pixel_values")
        #expect(processed.pixelValues.shape == reference.shape)
        #expect(processed.pixelValues.scalars == reference.scalars)
    }

    @Test("end to end from the PNG: logits equal the golden run's")
    func endToEnd() throws {
        let id = "tiny-qwen2_5-vl"
        let golden = try QwenVLFixtures.golden(id)
        let model = try QwenVLFixtures.load(id)
        let image = try PNGImage.read(url: Repository.goldenData.appendingPathComponent(try #require(QwenVLFixtures.images[id])))
        let processor = try Qwen2VLImageProcessor(contentsOf: Repository.model(id).appendingPathComponent("preprocessor_config.json"))
        let output = try model.forward(ids: try golden.inputIDs(), image: try processor.preprocess(image), logits: .last)
        let logits = try #require(output.logits)
        let reference = try golden.tensor("logits")
        let last = reference.rows(reference.rows - 1..<reference.rows)
        let report = compare(logits, to: last, tolerance: GoldenComparison.float32, label: "\(id) last logits")
        #expect(report.passed, "\(report)")
    }

    @Test("the hub layout (save_pretrained) and the in-memory layout with a flat config load to identical logits")
    func bothLayoutsAgree() throws {
        let golden = try QwenVLFixtures.golden("tiny-qwen2_5-vl")
        let ids = try golden.inputIDs(), pixels = try golden.tensor("pixel_values"), grids = try QwenVLFixtures.grids(golden)
        let hub = try QwenVLFixtures.load("tiny-qwen2_5-vl")
        let flat = try QwenVLFixtures.load("tiny-qwen2_5-vl-t5")
        #expect(hub.configuration.textConfig == flat.configuration.textConfig)
        #expect(hub.configuration.visionConfig.fullAttentionBlocks == flat.configuration.visionConfig.fullAttentionBlocks)
        // OpenBLAS's last bits depend on its (process-wide) thread count, which analyses running in parallel
        // tests lower to 1: pin it for the pair of runs.
        let (a, b) = try BLAS.withSingleThread {
            (try hub.forward(ids: ids, pixelValues: pixels, grids: grids).logits, try flat.forward(ids: ids, pixelValues: pixels, grids: grids).logits)
        }
        #expect(a != nil && a == b)
    }

    @Test("bf16 weights equal an f32 checkpoint holding the same rounded values", arguments: QwenVLFixtures.models)
    func bfloat16Checkpoint(_ id: String) throws {
        let tmp = try TemporaryFolder()
        let half = try tmp.copyModel(id, as: "half")
        let rounded = try tmp.copyModel(id, as: "rounded")
        try SafetensorsWriter.write(floats: try floatTensors(of: half), dtype: .bfloat16,
                                    to: half.appendingPathComponent("model.safetensors"))
        try SafetensorsWriter.write(floats: try floatTensors(of: half), dtype: .float32,
                                    to: rounded.appendingPathComponent("model.safetensors"))
        let golden = try QwenVLFixtures.golden(id)
        let ids = try golden.inputIDs(), pixels = try golden.tensor("pixel_values"), grids = try QwenVLFixtures.grids(golden)
        // The BLAS thread count is process-wide (analysis tests lower it): pin it for the pair of runs.
        let (la, lb) = try BLAS.withSingleThread {
            (try QwenVLFixtures.load(half).forward(ids: ids, pixelValues: pixels, grids: grids).logits,
             try QwenVLFixtures.load(rounded).forward(ids: ids, pixelValues: pixels, grids: grids).logits)
        }
        let a = try #require(la), b = try #require(lb)
        let report = compare(a, to: b, tolerance: Tolerance(atol: 1e-5, rtol: 1e-6, nmse: 1e-12,
                                                            reason: "same weights, different GEMM blocking"), label: "\(id) bf16")
        #expect(report.passed, "\(report)")
    }

    @Test("hooks on the vision attention: block-diagonal windows, and the dense path equals the per-window path")
    func visionPatternHooks() throws {
        let golden = try QwenVLFixtures.golden("tiny-qwen2_5-vl")
        let model = try QwenVLFixtures.load("tiny-qwen2_5-vl")
        let ids = try golden.inputIDs(), pixels = try golden.tensor("pixel_values"), grids = try QwenVLFixtures.grids(golden)
        let hooks = HookRun(cache: .patterns(["vision.blocks.*.attn.hook_pattern"]))
        // OpenBLAS's last bits depend on its (process-wide) thread count, which analyses running in parallel
        // tests lower to 1: pin it for the pair of runs.
        let (plain, hooked) = try BLAS.withSingleThread {
            (try model.forward(ids: ids, pixelValues: pixels, grids: grids), try model.forward(ids: ids, pixelValues: pixels, grids: grids, hooks: hooks))
        }
        let report = compare(try #require(hooked.logits), to: try #require(plain.logits),
                             tolerance: Tolerance(atol: 1e-5, rtol: 1e-6, nmse: 1e-12,
                                                  reason: "masked dense attention vs per-window attention: summation order"),
                             label: "dense vs windows")
        #expect(report.passed, "\(report)")
        let layout = model.vision.layout(for: grids)
        #expect(layout.windowSegments == [0, 36, 72, 84, 96])  // windows of 9, 9, 3, 3 merged units
        let n = layout.patchCount
        var window = [Int](repeating: 0, count: n)
        for s in 0..<(layout.windowSegments.count - 1) {
            for r in layout.windowSegments[s]..<layout.windowSegments[s + 1] { window[r] = s }
        }
        for l in 0..<4 {
            let p = try #require(hooks.cache["vision.blocks.\(l).attn.hook_pattern"])
            #expect(p.shape == [4, n, n])
            let windowed = l == 0 || l == 2  // fullatt_block_indexes [1, 3]
            var crossWindow: Float = 0
            var worstRowSum: Float = 0
            for h in 0..<4 {
                for i in 0..<n {
                    var sum: Float = 0
                    for j in 0..<n {
                        let v = p.scalars[(h * n + i) * n + j]
                        sum += v
                        if window[i] != window[j] { crossWindow = max(crossWindow, v) }
                    }
                    worstRowSum = max(worstRowSum, abs(sum - 1))
                }
            }
            #expect(worstRowSum < 1e-5)
            if windowed { #expect(crossWindow == 0, "layer \(l)") } else { #expect(crossWindow > 0, "layer \(l)") }
        }
    }

    @Test("hook names: vision blocks, merger, image features, then the language model")
    func hookNames() throws {
        let v25 = try QwenVLFixtures.load("tiny-qwen2_5-vl").hookNames
        let v2 = try QwenVLFixtures.load("tiny-qwen2-vl").hookNames
        #expect(v25.first == "vision.hook_embed")
        #expect(v25.contains("vision.blocks.3.mlp.hook_pre_linear"))
        #expect(!v2.contains("vision.blocks.3.mlp.hook_pre_linear"))
        for names in [v25, v2] {
            #expect(Set(names).count == names.count)
            let features = try #require(names.firstIndex(of: "hook_image_features"))
            #expect(names[features - 1] == "vision.merger.hook_pre")
            #expect(names[features + 1] == "hook_embed")
            #expect(names.last == "hook_logits")
        }
    }
}
