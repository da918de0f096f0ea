// LLaVA: CLIP vision tower → multi-modal projector → Llama-family language model.
// Mirrors transformers/models/llava/modeling_llava.py (LlavaMultiModalProjector, LlavaModel.get_image_features,
// the image-token merge, LlavaForConditionalGeneration).
//
// Hook points: the vision tower's (`vision.…`), then
//   vision.hook_selected   [N', d_vision]  hidden_states[vision_feature_layer] after the select strategy
//   hook_image_features    [N', d_model]   projector output (one row per image token)
// and the language model's (`hook_embed` holds the merged embeddings).
import ArbiterFormats
import ArbiterTensor
import Foundation

// MARK: - Projector

struct LlavaProjector: @unchecked Sendable {
    let linear1: StoredTensor, bias1: StoredTensor?, linear2: StoredTensor, bias2: StoredTensor?
    let activation: Activation

    init(_ w: inout WeightStore, prefix p: String, config c: LlavaConfiguration) throws {
        let dv = c.visionConfig.hiddenSize * c.visionFeatureLayers.count, d = c.textConfig.hiddenSize
        linear1 = try w.take("\(p).linear_1.weight", shape: [d, dv])
        linear2 = try w.take("\(p).linear_2.weight", shape: [d, d])
        bias1 = c.projectorBias ? try w.take("\(p).linear_1.bias", shape: [d]) : nil
        bias2 = c.projectorBias ? try w.take("\(p).linear_2.bias", shape: [d]) : nil
        activation = try Activation(named: c.projectorHiddenAct)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = linear(x, weight: linear1, bias: bias1)
        activation.apply(&h)
        return linear(h, weight: linear2, bias: bias2)
    }
}

// MARK: - Model

public final class LlavaModel: ArbiterModel, @unchecked Sendable {
    public let modelType = "llava"
    public let identifier: String
    public let configuration: LlavaConfiguration
    public let vision: CLIPVisionTower
    let projector: LlavaProjector
    public let decoder: LlamaDecoder
    let checkpoint: Checkpoint?

    public convenience init(directory: ModelDirectory) throws {
        let config = try directory.configuration(LlavaConfiguration.self)
        try config.validate(file: directory.configURL.path)
        var (weights, checkpoint) = try directory.weightStore(
            memory: config.memoryTerms(file: directory.configURL.path), text: config.textConfig,
            sanitize: Self.sanitize)
        try self.init(configuration: config, weights: &weights, identifier: directory.url.lastPathComponent,
                      checkpoint: checkpoint)
        try weights.finish()
    }

    init(configuration c: LlavaConfiguration, weights w: inout WeightStore, identifier: String,
         checkpoint: Checkpoint?) throws {
        configuration = c
        self.identifier = identifier
        self.checkpoint = checkpoint
        vision = try CLIPVisionTower(configuration: c.visionConfig, weights: &w, prefix: "model.vision_tower")
        projector = try LlavaProjector(&w, prefix: "model.multi_modal_projector", config: c)
        decoder = try LlamaDecoder(configuration: c.textConfig, weights: &w, modelPrefix: "model.language_model.",
                                   lmHeadName: "lm_head.weight")
    }

    /// Maps every LLaVA weight-name layout in the wild onto one: transformers 5 `save_pretrained`
    /// (`vision_tower.embeddings.…`, `language_model.model.…`, `language_model.lm_head`), the llava-hf hub
    /// layout (`vision_tower.vision_model.…`), and transformers 4.5x (`model.vision_tower.vision_model.…`,
    /// `model.language_model.…`, `lm_head`). Canonical: `model.vision_tower.<CLIPVisionModel names>`,
    /// `model.multi_modal_projector.…`, `model.language_model.<LlamaModel names>`, `lm_head.…`.
    /// Derived buffers (`rotary_emb.inv_freq`, `position_ids`) are dropped.
    static func sanitize(_ tensors: [String: StoredTensor]) -> [String: StoredTensor] {
        let renames: [(String, String)] = [
            ("language_model.lm_head.", "lm_head."),
            ("language_model.model.", "model.language_model."),
            ("model.vision_tower.vision_model.", "model.vision_tower."),
            ("vision_tower.vision_model.", "model.vision_tower."),
            ("vision_tower.", "model.vision_tower."),
            ("multi_modal_projector.", "model.multi_modal_projector."),
        ]
        var out: [String: StoredTensor] = [:]
        for (name, tensor) in tensors {
            if name.hasSuffix("rotary_emb.inv_freq") || name.hasSuffix("embeddings.position_ids") { continue }
            var mapped = name
            for (from, to) in renames where name.hasPrefix(from) {
                mapped = to + name.dropFirst(from.count)
                break
            }
            out[mapped] = tensor
        }
        return out
    }

