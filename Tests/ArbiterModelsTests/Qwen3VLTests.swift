// Qwen3-VL against transformers (every golden dataset, the image processor from the PNG), its DeepStack additions in
// every way the decoder runs (resumed at a layer, suffix runs, batches), and the configs and inputs it refuses.
import ArbiterFormats
@testable import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

enum Qwen3VLFixtures {
    static let id = "tiny-qwen3-vl"
    static let image = "images/qwen3-vl-test-45x29.png"

    static func golden() throws -> GoldenActivations {
        try GoldenActivations(url: Repository.activations.appendingPathComponent("\(id)/image-prompt.h5"))
    }

    static func load(_ url: URL = Repository.model(id)) throws -> Qwen3VLModel {
        let model = try ModelRegistry.load(url)
        guard let qwen = model as? Qwen3VLModel else {
            throw ModelError.invalidInput("\(url.lastPathComponent) loaded as \(type(of: model)), not Qwen3VLModel")
        }
        return qwen
    }

    /// The golden run's ids and image.
    static func inputs(_ model: Qwen3VLModel) throws -> (ids: [Int], image: PreparedImage) {
        let golden = try golden()
        return (try golden.inputIDs(), try #require(try model.goldenImage(golden)))
    }
}

@Suite("Qwen3-VL parity with transformers")
struct Qwen3VLParityTests {
    @Test("every golden dataset matches within the float32 tolerance, DeepStack features included")
    func goldenMatches() throws {
        let golden = try Qwen3VLFixtures.golden()
        let model = try Qwen3VLFixtures.load()
        let reports = try GoldenComparison.run(model: model, golden: golden)
        #expect(golden.integerNames == ["image_grid_thw", "input_ids", "position_ids"])
        // Every float dataset but pixel_values, plus the exact check of the integer position_ids.
        #expect(reports.count == golden.hookNames.count - 1 + 1)
        for name in ["position_ids", "vision.hook_pos_embed", "vision.deepstack.1.hook_features",
                     "blocks.1.hook_deepstack", "blocks.2.hook_resid_pre", "blocks.3.attn.hook_q", "image_features"] {
            #expect(reports.contains { $0.label.hasSuffix(" \(name)") }, "\(name) not compared")
        }
        for report in reports {
            #expect(report.passed, "\(report)")
        }
    }

    @Test("the image processor turns the PNG into the golden pixel patches, grid and token count, bit for bit")
    func processorFromPNG() throws {
        let golden = try Qwen3VLFixtures.golden()
        let model = try Qwen3VLFixtures.load()
        let png = try PNGImage.read(url: Repository.goldenData.appendingPathComponent(Qwen3VLFixtures.image))
        let processor = try model.imageProcessor(
            contentsOf: Repository.model(Qwen3VLFixtures.id).appendingPathComponent("preprocessor_config.json"))
        let prepared = try processor.prepare(png)
        let reference = try golden.tensor("pixel_values")
        #expect(prepared.pixelValues.shape == reference.shape)
        #expect(prepared.pixelValues.scalars == reference.scalars)
        let (shape, grid) = try golden.integers("image_grid_thw")
        #expect(prepared.integers["image_grid_thw"] == IntegerArray(shape: shape, values: grid))
        let ids = try golden.inputIDs()
        #expect(prepared.tokenCount == ids.filter { $0 == model.configuration.imageTokenID }.count)
        #expect(prepared.tokenCount == 24)
    }

