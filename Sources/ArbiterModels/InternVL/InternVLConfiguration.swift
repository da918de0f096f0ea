// Configuration of InternVL checkpoints (InternVL2.5 / InternVL3 as transformers 5.24 writes them), mirroring
// transformers/models/internvl/configuration_internvl.py (InternVLVisionConfig, InternVLConfig).
import ArbiterTensor
import Foundation

/// `vision_config` of an InternVL config (`InternVLVisionConfig`, the InternViT tower).
public struct InternVisionConfiguration: Sendable, Equatable {
    public enum Norm: String, Sendable, Equatable { case layerNorm = "layer_norm", rmsNorm = "rms_norm" }

    public var modelType: String
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var attentionHeads: Int
    public var attentionBias: Bool
    /// RMSNorm over the whole query and key width (InternViT-6B), before the split into heads.
    public var useQKNorm: Bool
    public var hiddenAct: String
    public var norm: Norm
    public var layerNormEps: Float
    /// (height, width) of one tile.
    public var imageSize: (height: Int, width: Int)
    public var patchSize: (height: Int, width: Int)
    public var numChannels: Int
    public var useAbsolutePositionEmbeddings: Bool
    /// True: the last hidden state is the encoder's output (`layernorm` is the identity); false: a LayerNorm
    /// follows the encoder and `vision_feature_layer` -1 reads through it.
    public var useMeanPooling: Bool
    public var useMaskToken: Bool

    public static func == (a: Self, b: Self) -> Bool {
        a.modelType == b.modelType && a.hiddenSize == b.hiddenSize && a.intermediateSize == b.intermediateSize
            && a.layers == b.layers && a.attentionHeads == b.attentionHeads && a.attentionBias == b.attentionBias
            && a.useQKNorm == b.useQKNorm && a.hiddenAct == b.hiddenAct && a.norm == b.norm
            && a.layerNormEps == b.layerNormEps && a.imageSize == b.imageSize && a.patchSize == b.patchSize
            && a.numChannels == b.numChannels && a.useAbsolutePositionEmbeddings == b.useAbsolutePositionEmbeddings
            && a.useMeanPooling == b.useMeanPooling && a.useMaskToken == b.useMaskToken
    }

