// InternVL: its image processor against transformers (tiling and pixels), both weight-name layouts, the paper's
// prompt layout on it, and its bad input named by file and field. Activation parity at every stored hook is
// GoldenParityTests' (tiny-internvl/image-prompt.h5).
import ArbiterFormats
@testable import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

@Suite("InternVL")
struct InternVLTests {
    static let image = Repository.goldenData.appendingPathComponent("images/internvl-test-45x29.png")
    static var golden: GoldenActivations {
        get throws {
            try GoldenActivations(url: Repository.activations.appendingPathComponent("tiny-internvl/image-prompt.h5"))
        }
    }

    @Test("the processor tiles the test image as transformers does: 3×2 tiles and the thumbnail, pixels bit for bit")
    func processorParity() throws {
        let processor = try InternVLImageProcessor(
            contentsOf: Repository.model("tiny-internvl").appendingPathComponent("preprocessor_config.json"))
        let rgb = try PNGImage.read(url: Self.image)
        let pixels = try processor.preprocess(rgb)
        let reference = try Self.golden.tensor("pixel_values")
        #expect(pixels.shape == [7, 3, 16, 16])
        #expect(pixels.shape == reference.shape)
        let differing = zip(pixels.scalars, reference.scalars).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differing == 0, "\(differing) of \(pixels.count) pixel values differ from GotOcr2ImageProcessorPil")
        #expect(processor.tileCount(height: rgb.height, width: rgb.width) == 7)
    }

    /// get_optimal_tiled_canvas of transformers 5.24 on these (height, width, tile, min, max), ties included
    /// (2000×2000 → 3×3 and 39×47 → 2×2 are decided by the area rule).
    static let canvases: [((Int, Int, Int, Int, Int), (Int, Int))] = [
        ((29, 45, 16, 1, 6), (3, 2)), ((480, 640, 448, 1, 12), (4, 3)), ((448, 448, 448, 1, 12), (1, 1)),
        ((100, 1000, 448, 1, 12), (10, 1)), ((1000, 100, 448, 1, 12), (1, 10)), ((300, 600, 448, 1, 12), (2, 1)),
        ((600, 300, 448, 1, 12), (1, 2)), ((224, 448, 448, 1, 12), (2, 1)), ((900, 1600, 448, 1, 12), (4, 2)),
        ((39, 47, 16, 1, 6), (2, 2)), ((16, 16, 16, 2, 6), (2, 2)), ((300, 600, 448, 1, 1), (1, 1)),
        ((10, 10, 448, 1, 12), (1, 1)), ((2000, 2000, 448, 1, 12), (3, 3)), ((448, 1344, 448, 1, 12), (3, 1)),
    ]

    @Test("the tile canvas is transformers' get_optimal_tiled_canvas", arguments: canvases.indices)
    func canvas(_ index: Int) throws {
        let ((h, w, tile, low, high), expected) = Self.canvases[index]
        let json = """
            {"image_processor_type": "GotOcr2ImageProcessor", "size": {"height": \(tile), "width": \(tile)},
             "min_patches": \(low), "max_patches": \(high)}
            """
        let config = try JSONFile.decode(InternVLImageProcessorConfig.self, from: Data(json.utf8), file: "test.json")
        let grid = try InternVLImageProcessor(config: config).canvas(height: h, width: w)
        #expect(grid.columns == expected.0 && grid.rows == expected.1, "\(h)×\(w): got \(grid), want \(expected)")
    }

    @Test("transformers' layout and OpenGVLab's original names (fused qkv, mlp1, ls1…) load to identical logits")
    func originalLayout() throws {
        let golden = try Self.golden
        let ids = try golden.inputIDs()
        let saved = try ModelRegistry.load(Repository.model("tiny-internvl"))
        let original = try ModelRegistry.load(Repository.model("tiny-internvl-hub"))
        let image = try #require(try saved.images?.goldenImage(golden))
        // OpenBLAS's last bits depend on its (process-wide) thread count: pinned for the pair of runs.
        let (a, b) = try BLAS.withSingleThread {
            (try saved.forward(ids: ids, image: image).logits, try original.forward(ids: ids, image: image).logits)
        }
        let differing = zip(try #require(a).scalars, try #require(b).scalars).filter { $0 != $1 }.count
        #expect(a?.shape == b?.shape && differing == 0, "\(differing) logits differ between the layouts")
    }

    @Test("the default layout builds the paper's conflict prompt: <img>, one context token per tile feature, </img>")
    func defaultLayout() throws {
        let session = try ModelSession(directory: Repository.model("tiny-internvl"))
        #expect(session.layout.name == "internvl")
        let rgb = try PNGImage.read(url: Self.image)
        let input = try session.prepare(PromptFields(context: "The dog is brown.", instruction: "Rely on the image.",
                                                     question: "What color is the dog?", constraint: "The answer is"),
                                        image: rgb)
        let imageID = try #require(session.model.images?.imageToken.id)
        #expect(session.tokenizer.id(of: "<IMG_CONTEXT>") == imageID)
        #expect(input.ids.filter { $0 == imageID }.count == 28)
        let first = try #require(input.ids.firstIndex(of: imageID))
        #expect(input.ids[first - 1] == session.tokenizer.id(of: "<img>"))
        #expect(input.ids[first + 28] == session.tokenizer.id(of: "</img>"))
        for span in ["system", "image", "context", "instruction", "question", "constraint"] {
            #expect(input.spans.names.contains(span), "span \(span) missing")
        }
        // The session's run is the golden pixels' run: the processor is the one transformers ran.
        let logits = try #require(try session.model.forward(ids: input.ids, image: input.image).logits)
        let finite = logits.scalars.allSatisfy { $0.isFinite }
        #expect(finite)
        let reference = try Self.golden.tensor("pixel_values")
        #expect(input.image?.pixelValues.scalars == reference.scalars)
    }

    // MARK: - Bad input

    @Test("a sub-config of another family, a pixel shuffle that does not fit, a wrong image_seq_length are named",
          arguments: [
              (["vision_config", "model_type"], "\"clip_vision_model\"", "vision_config of internvl"),
              (["text_config", "model_type"], "\"qwen2_vl\"", "text_config of internvl"),
              (["image_seq_length"], "16", "image_seq_length 16"),
              (["downsample_ratio"], "0.3", "downsample_ratio 0.3"),
              (["vision_config", "patch_size"], "16", "a multiple of 1/downsample_ratio"),
              (["vision_feature_select_strategy"], "\"full\"", "vision_feature_select_strategy 'full'"),
              (["vision_config", "norm_type"], "\"batch_norm\"", "norm_type"),
          ])
    func badConfig(_ path: [String], _ literal: String, _ phrase: String) throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-internvl")
        try editConfig(folder, path: path, literal: literal)
        let error = #expect(throws: (any Error).self) { try ModelRegistry.load(folder) }
        let text = String(describing: error.map { "\($0)" } ?? "")
        #expect(text.contains(phrase) && text.contains("config.json"), "\(text)")
    }

    @Test("tiling options the processor does not support, and a tile size other than the tower's, are named",
          arguments: [
              ("min_patches", "0", "min_patches 0"),
              ("max_patches", "100", "max_patches 100"),
              ("size", "{\"shortest_edge\": 16}", "size"),
              ("size", "{\"height\": 32, \"width\": 32}", "vision_config.image_size is 16×16"),
              ("image_processor_type", "\"CLIPImageProcessor\"", "'CLIPImageProcessor' is not supported"),
              ("do_resize", "false", "do_resize is false"),
          ])
    func badProcessor(_ key: String, _ literal: String, _ phrase: String) throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-internvl")
        let url = folder.appendingPathComponent("preprocessor_config.json")
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        object[key] = try JSONSerialization.jsonObject(with: Data(literal.utf8), options: [.fragmentsAllowed])
        try JSONSerialization.data(withJSONObject: object).write(to: url)
        let error = #expect(throws: (any Error).self) { try ModelSession(directory: folder) }
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains(phrase) && text.contains("preprocessor_config.json"), "\(text)")
    }

    @Test("an image-token count that disagrees with the tiles is refused before the tower runs")
    func tokenCountMismatch() throws {
        let golden = try Self.golden
        let model = try ModelRegistry.load(Repository.model("tiny-internvl"))
        var ids = try golden.inputIDs()
        let image = try #require(try model.images?.goldenImage(golden))
        let imageID = try #require(model.images?.imageToken.id)
        ids.remove(at: try #require(ids.firstIndex(of: imageID)))
        let hooks = HookRun(cache: .names(["vision.hook_embed"]))
        let error = #expect(throws: ModelError.self) { try model.forward(ids: ids, image: image, hooks: hooks) }
        let message = error.map { "\($0)" } ?? ""
        #expect(message.contains("27 image tokens (id \(imageID)) but the image's 7 tiles take 28"), "\(message)")
        #expect(hooks.cache.isEmpty, "the tower ran before the mismatch was found")
        // Tiles of another size than the tower's.
        let small = PreparedImage(pixelValues: Tensor(zeros: [1, 3, 8, 8]), tokenCount: 4)
        #expect(throws: ModelError.self) {
            try model.forward(ids: [1, imageID, imageID, imageID, imageID], image: small)
        }
    }

    @Test("a fused qkv of the wrong shape and a checkpoint mixing both layouts are named")
    func badOriginalWeights() throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-internvl-hub")
        var tensors = try floatTensors(of: folder)
        let name = "vision_model.encoder.layers.1.attn.qkv.weight"
        tensors[name] = Tensor(zeros: [90, 32])
        try SafetensorsWriter.write(floats: tensors, dtype: .float32,
                                    to: folder.appendingPathComponent("model.safetensors"))
        let error = #expect(throws: FormatError.self) { try ModelRegistry.load(folder) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("'\(name)' has shape [90, 32]"))

        let mixed = try tmp.copyModel("tiny-internvl-hub", as: "mixed")
        var both = try floatTensors(of: mixed)
        both["vision_tower.encoder.layer.0.lambda_1"] = both["vision_model.encoder.layers.0.ls1"]
        try SafetensorsWriter.write(floats: both, dtype: .float32,
                                    to: mixed.appendingPathComponent("model.safetensors"))
        let clash = #expect(throws: FormatError.self) { try ModelRegistry.load(mixed) }
        #expect("\(clash.map { "\($0)" } ?? "")".contains("mixes two weight-name layouts"))
    }
}