    @Test("transformers' defaults fill a minimal config (head_dim 128, not hidden_size / heads)")
    func defaults() throws {
        // transformers' own defaults disagree (vision out_hidden_size 3584, text hidden_size 4096): one is given.
        let json = #"{"model_type": "qwen3_vl", "text_config": {"model_type": "qwen3_vl_text", "hidden_size": 3584}, "#
            + #""vision_config": {}}"#
        let c = try JSONFile.decode(Qwen3VLConfiguration.self, from: Data(json.utf8), file: "config.json")
        try c.validate(file: "config.json")
        #expect(c.textConfig.rope.theta == 500_000 && c.textConfig.headDim == 128 && c.textConfig.rope.dimension == 128)
        #expect(c.textConfig.maxPositionEmbeddings == 128_000 && c.textConfig.mropeSection == [24, 20, 20])
        #expect(c.textConfig.qkNorm && c.textConfig.mropeInterleaved && !c.textConfig.qkvBias)
        #expect(c.textConfig.vocabularySize == 151_936 && c.textConfig.intermediateSize == 22_016)
        let v = c.visionConfig
        #expect(v.depth == 27 && v.width == 1152 && v.patchSize == 16 && v.positionGridSide == 48)
        #expect(v.deepstackIndexes == [8, 16, 24] && v.hiddenAct == "gelu_pytorch_tanh" && v.outputSize == 3584)
        // No text_config: Qwen3-VL configs always nest it.
        let flat = #"{"model_type": "qwen3_vl", "vision_config": {}}"#
        #expect(throws: (any Error).self) {
            try JSONFile.decode(Qwen3VLConfiguration.self, from: Data(flat.utf8), file: "config.json")
        }
    }

    @Test("the interleaved rotary: frequencies 1, 4 on the height axis, 2, 5 on the width axis, the rest temporal")
    func interleavedRotary() throws {
        let positions = try PositionIDs(axes: [[100], [200], [300]])
        let rope = RopeParameters(theta: 10000, dimension: 16, originalMaxPositions: 256)
        let tables = positions.rotaryTables(rope, mropeSection: [4, 2, 2], interleaved: true)
        let inv = rope.inverseFrequencies(maxPosition: 300)
        let axis = [100, 200, 300, 100, 200, 300, 100, 100]
        for i in 0..<8 {
            let single = RotaryTables(inverseFrequencies: [inv[i]], positionsPerFrequency: { _, _ in axis[i] },
                                      count: 1)
            #expect(tables.cos[i] == single.cos[0], "frequency \(i)")
        }
    }
}

@Suite("Qwen3-VL DeepStack in every run")
struct Qwen3VLDeepStackRunTests {
    /// A full run's logits, its cached activations and its additions (one BLAS thread for exact comparisons).
    static func fullRun(_ model: Qwen3VLModel) throws -> (ids: [Int], positions: PositionIDs, output: DecoderOutput,
                                                         hooks: HookRun) {
        let (ids, image) = try Qwen3VLFixtures.inputs(model)
        let hooks = HookRun(cache: .patterns([HookName.everyBlock(.residPre), HookName.everyBlock(.rotK),
                                              HookName.everyBlock(.v), "blocks.*.hook_deepstack"]))
        let output = try model.forward(ids: ids, image: image, logits: .last, hooks: hooks)
        return (ids, try model.positions(ids: ids, image: image), output, hooks)
    }

    static func keysValues(_ hooks: HookRun, layers: Int) -> (keys: [Tensor], values: [Tensor]) {
        func flat(_ t: Tensor) -> Tensor { t.reshaped([t.shape[0], t.count / t.shape[0]]) }
        return ((0..<layers).map { flat(hooks.cache[HookName.block($0, .rotK)]!) },
                (0..<layers).map { flat(hooks.cache[HookName.block($0, .v)]!) })
    }

    @Test("the full run returns its additions: the DeepStack features at the image positions, hooked after layer k")
    func additionsOfTheRun() throws {
        let model = try Qwen3VLFixtures.load()
        let (ids, _, output, hooks) = try BLAS.withSingleThread { try Self.fullRun(model) }
        let additions = try #require(output.additions)
        #expect(additions.positions == ids.indices.filter { ids[$0] == model.configuration.imageTokenID })
        #expect(additions.layers.count == 2)
        #expect(hooks.cache["blocks.0.hook_deepstack"] == additions.layers[0])
        #expect(hooks.cache["blocks.1.hook_deepstack"] == additions.layers[1])
        #expect(hooks.cache["blocks.2.hook_deepstack"] == nil)
    }