    init(from c: KeyedDecodingContainer<AnyKey>) throws {
        func int(_ key: String) throws -> Int? { try c.decodeIfPresent(Int.self, forKey: AnyKey(key)) }
        func bool(_ key: String) throws -> Bool? { try c.decodeIfPresent(Bool.self, forKey: AnyKey(key)) }
        /// An int or an `[h, w]` pair, as transformers accepts both.
        func pair(_ key: String, default value: Int) throws -> (height: Int, width: Int) {
            if let n = try? c.decodeIfPresent(Int.self, forKey: AnyKey(key)) { return (n, n) }
            guard let list = try c.decodeIfPresent([Int].self, forKey: AnyKey(key)) else { return (value, value) }
            guard list.count == 2 else {
                throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [AnyKey(key)],
                                                        debugDescription: "must be an int or [height, width], "
                                                            + "found \(list.count) values"))
            }
            return (list[0], list[1])
        }
        modelType = try c.decodeIfPresent(String.self, forKey: AnyKey("model_type")) ?? "internvl_vision"
        hiddenSize = try int("hidden_size") ?? 1024
        intermediateSize = try int("intermediate_size") ?? 4096
        layers = try int("num_hidden_layers") ?? 24
        attentionHeads = try int("num_attention_heads") ?? 16
        attentionBias = try bool("attention_bias") ?? false
        useQKNorm = try bool("use_qk_norm") ?? false
        hiddenAct = try c.decodeIfPresent(String.self, forKey: AnyKey("hidden_act")) ?? "gelu"
        let normName = try c.decodeIfPresent(String.self, forKey: AnyKey("norm_type")) ?? "layer_norm"
        guard let norm = Norm(rawValue: normName) else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [AnyKey("norm_type")],
                                                    debugDescription: "must be 'layer_norm' or 'rms_norm', "
                                                        + "found '\(normName)'"))
        }
        self.norm = norm
        layerNormEps = Float(try c.decodeIfPresent(Double.self, forKey: AnyKey("layer_norm_eps")) ?? 1e-6)
        imageSize = try pair("image_size", default: 448)
        patchSize = try pair("patch_size", default: 14)
        numChannels = try int("num_channels") ?? 3
        useAbsolutePositionEmbeddings = try bool("use_absolute_position_embeddings") ?? true
        useMeanPooling = try bool("use_mean_pooling") ?? true
        useMaskToken = try bool("use_mask_token") ?? false
    }

    /// Patches per tile side.
    public var grid: (height: Int, width: Int) {
        (imageSize.height / max(patchSize.height, 1), imageSize.width / max(patchSize.width, 1))
    }
    /// Tokens of one tile in the tower: its patches and the class token.
    public var positions: Int { grid.height * grid.width + 1 }
    public var headDim: Int { attentionHeads > 0 ? hiddenSize / attentionHeads : 0 }
    public var patchFeatures: Int { numChannels * patchSize.height * patchSize.width }

    public func validate(file: String) throws {
        func fail(_ p: String) -> ModelError { .invalidConfiguration(file: file, problem: "vision_config.\(p)") }
        guard modelType == "internvl_vision" else {
            throw ModelError.unsupportedModelType(modelType, file: file,
                                                  supported: ["internvl_vision (vision_config of internvl)"])
        }
        for (name, value) in [("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
                              ("num_hidden_layers", layers), ("num_attention_heads", attentionHeads),
                              ("image_size", min(imageSize.height, imageSize.width)),
                              ("patch_size", min(patchSize.height, patchSize.width)), ("num_channels", numChannels)]
            where value <= 0 { throw fail("\(name) must be positive, got \(value)") }
        guard hiddenSize % attentionHeads == 0 else {
            throw fail("hidden_size \(hiddenSize) is not divisible by num_attention_heads \(attentionHeads)")
        }
        guard imageSize.height % patchSize.height == 0, imageSize.width % patchSize.width == 0 else {
            throw fail("image_size \(imageSize.height)×\(imageSize.width) is not a multiple of patch_size "
                       + "\(patchSize.height)×\(patchSize.width)")
        }
        guard layerNormEps > 0, layerNormEps.isFinite else {
            throw fail("layer_norm_eps must be positive and finite, got \(layerNormEps)")
        }
        guard Activation(rawValue: hiddenAct) != nil else { throw fail("hidden_act '\(hiddenAct)' is not supported") }
        guard useAbsolutePositionEmbeddings else {
            throw fail("use_absolute_position_embeddings false is not supported (every InternVL checkpoint has them)")
        }
        _ = try parameterCount(file: file)
    }

    /// Weights of one layer: q, k, v, projection (hidden² each), fc1 and fc2.
    func parametersPerLayer(file: String) throws -> Int {
        let attention = try Checked.product("4 × vision_config.hidden_size²", [4, hiddenSize, hiddenSize], file: file)
        let mlp = try Checked.product("2 × vision_config.hidden_size × intermediate_size",
                                      [2, hiddenSize, intermediateSize], file: file)
        return try Checked.sum("the weights of one vision layer", [attention, mlp], file: file)
    }

    /// Weights of the tower (embeddings and layers), computed with overflow checks.
    public func parameterCount(file: String) throws -> Int {
        let patch = try Checked.product("vision_config.hidden_size × num_channels × patch_size²",
                                        [hiddenSize, numChannels, patchSize.height, patchSize.width], file: file)
        let tokens = try Checked.sum("the vision positions", [
            Checked.product("(image_size / patch_size)²", [grid.height, grid.width], file: file), 1], file: file)
        let position = try Checked.product("vision positions × vision_config.hidden_size", [tokens, hiddenSize],
                                           file: file)
        let stack = try Checked.product("vision_config.num_hidden_layers × weights per layer",
                                        [layers, parametersPerLayer(file: file)], file: file)
        return try Checked.sum("the vision parameter count", [patch, position, stack], file: file)
    }
}

