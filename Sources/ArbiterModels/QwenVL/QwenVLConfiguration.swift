// Configuration of Qwen2-VL and Qwen2.5-VL checkpoints, mirroring
// transformers/models/qwen2_vl/configuration_qwen2_vl.py
// and qwen2_5_vl/configuration_qwen2_5_vl.py (transformers 5.24), in both shapes found in the wild:
// transformers 5 (`text_config` nested, `rope_parameters`) and Qwen's hub files (text settings at the top level,
// `rope_theta` + `rope_scaling: {type: mrope, mrope_section}`, vision `in_chans`).
import ArbiterTensor
import Foundation

/// Which Qwen vision tower: Qwen2-VL (LayerNorm blocks, fc1/fc2 MLP, full attention everywhere) or
/// Qwen2.5-VL (RMSNorm blocks, SwiGLU MLP, windowed attention except in `fullatt_block_indexes`).
public enum QwenVisionKind: String, Sendable, Equatable {
    case qwen2VL = "qwen2_vl"
    case qwen2_5VL = "qwen2_5_vl"
}

/// `vision_config` of a Qwen2-VL / Qwen2.5-VL config. Field meanings differ between the two in the JSON
/// (Qwen2-VL: `embed_dim` is the tower width and `hidden_size` the language model's; Qwen2.5-VL: `hidden_size`
/// is the tower width and `out_hidden_size` the language model's); here they are normalized.
public struct QwenVisionConfiguration: Sendable, Equatable {
    public var kind: QwenVisionKind
    public var modelType: String?
    public var depth: Int
    /// Width of the tower's residual stream.
    public var width: Int
    /// Output width of the patch merger (= the language model's hidden size).
    public var outputSize: Int
    public var intermediateSize: Int
    public var heads: Int
    public var inChannels: Int
    public var patchSize: Int
    public var spatialMergeSize: Int
    public var temporalPatchSize: Int
    public var hiddenAct: String
    /// Qwen2.5-VL: window side in pixels, and the blocks that attend over the whole image.
    public var windowSize: Int
    /// `fullatt_block_indexes` (Qwen2.5-VL only).
    var fullAttentionIndexes: [Int]
    /// The blocks that attend over the whole image: every one for Qwen2-VL (listed on use, so that a huge
    /// `depth` allocates nothing before the resource guard has seen it).
    public var fullAttentionBlocks: [Int] { kind == .qwen2VL ? Array(0..<max(depth, 0)) : fullAttentionIndexes }
    public var ropeTheta: Double

    /// Memberwise initializer for tests.
    public init(kind: QwenVisionKind, depth: Int, width: Int, outputSize: Int, intermediateSize: Int, heads: Int,
                inChannels: Int = 3, patchSize: Int = 14, spatialMergeSize: Int = 2, temporalPatchSize: Int = 2,
                hiddenAct: String? = nil, windowSize: Int = 112, fullAttentionBlocks: [Int] = [],
                ropeTheta: Double = 10000, modelType: String? = nil) {
        self.kind = kind
        self.modelType = modelType
        self.depth = depth
        self.width = width
        self.outputSize = outputSize
        self.intermediateSize = intermediateSize
        self.heads = heads
        self.inChannels = inChannels
        self.patchSize = patchSize
        self.spatialMergeSize = spatialMergeSize
        self.temporalPatchSize = temporalPatchSize
        self.hiddenAct = hiddenAct ?? (kind == .qwen2VL ? "quick_gelu" : "silu")
        self.windowSize = windowSize
        self.fullAttentionIndexes = fullAttentionBlocks
        self.ropeTheta = ropeTheta
    }

