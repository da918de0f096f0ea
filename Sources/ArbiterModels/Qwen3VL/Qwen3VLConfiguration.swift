// Configuration of Qwen3-VL checkpoints, mirroring transformers/models/qwen3_vl/configuration_qwen3_vl.py
// (transformers 5.24): Qwen3VLConfig with a nested `text_config` (Qwen3VLTextConfig: per-head q/k RMSNorm,
// `rope_parameters` with `mrope_section`, interleaved) and `vision_config` (Qwen3VLVisionConfig: learned position
// embeddings, DeepStack mergers). transformers' defaults fill missing keys.
import ArbiterTensor
import Foundation

/// `vision_config` of a Qwen3-VL config.
public struct Qwen3VisionConfiguration: Sendable, Equatable {
    public var modelType: String?
    public var depth: Int
    /// Width of the tower's residual stream (`hidden_size`).
    public var width: Int
    /// Output width of the mergers (`out_hidden_size`, the language model's hidden size).
    public var outputSize: Int
    public var intermediateSize: Int
    public var heads: Int
    public var inChannels: Int
    public var patchSize: Int
    public var spatialMergeSize: Int
    public var temporalPatchSize: Int
    public var hiddenAct: String
    /// Rows of the learned position-embedding table (`num_position_embeddings`): a square grid of
    /// `positionGridSide`² positions, interpolated to each image's patch grid.
    public var positionEmbeddings: Int
    /// The blocks after which a DeepStack merger reads the tower (`deepstack_visual_indexes`), one merger each.
    public var deepstackIndexes: [Int]
    public var ropeTheta: Double