    public var hookNames: [String] {
        let lm = decoder.hookNames
        return vision.hookNames + ["vision.hook_selected", HookName.imageFeatures] + lm
    }

    /// Image features `[image tokens, d_model]` for pixel values `[3, S, S]`.
    public func imageFeatures(pixelValues: Tensor, hooks: HookRun? = nil) throws -> Tensor {
        let c = configuration
        var selected: [Tensor] = []
        // All feature layers come from one pass through the tower, up to the deepest one needed.
        let indices = try c.visionFeatureLayers.map { try c.hiddenStateIndex($0) }
        // Layers past the deepest feature layer do not affect the answer; they run only when a hook asks.
        let hooked = (0..<vision.layers.count).last { l in
            vision.layers[l].hookNames(vision.layerNames[l]).contains { hooks.wants($0) }
        }
        let deepest = max(indices.max() ?? 0, hooked.map { $0 + 1 } ?? 0)
        var states: [Int: Tensor] = [:]
        let wanted = Set(indices)
        // hidden_states[i] is the input of layer i (i < layers) or the output of the last layer.
        var x = try vision.hiddenState(pixelValues: pixelValues, index: 0, hooks: hooks)
        if wanted.contains(0) { states[0] = x }
        for l in 0..<deepest {
            x = try vision.layers[l](x, layer: l, names: vision.layerNames[l], hooks: hooks)
            if wanted.contains(l + 1) { states[l + 1] = x }
        }
        for index in indices {
            guard var s = states[index] else { continue }
            if c.visionFeatureSelectStrategy == .default { s = s.rows(1..<s.rows) }
            selected.append(s)
        }
        var features = selected.count == 1 ? selected[0] : concatenateColumns(selected)
        try hooks.visit("vision.hook_selected", &features)
        var projected = projector(features)
        try hooks.visit(HookName.imageFeatures, &projected)
        return projected
    }

    /// Full forward: pixel values `[3, S, S]` + ids (with the image token already expanded) → decoder output.
    public func forward(ids: [Int], pixelValues: Tensor?, logits: LogitPositions = .all,
                        hooks: HookRun? = nil) throws -> DecoderOutput {
        try forward(ids: ids, image: pixelValues.map {
            PreparedImage(pixelValues: $0, tokenCount: configuration.imageTokenCount)
        }, logits: logits, hooks: hooks)
    }
}

/// Concatenates `[N, a]`, `[N, b]`, … along columns.
func concatenateColumns(_ parts: [Tensor]) -> Tensor {
    let n = parts[0].rows, total = parts.reduce(0) { $0 + $1.columns }
    var out = [Float](); out.reserveCapacity(n * total)
    for r in 0..<n { for p in parts { out.append(contentsOf: p.row(r)) } }
    return Tensor(shape: [n, total], scalars: out)
}

// MARK: - Configuration

public struct LlavaConfiguration: Decodable, Sendable {
    public enum SelectStrategy: String, Codable, Sendable { case `default`, full }

    public var textConfig: DecoderConfiguration
    public var visionConfig: CLIPVisionConfiguration
    public var imageTokenID: Int
    /// The key config.json gives the image token under (`image_token_id`, `image_token_index`, or the default's
    /// name when absent), so that messages name the field as the file writes it.
    public var imageTokenField = "image_token_index (absent: 32000)"
    /// One or more vision feature layers (negative counts from the end, as Python indexing).
    public var visionFeatureLayers: [Int]
    public var visionFeatureSelectStrategy: SelectStrategy
    public var projectorHiddenAct: String
    public var projectorBias: Bool