    /// Decodes `vision_config` for a model of `kind` (transformers' defaults for missing keys).
    init(from c: KeyedDecodingContainer<AnyKey>, kind: QwenVisionKind) throws {
        func int(_ key: String) throws -> Int? { try c.decodeIfPresent(Int.self, forKey: AnyKey(key)) }
        self.kind = kind
        modelType = try c.decodeIfPresent(String.self, forKey: AnyKey("model_type"))
        depth = try int("depth") ?? 32
        heads = try int("num_heads") ?? 16
        inChannels = try int("in_channels") ?? int("in_chans") ?? 3
        patchSize = try int("patch_size") ?? int("spatial_patch_size") ?? 14
        spatialMergeSize = try int("spatial_merge_size") ?? 2
        temporalPatchSize = try int("temporal_patch_size") ?? 2
        switch kind {
        case .qwen2VL:
            width = try int("embed_dim") ?? 1280
            outputSize = try int("hidden_size") ?? 3584
            let ratio = try c.decodeIfPresent(Double.self, forKey: AnyKey("mlp_ratio")) ?? 4
            guard ratio > 0 else {
                throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [AnyKey("mlp_ratio")],
                                                        debugDescription: "must be positive, found \(ratio)"))
            }
            intermediateSize = Checked.truncating(Double(width) * ratio)
            hiddenAct = try c.decodeIfPresent(String.self, forKey: AnyKey("hidden_act")) ?? "quick_gelu"
            windowSize = 0
            fullAttentionIndexes = []
        case .qwen2_5VL:
            width = try int("hidden_size") ?? 3584
            outputSize = try int("out_hidden_size") ?? 3584
            intermediateSize = try int("intermediate_size") ?? 3420
            hiddenAct = try c.decodeIfPresent(String.self, forKey: AnyKey("hidden_act")) ?? "silu"
            windowSize = try int("window_size") ?? 112
            fullAttentionIndexes = try c.decodeIfPresent([Int].self, forKey: AnyKey("fullatt_block_indexes"))
                ?? [7, 15, 23, 31]
        }
        let rope = try c.decodeIfPresent([String: JSONScalar].self, forKey: AnyKey("rope_parameters"))
        ropeTheta = rope?["rope_theta"]?.double ?? 10000
        if let type = rope?["rope_type"]?.string, type != "axial" {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [AnyKey("rope_parameters")],
                                                    debugDescription: "the vision rotary supports only rope_type "
                                                                      + "'axial', got '\(type)'"))
        }
    }

    public var headDim: Int { heads > 0 ? width / heads : 0 }
    /// Merged patches per side of a window (`window_size // spatial_merge_size // patch_size`).
    public var mergedWindowSide: Int { windowSize / spatialMergeSize / patchSize }
    /// Input features of one patch: channels · temporal · patch².
    public var patchFeatures: Int { inChannels * temporalPatchSize * patchSize * patchSize }

    /// Names of the fields in config.json, which differ between the two kinds (see the type's comment).
    var widthField: String { kind == .qwen2VL ? "embed_dim" : "hidden_size" }
    var outputField: String { kind == .qwen2VL ? "hidden_size" : "out_hidden_size" }
    var intermediateField: String { kind == .qwen2VL ? "mlp_ratio × embed_dim" : "intermediate_size" }

    public func validate(file: String) throws {
        func fail(_ p: String) -> ModelError { .invalidConfiguration(file: file, problem: "vision_config.\(p)") }
        let accepted: [String] = kind == .qwen2VL ? ["qwen2_vl_vision", "qwen2_vl"] : ["qwen2_5_vl_vision",
                                                                                       "qwen2_5_vl"]
        if let modelType, !accepted.contains(modelType) {
            let supported = accepted.map { "\($0) (vision_config of \(kind.rawValue))" }
            throw ModelError.unsupportedModelType(modelType, file: file, supported: supported)
        }
        for (name, value) in [("depth", depth), (widthField, width), (outputField, outputSize),
                              (intermediateField, intermediateSize), ("num_heads", heads),
                              ("in_channels", inChannels), ("patch_size", patchSize),
                              ("spatial_merge_size", spatialMergeSize), ("temporal_patch_size", temporalPatchSize)]
            where value <= 0 { throw fail("\(name) must be positive, got \(value)") }
        _ = try parameterCount(file: file)  // first: the products below then stay in range
        guard width % heads == 0 else { throw fail("\(widthField) \(width) is not divisible by num_heads \(heads)") }
        guard headDim % 4 == 0 else {
            throw fail("\(widthField) / num_heads = \(headDim) must be a multiple of 4 "
                + "(2-D rotary: a quarter each for height and width)")
        }
        guard Activation(rawValue: hiddenAct) != nil else { throw fail("hidden_act '\(hiddenAct)' is not supported") }
        guard ropeTheta > 0, ropeTheta.isFinite else {
            throw fail("rope_parameters.rope_theta must be positive and finite, got \(ropeTheta)")
        }
        if kind == .qwen2_5VL {
            guard mergedWindowSide >= 1 else {
                throw fail("window_size \(windowSize) is smaller than one merged patch "
                    + "(spatial_merge_size × patch_size = \(spatialMergeSize * patchSize) pixels)")
            }
            if let bad = fullAttentionIndexes.first(where: { !(0..<depth).contains($0) }) {
                throw fail("fullatt_block_indexes holds \(bad), outside the \(depth) blocks (depth)")
            }
        }
    }

    /// Weights of one block: q, k, v, proj (width² each), the MLP (two matrices for Qwen2-VL, three for
    /// Qwen2.5-VL's SwiGLU) and two norms.
    func parametersPerBlock(file: String) throws -> Int {
        let attention = try Checked.product("4 × vision_config.\(widthField)²", [4, width, width], file: file)
        let mlp = try Checked.product("vision_config.\(widthField) × \(intermediateField)",
                                      [kind == .qwen2VL ? 2 : 3, width, intermediateSize], file: file)
        return try Checked.sum("the weights of one vision block", [attention, mlp, width, width], file: file)
    }

    /// Weights of the patch embedding and the merger (LayerNorm, then an MLP from width·merge² through the
    /// same width to the language model's hidden size).
    func parametersOutsideBlocks(file: String) throws -> Int {
        let patch = try Checked.product("vision_config.\(widthField) × in_channels × temporal_patch_size × "
                                        + "patch_size²", [width, patchFeatures(file: file)], file: file)
        let merged = try Checked.product("vision_config.\(widthField) × spatial_merge_size²",
                                         [width, spatialMergeSize, spatialMergeSize], file: file)
        let merger = try Checked.product("the merger's (\(widthField) × spatial_merge_size²) × "
                                         + "(\(widthField) × spatial_merge_size² + \(outputField))",
                                         [merged,
                                          Checked.sum("the merger width (vision_config.\(widthField) × "
                                                      + "spatial_merge_size² + \(outputField))",
                                                              [merged, outputSize], file: file)],
                                         file: file)
        return try Checked.sum("the vision parameter count", [patch, merger, width], file: file)
    }

    /// Input features of one patch with overflow checks (`patchFeatures` multiplies unchecked).
    func patchFeatures(file: String) throws -> Int {
        try Checked.product("vision_config.in_channels × temporal_patch_size × patch_size²",
                            [inChannels, temporalPatchSize, patchSize, patchSize], file: file)
    }

    /// Weights of the tower, computed with overflow checks.
    public func parameterCount(file: String) throws -> Int {
        let blocks = try Checked.product("vision_config.depth × weights per block (\(widthField), "
                                         + "\(intermediateField))",
                                         [depth, parametersPerBlock(file: file)], file: file)
        return try Checked.sum("the vision parameter count", [blocks, parametersOutsideBlocks(file: file)], file: file)
    }

    /// The terms of the tower's memory estimate (call after `validate`). Its activations depend on the image
    /// size, which the image processor bounds (`max_pixels`), not on config.json.
    func memoryTerms(file: String) throws -> [MemoryTerm] {
        let perBlock = try parametersPerBlock(file: file)
        return [
            .weights("\(depth) vision blocks (vision_config.depth) of \(perBlock) weights each "
                     + "(vision_config.\(widthField) \(width), \(intermediateField) \(intermediateSize))",
                     count: Checked.saturatingProduct(depth, perBlock)),
            .weights("the vision patch embedding and merger (vision_config.\(widthField) \(width), "
                     + "\(outputField) \(outputSize), in_channels \(inChannels), patch_size \(patchSize), "
                     + "temporal_patch_size \(temporalPatchSize), spatial_merge_size \(spatialMergeSize))",
                     count: try parametersOutsideBlocks(file: file)),
        ]
    }
}

