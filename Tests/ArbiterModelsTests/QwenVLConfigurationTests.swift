// Qwen2-VL / Qwen2.5-VL config.json in the shapes found in the wild (Qwen's hub files: flat, transformers 4 keys).
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

@Suite("Qwen-VL configuration")
struct QwenVLConfigurationTests {
    // Qwen/Qwen2.5-VL-3B-Instruct config.json (hub, transformers 4 style).
    static let qwen25_3B = #"""
    {"architectures": ["Qwen2_5_VLForConditionalGeneration"], "attention_dropout": 0.0, "bos_token_id": 151643,
     "eos_token_id": 151645, "vision_start_token_id": 151652, "vision_end_token_id": 151653, "vision_token_id": 151654,
     "image_token_id": 151655, "video_token_id": 151656, "hidden_act": "silu", "hidden_size": 2048,
     "initializer_range": 0.02, "intermediate_size": 11008, "max_position_embeddings": 128000, "max_window_layers": 70,
     "model_type": "qwen2_5_vl", "num_attention_heads": 16, "num_hidden_layers": 36, "num_key_value_heads": 2,
     "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
     "torch_dtype": "bfloat16", "transformers_version": "4.41.2", "use_cache": true, "use_sliding_window": false,
     "vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280, "intermediate_size": 3420,
       "num_heads": 16, "in_chans": 3, "out_hidden_size": 2048, "patch_size": 14, "spatial_merge_size": 2,
       "spatial_patch_size": 14, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31],
       "tokens_per_second": 2, "temporal_patch_size": 2},
     "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "vocab_size": 151936}
    """#

    // Qwen/Qwen2-VL-2B-Instruct config.json (hub).
    static let qwen2_2B = #"""
    {"architectures": ["Qwen2VLForConditionalGeneration"], "attention_dropout": 0.0, "bos_token_id": 151643,
     "eos_token_id": 151645, "vision_start_token_id": 151652, "vision_end_token_id": 151653, "vision_token_id": 151654,
     "image_token_id": 151655, "video_token_id": 151656, "hidden_act": "silu", "hidden_size": 1536,
     "initializer_range": 0.02, "intermediate_size": 8960, "max_position_embeddings": 32768, "max_window_layers": 28,
     "model_type": "qwen2_vl", "num_attention_heads": 12, "num_hidden_layers": 28, "num_key_value_heads": 2,
     "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
     "torch_dtype": "bfloat16", "transformers_version": "4.41.2", "use_cache": true, "use_sliding_window": false,
     "vision_config": {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16, "in_chans": 3,
       "hidden_size": 1536, "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14,
       "temporal_patch_size": 2},
     "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "vocab_size": 151936}
    """#

    static func decode(_ json: String) throws -> QwenVLConfiguration {
        try JSONFile.decode(QwenVLConfiguration.self, from: Data(json.utf8), file: "config.json")
    }

    @Test("Qwen2.5-VL-3B's flat hub config")
    func qwen25Hub() throws {
        let c = try Self.decode(Self.qwen25_3B)
        try c.validate(file: "config.json")
        #expect(c.kind == .qwen2_5VL)
        #expect(c.textConfig.hiddenSize == 2048 && c.textConfig.layers == 36 && c.textConfig.keyValueHeads == 2)
        #expect(c.textConfig.headDim == 128 && c.textConfig.mropeSection == [16, 24, 24])
        #expect(c.textConfig.rope.theta == 1_000_000 && c.textConfig.rope.type == .default)
        #expect(c.textConfig.qkvBias && !c.textConfig.outputBias && c.textConfig.tieWordEmbeddings)
        let v = c.visionConfig
        #expect(v.width == 1280 && v.outputSize == 2048 && v.intermediateSize == 3420 && v.heads == 16 && v.headDim == 80)
        #expect(v.inChannels == 3 && v.patchSize == 14 && v.mergedWindowSide == 4 && v.fullAttentionBlocks == [7, 15, 23, 31])
        #expect(v.hiddenAct == "silu" && v.patchFeatures == 3 * 2 * 14 * 14)
        #expect(c.imageTokenID == 151655 && c.videoTokenID == 151656)
    }

    @Test("Qwen2-VL-2B's flat hub config: embed_dim is the tower width, hidden_size the merger output")
    func qwen2Hub() throws {
        let c = try Self.decode(Self.qwen2_2B)
        try c.validate(file: "config.json")
        #expect(c.kind == .qwen2VL)
        #expect(c.textConfig.hiddenSize == 1536 && c.textConfig.headDim == 128)
        let v = c.visionConfig
        #expect(v.width == 1280 && v.outputSize == 1536 && v.intermediateSize == 5120 && v.hiddenAct == "quick_gelu")
        #expect(v.fullAttentionBlocks == Array(0..<32))
    }

    @Test("the transformers-5 nested config and the flat copy decode to the same configuration")
    func nestedAndFlat() throws {
        let nested = try QwenVLFixtures.load("tiny-qwen2_5-vl").configuration
        let flat = try QwenVLFixtures.load("tiny-qwen2_5-vl-t5").configuration
        #expect(nested.textConfig == flat.textConfig)
        var a = nested.visionConfig, b = flat.visionConfig
        #expect(a.modelType == "qwen2_5_vl_vision" && b.modelType == "qwen2_5_vl")
        a.modelType = nil; b.modelType = nil
        #expect(a == b)
        #expect(nested.imageTokenID == flat.imageTokenID)
    }

    @Test("no mrope_section means transformers' default [16, 24, 24], which must fit the head dimension")
    func defaultSection() throws {
        let json = Self.qwen2_2B.replacingOccurrences(of: #""rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "#, with: "")
        let c = try Self.decode(json)
        #expect(c.textConfig.mropeSection == [16, 24, 24])
        try c.validate(file: "config.json")
        let small = json.replacingOccurrences(of: #""num_attention_heads": 12"#, with: #""num_attention_heads": 24"#)
        let error = #expect(throws: ModelError.self) { try Self.decode(small).validate(file: "config.json") }
        #expect(error?.description.contains("mrope_section") == true, "\(String(describing: error))")
    }

    @Test("an unsupported model_type or vision rope type is a decoding error")
    func badTypes() throws {
        #expect(throws: (any Error).self) {
            try Self.decode(Self.qwen2_2B.replacingOccurrences(of: #""model_type": "qwen2_vl""#, with: #""model_type": "qwen3_vl""#))
        }
        let axial = Self.qwen25_3B.replacingOccurrences(of: #""depth": 32,"#, with: #""depth": 32, "rope_parameters": {"rope_type": "yarn", "rope_theta": 10000},"#)
        #expect(throws: (any Error).self) { try Self.decode(axial) }
    }

    @Test("mrope_section: negative entries (a crash on Qwen2.5-VL before) and sums that wrap around are refused",
          arguments: [
        ("tiny-qwen2_5-vl", "[-2, 5, 5]", "entries must not be negative, found -2"),
        ("tiny-qwen2_5-vl", "[9223372036854775807, 9223372036854775807, 10]", "sums to more than"),
        ("tiny-qwen2_5-vl-t5", "[-2, 5, 5]", "entries must not be negative, found -2"),
        ("tiny-qwen2-vl", "[0, -1, 9]", "entries must not be negative, found -1"),
    ])
    func mropeSection(_ model: String, _ section: String, _ phrase: String) throws {
        let flat = model.hasSuffix("-t5")
        let path = flat ? ["rope_scaling", "mrope_section"] : ["text_config", "rope_parameters", "mrope_section"]
        let error = try loadError(model, editing: path, to: section)
        let text = (error as? FormatError)?.description ?? "not a FormatError: \(String(describing: error))"
        let field = path.joined(separator: ".")
        #expect(text.contains("/config.json: malformed: field \(field): ") && text.contains(phrase), "\(text)")
    }

    @Test("vision_config and token ids: range and overflow checks name config.json and the field", arguments: [
        ("tiny-qwen2-vl", ["vision_config", "mlp_ratio"], "0", "field vision_config.mlp_ratio: must be positive"),
        ("tiny-qwen2-vl", ["vision_config", "mlp_ratio"], "1e300",
         "vision_config.embed_dim × mlp_ratio × embed_dim overflows"),
        ("tiny-qwen2-vl", ["vision_config", "patch_size"], "4294967296",
         "vision_config.in_channels × temporal_patch_size × patch_size² overflows"),
        ("tiny-qwen2-vl", ["vision_config", "depth"], "-4", "vision_config.depth must be positive, got -4"),
        ("tiny-qwen2_5-vl", ["video_token_id"], "99999", "video_token_id 99999 outside the vocabulary"),
        ("tiny-qwen2_5-vl", ["vision_start_token_id"], "-1", "vision_start_token_id -1 outside the vocabulary"),
        ("tiny-qwen2_5-vl", ["vision_config", "out_hidden_size"], "0",
         "vision_config.out_hidden_size must be positive"),
        ("tiny-qwen2_5-vl", ["text_config", "num_key_value_heads"], "0",
         "text_config.num_key_value_heads must be positive"),
    ])
    func ranges(_ model: String, _ path: [String], _ literal: String, _ phrase: String) throws {
        let text = try loadError(model, editing: path, to: literal).map { "\($0)" } ?? "no error"
        #expect(text.contains("/config.json: ") && text.contains(phrase), "\(text)")
    }

    @Test("a vision tower too large for memory is refused from config.json (Qwen-VL had no resource guard)")
    func tooLarge() throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-qwen2_5-vl")
        try editConfig(folder, path: ["vision_config", "depth"], literal: "1000000000")
        try editConfig(folder, path: ["vision_config", "fullatt_block_indexes"], literal: "[0]")
        let error = #expect(throws: FormatError.self) { try ModelRegistry.load(folder) }
        #expect(error?.kind == .tooLarge && error?.file.hasSuffix("/config.json") == true)
        #expect(error?.problem.contains("1000000000 vision blocks (vision_config.depth)") == true,
                "\(String(describing: error))")
    }

    @Test("every hook is visited once, in the order hookNames lists them")
    func hookOrder() throws {
        for id in QwenVLFixtures.models {
            let golden = try QwenVLFixtures.golden(id)
            let model = try QwenVLFixtures.load(id)
            let hooks = HookRun(cache: .all)
            hooks.recordsVisits = true
            _ = try model.forward(ids: try golden.inputIDs(), pixelValues: try golden.tensor("pixel_values"),
                                  grids: try QwenVLFixtures.grids(golden), hooks: hooks)
            #expect(hooks.visited == model.hookNames, "\(id)")
        }
    }
}