/// An InternVL config.json (`model_type` `internvl`).
public struct InternVLConfiguration: Decodable, Sendable {
    public var textConfig: DecoderConfiguration
    public var visionConfig: InternVisionConfiguration
    public var imageTokenID: Int
    /// Image tokens per tile (`image_seq_length`): the tile's patches after the pixel shuffle.
    public var imageSeqLength: Int
    public var downsampleRatio: Double
    public var projectorHiddenAct: String
    public var visionFeatureLayer: Int
    public var visionFeatureSelectStrategy: String

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        textConfig = try c.decode(DecoderConfiguration.self, forKey: AnyKey("text_config"))
        // transformers 5.24 ties lm_head to the embeddings by the top-level flag alone (default true); the
        // text_config's own flag is ignored (checked on InternVLForConditionalGeneration).
        textConfig.tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: AnyKey("tie_word_embeddings")) ?? true
        visionConfig = try InternVisionConfiguration(
            from: c.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey("vision_config")))
        imageTokenID = try c.decodeIfPresent(Int.self, forKey: AnyKey("image_token_id")) ?? 151667
        imageSeqLength = try c.decodeIfPresent(Int.self, forKey: AnyKey("image_seq_length")) ?? 256
        downsampleRatio = try c.decodeIfPresent(Double.self, forKey: AnyKey("downsample_ratio")) ?? 0.5
        projectorHiddenAct = try c.decodeIfPresent(String.self, forKey: AnyKey("projector_hidden_act")) ?? "gelu"
        if let layers = try? c.decodeIfPresent([Int].self, forKey: AnyKey("vision_feature_layer")) {
            guard layers.count == 1 else {
                throw DecodingError.dataCorrupted(.init(codingPath: [AnyKey("vision_feature_layer")],
                                                        debugDescription: "InternVL selects one feature layer, "
                                                            + "found the list \(layers)"))
            }
            visionFeatureLayer = layers[0]
        } else {
            visionFeatureLayer = try c.decodeIfPresent(Int.self, forKey: AnyKey("vision_feature_layer")) ?? -1
        }
        visionFeatureSelectStrategy = try c.decodeIfPresent(String.self,
                                                            forKey: AnyKey("vision_feature_select_strategy"))
            ?? "default"
    }

    /// Patches merged into one image token per side (`int(1 / downsample_ratio)`).
    public var shuffleFactor: Int { downsampleRatio > 0 ? Int(1 / downsampleRatio) : 0 }

    /// Index into the tower's hidden states (0 = embeddings … layers = last layer's output).
    public var hiddenStateIndex: Int {
        visionFeatureLayer < 0 ? visionConfig.layers + 1 + visionFeatureLayer : visionFeatureLayer
    }

    /// The text decoders an InternVL checkpoint runs on (InternVL2.5 / 3: Qwen2 and Llama-shaped ones).
    static let textTypes = ["qwen2", "llama"]

    public func validate(file: String) throws {
        guard Self.textTypes.contains(textConfig.modelType) else {
            throw ModelError.unsupportedModelType(textConfig.modelType, file: file,
                                                  supported: Self.textTypes.map { "\($0) (text_config of internvl)" })
        }
        try textConfig.validate(file: file, section: "text_config.")
        try visionConfig.validate(file: file)
        func fail(_ problem: String) -> ModelError { .invalidConfiguration(file: file, problem: problem) }
        let factor = shuffleFactor, grid = visionConfig.grid
        guard downsampleRatio > 0, downsampleRatio <= 1, Double(factor) * downsampleRatio == 1 else {
            throw fail("downsample_ratio \(downsampleRatio) must be 1/n for a whole n (the pixel shuffle merges "
                       + "n×n patches)")
        }
        guard grid.height == grid.width else {
            throw fail("the tile is \(grid.height)×\(grid.width) patches (vision_config.image_size / patch_size); "
                       + "InternVL's pixel shuffle reshapes features to a square")
        }
        guard grid.width % factor == 0 else {
            throw fail("the tile's \(grid.width) patches per side (vision_config.image_size / patch_size) are not "
                       + "a multiple of 1/downsample_ratio = \(factor)")
        }
        let tokens = (grid.width / factor) * (grid.height / factor)
        guard imageSeqLength == tokens else {
            throw fail("image_seq_length \(imageSeqLength) disagrees with the tile: (\(grid.width) patches / "
                       + "\(factor))² = \(tokens) image tokens per tile")
        }
        guard (0...visionConfig.layers).contains(hiddenStateIndex) else {
            throw fail("vision_feature_layer \(visionFeatureLayer) outside -\(visionConfig.layers + 1)..."
                       + "\(visionConfig.layers)")
        }
        guard visionFeatureSelectStrategy == "default" else {
            throw fail("vision_feature_select_strategy '\(visionFeatureSelectStrategy)' is not supported: InternVL "
                       + "drops the class token ('default') before the pixel shuffle")
        }
        guard imageTokenID >= 0 && imageTokenID < textConfig.vocabularySize else {
            throw fail("image_token_id \(imageTokenID) outside the vocabulary (0..<text_config.vocab_size "
                       + "\(textConfig.vocabularySize))")
        }
        guard Activation(rawValue: projectorHiddenAct) != nil else {
            throw fail("unsupported projector_hidden_act '\(projectorHiddenAct)'")
        }
    }

    /// Width of the projector's input: the tower's width times the patches one token merges.
    public var projectorInput: Int { visionConfig.hiddenSize * shuffleFactor * shuffleFactor }

    /// The terms of the model's memory estimate from config.json alone (call after `validate`).
    public func memoryTerms(file: String) throws -> [MemoryTerm] {
        let v = visionConfig, d = textConfig.hiddenSize
        let perLayer = try v.parametersPerLayer(file: file)
        let projector = try Checked.product("the projector's (vision_config.hidden_size × (1/downsample_ratio)² + "
                                            + "text_config.hidden_size) × text_config.hidden_size",
                                            [Checked.sum("the projector width", [projectorInput, d], file: file), d],
                                            file: file)
        let activations = Checked.saturatingSum(
            ResourceGuard.transientBytes(positions: v.positions, width: v.hiddenSize, intermediate: v.intermediateSize,
                                         heads: v.attentionHeads, outputs: 0),
            Checked.saturatingProduct(4, v.positions, v.hiddenSize, 2))
        return try textConfig.memoryTerms(file: file, section: "text_config.") + [
            .weights("\(v.layers) vision layers (vision_config.num_hidden_layers) of \(perLayer) weights each "
                     + "(vision_config.hidden_size \(v.hiddenSize), intermediate_size \(v.intermediateSize))",
                     count: Checked.saturatingProduct(v.layers, perLayer)),
            .weights("the vision embeddings (\(v.positions) positions of one tile × vision_config.hidden_size "
                     + "\(v.hiddenSize))", count: try v.parameterCount(file: file)
                        - Checked.saturatingProduct(v.layers, perLayer)),
            .weights("the projector (vision_config.hidden_size \(v.hiddenSize) × \(shuffleFactor * shuffleFactor) → "
                     + "text_config.hidden_size \(d))", count: projector),
            MemoryTerm("vision activations of one tile (\(v.positions) positions, vision_config.hidden_size "
                       + "\(v.hiddenSize), intermediate_size \(v.intermediateSize), num_attention_heads "
                       + "\(v.attentionHeads))", bytes: activations),
        ]
    }
}