/// A Qwen2-VL / Qwen2.5-VL config.json.
public struct QwenVLConfiguration: Decodable, Sendable {
    public var modelType: String
    public var textConfig: DecoderConfiguration
    public var visionConfig: QwenVisionConfiguration
    public var imageTokenID: Int
    public var videoTokenID: Int
    public var visionStartTokenID: Int
    public var visionEndTokenID: Int
    /// Where the text fields sit in config.json: "text_config." (transformers 5) or "" (Qwen's hub files).
    public var textSection: String

    /// transformers' default when a config has no `mrope_section`.
    public static let defaultMropeSection = [16, 24, 24]

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        modelType = try c.decodeIfPresent(String.self, forKey: AnyKey("model_type")) ?? "qwen2_5_vl"
        guard let kind = QwenVisionKind(rawValue: modelType) else {
            throw DecodingError.dataCorrupted(.init(codingPath: [AnyKey("model_type")],
                                                    debugDescription: "model_type '\(modelType)' is neither qwen2_vl "
                                                                      + "nor qwen2_5_vl"))
        }
        // Nested text_config (transformers 5) or text settings at the top level (Qwen's hub files).
        if c.contains(AnyKey("text_config")), try !c.decodeNil(forKey: AnyKey("text_config")) {
            textConfig = try c.decode(DecoderConfiguration.self, forKey: AnyKey("text_config"))
            textSection = "text_config."
        } else {
            textConfig = try DecoderConfiguration(from: decoder)
            textSection = ""
        }
        textConfig.modelType = kind == .qwen2VL ? "qwen2_vl_text" : "qwen2_5_vl_text"
        textConfig.qkvBias = true
        textConfig.outputBias = false
        if textConfig.mropeSection == nil { textConfig.mropeSection = Self.defaultMropeSection }
        // transformers: the top-level tie_word_embeddings rules; a text_config that ties turns it on.
        let topTie = try c.decodeIfPresent(Bool.self, forKey: AnyKey("tie_word_embeddings")) ?? false
        textConfig.tieWordEmbeddings = topTie || textConfig.tieWordEmbeddings
        let vision = try c.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey("vision_config"))
        visionConfig = try QwenVisionConfiguration(from: vision, kind: kind)
        imageTokenID = try c.decodeIfPresent(Int.self, forKey: AnyKey("image_token_id")) ?? 151655
        videoTokenID = try c.decodeIfPresent(Int.self, forKey: AnyKey("video_token_id")) ?? 151656
        visionStartTokenID = try c.decodeIfPresent(Int.self, forKey: AnyKey("vision_start_token_id")) ?? 151652
        visionEndTokenID = try c.decodeIfPresent(Int.self, forKey: AnyKey("vision_end_token_id")) ?? 151653
    }

    public var kind: QwenVisionKind { visionConfig.kind }

    public func validate(file: String) throws {
        try textConfig.validate(file: file, section: textSection)
        try visionConfig.validate(file: file)
        guard visionConfig.outputSize == textConfig.hiddenSize else {
            throw ModelError.invalidConfiguration(file: file, problem: "the vision merger outputs "
                + "\(visionConfig.outputSize) features (vision_config.\(visionConfig.outputField)) but the language "
                + "model's \(textSection)hidden_size is \(textConfig.hiddenSize)")
        }
        for (name, id) in [("image_token_id", imageTokenID), ("video_token_id", videoTokenID),
                           ("vision_start_token_id", visionStartTokenID), ("vision_end_token_id", visionEndTokenID)]
            where !(0..<textConfig.vocabularySize).contains(id) {
            throw ModelError.invalidConfiguration(file: file, problem: "\(name) \(id) outside the vocabulary "
                + "(0..<\(textSection)vocab_size \(textConfig.vocabularySize))")
        }
    }

    /// The terms of the model's memory estimate from config.json alone (call after `validate`).
    public func memoryTerms(file: String) throws -> [MemoryTerm] {
        try textConfig.memoryTerms(file: file, section: textSection) + visionConfig.memoryTerms(file: file)
    }
}

/// A JSON scalar inside a small object (`rope_parameters` of the vision config).
enum JSONScalar: Decodable, Equatable {
    case number(Double), string(String), bool(Bool), other

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else { self = .other }
    }

    var double: Double? { if case .number(let d) = self { return d } else { return nil } }
    var string: String? { if case .string(let s) = self { return s } else { return nil } }
}