    @Test("a run resumed at layer 1 adds layer 1's features; without them it differs")
    func resumedRun() throws {
        let model = try Qwen3VLFixtures.load()
        try BLAS.withSingleThread {
            let (_, positions, full, hooks) = try Self.fullRun(model)
            let residual = try #require(hooks.cache[HookName.block(1, .residPre)])
            let resumed = try model.decoder.forward(residual: residual, positions: positions, startLayer: 1,
                                                    logits: .last, additions: full.additions)
            #expect(resumed.logits == full.logits)
            let without = try model.decoder.forward(residual: residual, positions: positions, startLayer: 1,
                                                    logits: .last)
            #expect(without.logits != full.logits)
        }
    }

    @Test("suffix runs from inside and before the image, alone and batched, equal the full run",
          arguments: [20, 40, 60])  // the image holds positions 25…48 of 66
    func suffixAndBatchedRuns(_ p: Int) throws {
        let model = try Qwen3VLFixtures.load()
        let layers = model.decoder.layerCount
        let (ids, positions, full, hooks) = try BLAS.withSingleThread { try Self.fullRun(model) }
        let (keys, values) = Self.keysValues(hooks, layers: layers)
        let embed = try #require(hooks.cache[HookName.block(0, .residPre)])
        let t = ids.count
        let prefix = PrefixKeyValues(prefixOf: keys, values: values, count: p)
        let suffix = try model.decoder.forward(residual: embed.rows(p..<t), positions: positions.slice(p..<t),
                                               logits: .last, prefix: prefix, additions: full.additions)
        let reference = try #require(full.logits)
        let tolerance = Tolerance(atol: 1e-5, rtol: 1e-5, nmse: 1e-10, reason: "BLAS row counts differ")
        let alone = compare(try #require(suffix.logits), to: reference, tolerance: tolerance, label: "suffix \(p)")
        #expect(alone.passed, "\(alone)")
        // A batch of the full run and the suffix run, each with its additions.
        let batch = try model.decoder.forward(batch: [
            DecoderRun(residual: embed, positions: positions, additions: full.additions),
            DecoderRun(residual: embed.rows(p..<t), positions: positions.slice(p..<t), prefix: prefix,
                       additions: full.additions),
        ], startLayer: 0)
        for (i, logits) in batch.enumerated() {
            let report = compare(Tensor(shape: [1, logits.count], scalars: logits), to: reference,
                                 tolerance: tolerance, label: "batched run \(i), suffix from \(p)")
            #expect(report.passed, "\(report)")
        }
        // A continuation: the rows from p continue a run over the first p rows.
        let continued = try model.decoder.forward(batch: [
            DecoderRun(residual: embed.rows(0..<p), positions: positions.slice(0..<p), additions: full.additions),
            DecoderRun(residual: embed.rows(p..<t), positions: positions.slice(p..<t), continues: 0,
                       additions: full.additions),
        ], startLayer: 0)
        let report = compare(Tensor(shape: [1, continued[1].count], scalars: continued[1]), to: reference,
                             tolerance: tolerance, label: "continuation from \(p)")
        #expect(report.passed, "\(report)")
    }

    @Test("an edit of blocks.0.hook_deepstack changes what is added")
    func editableAdditions() throws {
        let model = try Qwen3VLFixtures.load()
        let (ids, image) = try Qwen3VLFixtures.inputs(model)
        let hooks = HookRun(cache: .names(["blocks.1.hook_resid_pre", "blocks.0.hook_resid_post"]))
        hooks.addEdit(at: "blocks.0.hook_deepstack") { t, _ in t = Tensor(zeros: t.shape) }
        _ = try model.forward(ids: ids, image: image, logits: .last, hooks: hooks)
        #expect(hooks.cache["blocks.1.hook_resid_pre"] == hooks.cache["blocks.0.hook_resid_post"])
    }
}

@Suite("Qwen3-VL bad inputs")
struct Qwen3VLBadInputTests {
    func refused(_ edit: (inout [String: Any]) -> Void) throws -> String {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel(Qwen3VLFixtures.id)
        try editConfig(folder, edit)
        let error = #expect(throws: (any Error).self) { try ModelRegistry.load(folder) }
        let message = "\(String(describing: error))"
        #expect(message.contains("config.json"), "\(message)")
        return message
    }

