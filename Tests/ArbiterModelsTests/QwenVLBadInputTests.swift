// Qwen-VL inputs and configs that must be refused with a clear message.
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

@Suite("Qwen-VL bad inputs")
struct QwenVLBadInputTests {
    static func inputs() throws -> (ids: [Int], pixels: Tensor, grids: [VisionGrid]) {
        let golden = try QwenVLFixtures.golden("tiny-qwen2_5-vl")
        return (try golden.inputIDs(), try golden.tensor("pixel_values"), try QwenVLFixtures.grids(golden))
    }

    @Test("a grid that disagrees with the number of image tokens")
    func gridTokenMismatch() throws {
        let model = try QwenVLFixtures.load("tiny-qwen2_5-vl")
        let (ids, pixels, grids) = try Self.inputs()
        var fewer = ids
        fewer.remove(at: try #require(ids.firstIndex(of: model.configuration.imageTokenID)))
        let error = #expect(throws: ModelError.self) { try model.forward(ids: fewer, pixelValues: pixels, grids: grids) }
        #expect(error?.description.contains("23") == true && error?.description.contains("24") == true,
                "\(String(describing: error))")
        // A grid whose patch count differs from the pixel rows.
        let wrong = [VisionGrid(t: 1, h: 8, w: 8)]
        #expect(throws: ModelError.self) { try model.imageFeatures(pixelValues: pixels, grids: wrong) }
        // Odd grid sides cannot be merged 2x2.
        #expect(throws: ModelError.self) { try model.imageFeatures(pixelValues: pixels, grids: [VisionGrid(t: 1, h: 3, w: 32)]) }
        // Two grids for one run of image tokens, and image tokens without an image.
        #expect(throws: ModelError.self) { try model.positionIDs(ids: ids, grids: grids + grids) }
        #expect(throws: ModelError.self) { try model.forward(ids: ids, pixelValues: nil, grids: []) }
        #expect(throws: ModelError.self) { try model.positionIDs(ids: ids, grids: []) }
        #expect(throws: ModelError.self) { try model.positionIDs(ids: ids, grids: [VisionGrid(t: -1, h: 8, w: 12)]) }
        #expect(throws: ModelError.self) { try model.positionIDs(ids: ids, grids: [VisionGrid(t: 1, h: 7, w: 12)]) }
    }

    @Test("an mrope_section that does not sum to half the head dimension")
    func badMropeSection() throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-qwen2_5-vl")
        try editConfig(folder) { config in
            var text = config["text_config"] as! [String: Any]
            var rope = text["rope_parameters"] as! [String: Any]
            rope["mrope_section"] = [2, 3, 4]
            text["rope_parameters"] = rope
            config["text_config"] = text
        }
        // Refused while decoding, where the key path is known.
        let error = #expect(throws: FormatError.self) { try ModelRegistry.load(folder) }
        #expect(error?.description.contains("text_config.rope_parameters.mrope_section") == true,
                "\(String(describing: error))")
        #expect(error?.description.contains("config.json") == true)
    }

    @Test("an unknown vision_config.model_type")
    func unknownVisionType() throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-qwen2-vl")
        try editConfig(folder) { config in
            var vision = config["vision_config"] as! [String: Any]
            vision["model_type"] = "siglip_vision_model"
            config["vision_config"] = vision
        }
        let error = #expect(throws: ModelError.self) { try ModelRegistry.load(folder) }
        #expect(error?.description.contains("siglip_vision_model") == true, "\(String(describing: error))")
        #expect(error?.description.contains("qwen2_vl_vision") == true)
    }

    @Test("vision configs that cannot run: no window, head dimension not a multiple of 4, merger width mismatch")
    func badVisionConfig() throws {
        let edits: [(String, (inout [String: Any]) -> Void)] = [
            ("window_size", { c in var v = c["vision_config"] as! [String: Any]; v["window_size"] = 4; c["vision_config"] = v }),
            ("multiple of 4", { c in var v = c["vision_config"] as! [String: Any]; v["num_heads"] = 16; c["vision_config"] = v }),
            ("fullatt_block_indexes", { c in var v = c["vision_config"] as! [String: Any]; v["fullatt_block_indexes"] = [1, 9]; c["vision_config"] = v }),
            ("hidden_size", { c in var v = c["vision_config"] as! [String: Any]; v["out_hidden_size"] = 32; c["vision_config"] = v }),
        ]
        for (needle, edit) in edits {
            let tmp = try TemporaryFolder()
            let folder = try tmp.copyModel("tiny-qwen2_5-vl")
            try editConfig(folder, edit)
            let error = #expect(throws: ModelError.self) { try ModelRegistry.load(folder) }
            #expect(error?.description.contains(needle) == true, "\(needle): \(String(describing: error))")
        }
    }

    @Test("a missing or misshapen weight is named")
    func missingWeight() throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-qwen2-vl")
        var tensors = try floatTensors(of: folder)
        tensors["visual.merger.ln_q.bias"] = nil
        try SafetensorsWriter.write(floats: tensors, dtype: .float32, to: folder.appendingPathComponent("model.safetensors"))
        let error = #expect(throws: (any Error).self) { try ModelRegistry.load(folder) }
        #expect("\(String(describing: error))".contains("merger.ln_q.bias"), "\(String(describing: error))")
    }
}