    /// Decodes `vision_config` (transformers' defaults for missing keys).
    init(from c: KeyedDecodingContainer<AnyKey>) throws {
        func int(_ key: String) throws -> Int? { try c.decodeIfPresent(Int.self, forKey: AnyKey(key)) }
        modelType = try c.decodeIfPresent(String.self, forKey: AnyKey("model_type"))
        depth = try int("depth") ?? 27
        width = try int("hidden_size") ?? 1152
        outputSize = try int("out_hidden_size") ?? 3584
        intermediateSize = try int("intermediate_size") ?? 4304
        heads = try int("num_heads") ?? 16
        inChannels = try int("in_channels") ?? 3
        patchSize = try int("patch_size") ?? 16
        spatialMergeSize = try int("spatial_merge_size") ?? 2
        temporalPatchSize = try int("temporal_patch_size") ?? 2
        hiddenAct = try c.decodeIfPresent(String.self, forKey: AnyKey("hidden_act")) ?? "gelu_pytorch_tanh"
        positionEmbeddings = try int("num_position_embeddings") ?? 2304
        deepstackIndexes = try c.decodeIfPresent([Int].self, forKey: AnyKey("deepstack_visual_indexes")) ?? [8, 16, 24]
        let rope = try c.decodeIfPresent([String: JSONScalar].self, forKey: AnyKey("rope_parameters"))
        ropeTheta = rope?["rope_theta"]?.double ?? 10000
        if let type = rope?["rope_type"]?.string, type != "axial" {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [AnyKey("rope_parameters")],
                                                    debugDescription: "the vision rotary supports only rope_type "
                                                        + "'axial', got '\(type)'"))
        }
    }

    public var headDim: Int { heads > 0 ? width / heads : 0 }
    /// Input features of one patch: channels · temporal · patch².
    public var patchFeatures: Int { inChannels * temporalPatchSize * patchSize * patchSize }
    /// Side of the learned position grid: `int(num_position_embeddings ** 0.5)`.
    public var positionGridSide: Int {
        guard positionEmbeddings > 0 else { return 0 }
        var side = Int(Double(positionEmbeddings).squareRoot())
        while side * side > positionEmbeddings { side -= 1 }
        while (side + 1) * (side + 1) <= positionEmbeddings { side += 1 }
        return side
    }
    /// Width of a merge unit's concatenated patches (`hidden_size · spatial_merge_size²`).
    public var mergedWidth: Int { width * spatialMergeSize * spatialMergeSize }

    /// The mergers' order of work: the tower blocks, ascending, after which DeepStack features are read, each
    /// with its merger (`deepstack_visual_indexes.index(block)`). The k-th is added after decoder layer k.
    public var deepstackOrder: [(block: Int, merger: Int)] {
        deepstackIndexes.sorted().map { block in (block, deepstackIndexes.firstIndex(of: block)!) }
    }

    public func validate(file: String, textLayers: Int, textSection: String) throws {
        func fail(_ p: String) -> ModelError { .invalidConfiguration(file: file, problem: "vision_config.\(p)") }
        let accepted = ["qwen3_vl_vision", "qwen3_vl"]
        if let modelType, !accepted.contains(modelType) {
            throw ModelError.unsupportedModelType(modelType, file: file,
                                                  supported: accepted.map { "\($0) (vision_config of qwen3_vl)" })
        }
        for (name, value) in [("depth", depth), ("hidden_size", width), ("out_hidden_size", outputSize),
                              ("intermediate_size", intermediateSize), ("num_heads", heads),
                              ("in_channels", inChannels), ("patch_size", patchSize),
                              ("spatial_merge_size", spatialMergeSize), ("temporal_patch_size", temporalPatchSize),
                              ("num_position_embeddings", positionEmbeddings)]
            where value <= 0 { throw fail("\(name) must be positive, got \(value)") }
        _ = try parameterCount(file: file)  // first: the products below then stay in range
        guard width % heads == 0 else { throw fail("hidden_size \(width) is not divisible by num_heads \(heads)") }
        guard headDim % 4 == 0 else {
            throw fail("hidden_size / num_heads = \(headDim) must be a multiple of 4 "
                + "(2-D rotary: a quarter each for height and width)")
        }
        guard Activation(rawValue: hiddenAct) != nil else { throw fail("hidden_act '\(hiddenAct)' is not supported") }
        guard ropeTheta > 0, ropeTheta.isFinite else {
            throw fail("rope_parameters.rope_theta must be positive and finite, got \(ropeTheta)")
        }
        if let bad = deepstackIndexes.first(where: { !(0..<depth).contains($0) }) {
            throw fail("deepstack_visual_indexes holds \(bad), outside the \(depth) blocks (depth)")
        }
        if let twice = deepstackIndexes.first(where: { i in deepstackIndexes.filter { $0 == i }.count > 1 }) {
            throw fail("deepstack_visual_indexes holds \(twice) twice (its second merger would never run)")
        }
        guard deepstackIndexes.count <= textLayers else {
            throw fail("deepstack_visual_indexes has \(deepstackIndexes.count) entries, but the language model has "
                + "only \(textLayers) layers (\(textSection)num_hidden_layers) to add their features after")
        }
    }

    /// Weights of one block: qkv and proj (4 · width²), fc1/fc2 and two LayerNorms.
    func parametersPerBlock(file: String) throws -> Int {
        let attention = try Checked.product("4 × vision_config.hidden_size²", [4, width, width], file: file)
        let mlp = try Checked.product("2 × vision_config.hidden_size × intermediate_size",
                                      [2, width, intermediateSize], file: file)
        return try Checked.sum("the weights of one vision block", [attention, mlp, 4 * width], file: file)
    }

    /// Weights of the patch embedding, the position table and the mergers (the final one and one per DeepStack
    /// index: Linear merged → merged, Linear merged → out_hidden_size).
    func parametersOutsideBlocks(file: String) throws -> Int {
        let patch = try Checked.product("vision_config.hidden_size × in_channels × temporal_patch_size × "
                                        + "patch_size²", [width, inChannels, temporalPatchSize, patchSize, patchSize],
                                        file: file)
        let table = try Checked.product("vision_config.num_position_embeddings × hidden_size",
                                        [positionEmbeddings, width], file: file)
        let merged = try Checked.product("vision_config.hidden_size × spatial_merge_size²",
                                         [width, spatialMergeSize, spatialMergeSize], file: file)
        let merger = try Checked.product("a merger's (hidden_size × spatial_merge_size²) × "
                                         + "(hidden_size × spatial_merge_size² + out_hidden_size)",
                                         [merged, Checked.sum("the merger width", [merged, outputSize], file: file)],
                                         file: file)
        let mergers = try Checked.product("(1 + deepstack_visual_indexes) mergers",
                                          [deepstackIndexes.count + 1, merger], file: file)
        return try Checked.sum("the vision parameter count", [patch, table, mergers, width], file: file)
    }

    /// Weights of the tower, computed with overflow checks.
    public func parameterCount(file: String) throws -> Int {
        let blocks = try Checked.product("vision_config.depth × weights per block (hidden_size, intermediate_size)",
                                         [depth, parametersPerBlock(file: file)], file: file)
        return try Checked.sum("the vision parameter count", [blocks, parametersOutsideBlocks(file: file)], file: file)
    }

    /// The terms of the tower's memory estimate (call after `validate`).
    func memoryTerms(file: String) throws -> [MemoryTerm] {
        let perBlock = try parametersPerBlock(file: file)
        return [
            .weights("\(depth) vision blocks (vision_config.depth) of \(perBlock) weights each "
                     + "(vision_config.hidden_size \(width), intermediate_size \(intermediateSize))",
                     count: Checked.saturatingProduct(depth, perBlock)),
            .weights("the vision patch embedding, position table and \(deepstackIndexes.count + 1) mergers "
                     + "(vision_config.hidden_size \(width), out_hidden_size \(outputSize), num_position_embeddings "
                     + "\(positionEmbeddings), deepstack_visual_indexes \(deepstackIndexes))",
                     count: try parametersOutsideBlocks(file: file)),
        ]
    }
}