    static func section(_ key: String, _ c: inout [String: Any], _ edit: (inout [String: Any]) -> Void) {
        var s = c[key] as! [String: Any]
        edit(&s)
        c[key] = s
    }

    @Test("a text_config or vision_config of another family")
    func otherFamiliesSections() throws {
        let text = try refused { c in Self.section("text_config", &c) { $0["model_type"] = "qwen2_vl_text" } }
        #expect(text.contains("text_config.model_type") && text.contains("qwen2_vl_text"), "\(text)")
        let vision = try refused { c in Self.section("vision_config", &c) { $0["model_type"] = "qwen2_vl" } }
        #expect(vision.contains("qwen2_vl") && vision.contains("qwen3_vl_vision"), "\(vision)")
    }

    @Test("deepstack_visual_indexes outside the vision depth, repeated, or more than the text layers")
    func badDeepStackIndexes() throws {
        let outside = try refused { c in Self.section("vision_config", &c) { $0["deepstack_visual_indexes"] = [0, 4] } }
        #expect(outside.contains("vision_config.deepstack_visual_indexes holds 4") && outside.contains("depth"),
                "\(outside)")
        let twice = try refused { c in Self.section("vision_config", &c) { $0["deepstack_visual_indexes"] = [2, 2] } }
        #expect(twice.contains("deepstack_visual_indexes holds 2 twice"), "\(twice)")
        let many = try refused { c in
            Self.section("vision_config", &c) { $0["deepstack_visual_indexes"] = [0, 1, 2, 3] }
            Self.section("text_config", &c) { $0["num_hidden_layers"] = 3 }
        }
        #expect(many.contains("text_config.num_hidden_layers"), "\(many)")
    }

    @Test("a missing or misshapen DeepStack merger weight is named")
    func deepStackWeights() throws {
        for (name, replacement) in [("model.visual.deepstack_merger_list.1.linear_fc2.weight", nil as Tensor?),
                                    ("model.visual.deepstack_merger_list.0.norm.weight", Tensor(zeros: [32]))] {
            let tmp = try TemporaryFolder()
            let folder = try tmp.copyModel(Qwen3VLFixtures.id)
            var tensors = try floatTensors(of: folder)
            tensors[name] = replacement
            try SafetensorsWriter.write(floats: tensors, dtype: .float32,
                                        to: folder.appendingPathComponent("model.safetensors"))
            let error = #expect(throws: (any Error).self) { try ModelRegistry.load(folder) }
            let message = "\(String(describing: error))"
            #expect(message.contains(name) && message.contains("tiny-qwen3-vl"), "\(message)")
            if replacement != nil { #expect(message.contains("128"), "\(message)") }
        }
    }

    @Test("an image-token count that disagrees with the grid")
    func imageTokenCount() throws {
        let model = try Qwen3VLFixtures.load()
        let (ids, image) = try Qwen3VLFixtures.inputs(model)
        var fewer = ids
        fewer.remove(at: try #require(ids.firstIndex(of: model.configuration.imageTokenID)))
        let error = #expect(throws: ModelError.self) { try model.forward(ids: fewer, image: image) }
        #expect(error?.description.contains("23") == true && error?.description.contains("24") == true,
                "\(String(describing: error))")
        #expect(throws: ModelError.self) { try model.forward(ids: ids, image: nil) }
    }
}