    enum CodingKeys: String, CodingKey {
        case textConfig = "text_config", visionConfig = "vision_config"
        case imageTokenID = "image_token_id", imageTokenIndex = "image_token_index"
        case visionFeatureLayer = "vision_feature_layer", selectStrategy = "vision_feature_select_strategy"
        case projectorHiddenAct = "projector_hidden_act", projectorBias = "multimodal_projector_bias"
        case tieWordEmbeddings = "tie_word_embeddings"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        textConfig = try c.decode(DecoderConfiguration.self, forKey: .textConfig)
        visionConfig = try c.decode(CLIPVisionConfiguration.self, forKey: .visionConfig)
        if let id = try c.decodeIfPresent(Int.self, forKey: .imageTokenID) {
            imageTokenID = id
            imageTokenField = "image_token_id"
        } else if let id = try c.decodeIfPresent(Int.self, forKey: .imageTokenIndex) {
            imageTokenID = id
            imageTokenField = "image_token_index"
        } else {
            imageTokenID = 32000
        }
        if let layers = try? c.decode([Int].self, forKey: .visionFeatureLayer) {
            visionFeatureLayers = layers
        } else {
            visionFeatureLayers = [try c.decodeIfPresent(Int.self, forKey: .visionFeatureLayer) ?? -2]
        }
        visionFeatureSelectStrategy = try c.decodeIfPresent(SelectStrategy.self, forKey: .selectStrategy) ?? .default
        projectorHiddenAct = try c.decodeIfPresent(String.self, forKey: .projectorHiddenAct) ?? "gelu"
        projectorBias = try c.decodeIfPresent(Bool.self, forKey: .projectorBias) ?? true
        // A top-level tie_word_embeddings (older LLaVA configs) applies to the language model.
        if let tie = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings),
           (try? decoder.container(keyedBy: CodingKeys.self).nestedContainer(keyedBy: AnyKey.self, forKey: .textConfig)
               .contains(AnyKey("tie_word_embeddings"))) != true {
            textConfig.tieWordEmbeddings = tie
        }
    }

    /// Index into hidden_states (0 = after pre_layrnorm … layers = last layer's output) for a feature layer.
    public func hiddenStateIndex(_ layer: Int) throws -> Int {
        let count = visionConfig.layers + 1
        let index = layer < 0 ? count + layer : layer
        guard (0..<count).contains(index) else {
            throw ModelError.invalidInput("vision_feature_layer \(layer) outside the \(count) hidden states of the "
                                          + "vision tower")
        }
        return index
    }

    public func validate(file: String) throws {
        try textConfig.validate(file: file, section: "text_config.")
        try visionConfig.validate(file: file)
        guard !visionFeatureLayers.isEmpty else {
            throw ModelError.invalidConfiguration(file: file, problem: "vision_feature_layer is an empty list")
        }
        for layer in visionFeatureLayers {
            do { _ = try hiddenStateIndex(layer) } catch {
                throw ModelError.invalidConfiguration(file: file,
                                                      problem: "vision_feature_layer \(layer) outside "
                                                               + "-\(visionConfig.layers + 1)...\(visionConfig.layers)")
            }
        }
        guard imageTokenID >= 0 && imageTokenID < textConfig.vocabularySize else {
            throw ModelError.invalidConfiguration(file: file, problem: "\(imageTokenField) \(imageTokenID) outside the "
                + "vocabulary (0..<text_config.vocab_size \(textConfig.vocabularySize))")
        }
        guard Activation(rawValue: projectorHiddenAct) != nil else {
            throw ModelError.invalidConfiguration(file: file,
                                                  problem: "unsupported projector_hidden_act '\(projectorHiddenAct)'")
        }
    }

    /// The terms of the model's memory estimate from config.json alone (call after `validate`).
    public func memoryTerms(file: String) throws -> [MemoryTerm] {
        let d = textConfig.hiddenSize
        let input = try Checked.product("vision_config.hidden_size × the vision_feature_layer count",
                                        [visionConfig.hiddenSize, visionFeatureLayers.count], file: file)
        let projector = try Checked.product("the projector's (vision features + text_config.hidden_size) × "
                                            + "text_config.hidden_size",
                                            [Checked.sum("the projector width", [input, d], file: file), d], file: file)
        return try textConfig.memoryTerms(file: file, section: "text_config.")
            + visionConfig.memoryTerms(file: file)
            + [.weights("the projector (vision_config.hidden_size \(visionConfig.hiddenSize) → "
                        + "text_config.hidden_size \(d))", count: projector)]
    }
}