/// A Qwen3-VL config.json.
public struct Qwen3VLConfiguration: Decodable, Sendable {
    public var modelType: String
    public var textConfig: DecoderConfiguration
    public var visionConfig: Qwen3VisionConfiguration
    public var imageTokenID: Int
    public var videoTokenID: Int
    public var visionStartTokenID: Int
    public var visionEndTokenID: Int
    /// `text_config.model_type` as config.json gives it (nil when absent).
    public var textModelType: String?
    public let textSection = "text_config."

    /// transformers' defaults (Qwen3VLTextConfig, Qwen3VLTextRotaryEmbedding) for keys a text_config may lack.
    public static let defaultMropeSection = [24, 20, 20]
    static let defaultRopeTheta = 500_000.0
    static let defaultHeadDim = 128
    static let defaultMaxPositions = 128_000
    static let defaultVocabulary = 151_936
    static let defaultIntermediate = 22_016

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        modelType = try c.decodeIfPresent(String.self, forKey: AnyKey("model_type")) ?? "qwen3_vl"
        guard modelType == "qwen3_vl" else {
            throw DecodingError.dataCorrupted(.init(codingPath: [AnyKey("model_type")],
                                                    debugDescription: "model_type '\(modelType)' is not qwen3_vl"))
        }
        guard c.contains(AnyKey("text_config")), try !c.decodeNil(forKey: AnyKey("text_config")) else {
            throw DecodingError.keyNotFound(AnyKey("text_config"), .init(codingPath: [],
                debugDescription: "a Qwen3-VL config.json nests its language model's settings in text_config"))
        }
        let text = try c.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey("text_config"))
        // The text model's type first: another family's decoder must not be read as Qwen3's.
        textModelType = try text.decodeIfPresent(String.self, forKey: AnyKey("model_type"))
        if let type = textModelType, type != "qwen3_vl_text" {
            throw DecodingError.dataCorrupted(.init(codingPath: [AnyKey("text_config"), AnyKey("model_type")],
                debugDescription: "is '\(type)'; the language model of qwen3_vl is qwen3_vl_text"))
        }
        textConfig = try c.decode(DecoderConfiguration.self, forKey: AnyKey("text_config"))
        textConfig.modelType = "qwen3_vl_text"
        textConfig.qkNorm = true
        // Qwen3VLTextRotaryEmbedding interleaves the sections whatever `mrope_interleaved` says.
        textConfig.mropeInterleaved = true
        if textConfig.mropeSection == nil { textConfig.mropeSection = Self.defaultMropeSection }
        let rope = try text.decodeIfPresent([String: JSONScalar].self, forKey: AnyKey("rope_parameters"))
        let legacyTheta = try text.decodeIfPresent(Double.self, forKey: AnyKey("rope_theta"))
        if rope?["rope_theta"] == nil, legacyTheta == nil {
            textConfig.rope.theta = Self.defaultRopeTheta
        }
        if !text.contains(AnyKey("head_dim")) {
            textConfig.headDim = Self.defaultHeadDim
            textConfig.rope.dimension = Self.defaultHeadDim
        }
        if !text.contains(AnyKey("max_position_embeddings")) {
            textConfig.maxPositionEmbeddings = Self.defaultMaxPositions
        }
        if !text.contains(AnyKey("vocab_size")) { textConfig.vocabularySize = Self.defaultVocabulary }
        if !text.contains(AnyKey("intermediate_size")) { textConfig.intermediateSize = Self.defaultIntermediate }
        // transformers: the top-level tie_word_embeddings rules; a text_config that ties turns it on.
        let topTie = try c.decodeIfPresent(Bool.self, forKey: AnyKey("tie_word_embeddings")) ?? false
        textConfig.tieWordEmbeddings = topTie || textConfig.tieWordEmbeddings
        let vision = try c.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey("vision_config"))
        visionConfig = try Qwen3VisionConfiguration(from: vision)
        imageTokenID = try c.decodeIfPresent(Int.self, forKey: AnyKey("image_token_id")) ?? 151655
        videoTokenID = try c.decodeIfPresent(Int.self, forKey: AnyKey("video_token_id")) ?? 151656
        visionStartTokenID = try c.decodeIfPresent(Int.self, forKey: AnyKey("vision_start_token_id")) ?? 151652
        visionEndTokenID = try c.decodeIfPresent(Int.self, forKey: AnyKey("vision_end_token_id")) ?? 151653
    }

    public func validate(file: String) throws {
        try textConfig.validate(file: file, section: textSection)
        try visionConfig.validate(file: file, textLayers: textConfig.layers, textSection: textSection)
        guard visionConfig.outputSize == textConfig.hiddenSize else {
            throw ModelError.invalidConfiguration(file: file, problem: "the vision mergers output "
                + "\(visionConfig.outputSize) features (vision_config.out_hidden_size) but the language "
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
