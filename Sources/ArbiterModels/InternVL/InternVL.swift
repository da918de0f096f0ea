// InternVL (2.5 / 3): InternViT tower → pixel shuffle → LayerNorm-MLP projector → Qwen2 (or Llama) decoder.
// Mirrors transformers 5.24's models/internvl/modeling_internvl.py (InternVLModel.get_image_features,
// pixel_shuffle, InternVLMultiModalProjector, InternVLForConditionalGeneration).
//
// Hook points: the tower's (`vision.…`, InternVision.swift), then
//   vision.hook_selected  [tiles·P, d_vision]  hidden_states[vision_feature_layer] without the class tokens
//   vision.hook_shuffled  [tiles·P/f², d_vision·f²]  after the pixel shuffle (f = 1/downsample_ratio)
//   hook_image_features   [tiles·P/f², d_model]  projector output, one row per image token
// and the language model's (`hook_embed` holds the merged embeddings).
import ArbiterFormats
import ArbiterTensor
import Foundation

// MARK: - Projector

/// LayerNorm (eps 1e-5, torch's default) → linear_1 → activation → linear_2.
struct InternVLProjector: @unchecked Sendable {
    let norm: StoredTensor, normBias: StoredTensor
    let linear1: StoredTensor, bias1: StoredTensor, linear2: StoredTensor, bias2: StoredTensor
    let activation: Activation

    init(_ w: inout WeightStore, prefix p: String, config c: InternVLConfiguration) throws {
        let input = c.projectorInput, d = c.textConfig.hiddenSize
        norm = try w.take("\(p).layer_norm.weight", shape: [input])
        normBias = try w.take("\(p).layer_norm.bias", shape: [input])
        linear1 = try w.take("\(p).linear_1.weight", shape: [d, input])
        bias1 = try w.take("\(p).linear_1.bias", shape: [d])
        linear2 = try w.take("\(p).linear_2.weight", shape: [d, d])
        bias2 = try w.take("\(p).linear_2.bias", shape: [d])
        activation = try Activation(named: c.projectorHiddenAct)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = linear(layerNorm(x, weight: norm, bias: normBias, eps: 1e-5), weight: linear1, bias: bias1)
        activation.apply(&h)
        return linear(h, weight: linear2, bias: bias2)
    }
}

/// InternVL's pixel shuffle (`pixel_shuffle`, its "v2" layout) of each tile's `side × side` patch features
/// `[tiles·side², C]`: token (y, x) of the `side/f × side/f` result holds, at feature `(dy·f + dx)·C + c`, feature
/// c of patch (f·y + dy, f·x + dx).
func internVLPixelShuffle(_ x: Tensor, tiles: Int, side: Int, factor f: Int) -> Tensor {
    let c = x.columns, out = side / f
    var result = [Float](repeating: 0, count: x.count)
    x.scalars.withUnsafeBufferPointer { src in
        result.withUnsafeMutableBufferPointer { dst in
            for t in 0..<tiles {
                for y in 0..<out {
                    for xo in 0..<out {
                        let token = (t * out + y) * out + xo
                        for dy in 0..<f {
                            for dx in 0..<f {
                                let patch = (t * side + f * y + dy) * side + f * xo + dx
                                let to = token * c * f * f + (dy * f + dx) * c
                                for k in 0..<c { dst[to + k] = src[patch * c + k] }
                            }
                        }
                    }
                }
            }
        }
    }
    return Tensor(shape: [tiles * out * out, c * f * f], scalars: result)
}

// MARK: - Model

public final class InternVLModel: ArbiterModel, @unchecked Sendable {
    public let modelType = "internvl"
    public let identifier: String
    public let configuration: InternVLConfiguration
    public let vision: InternVisionTower
    let projector: InternVLProjector
    public let decoder: LlamaDecoder

    public convenience init(directory: ModelDirectory) throws {
        let config = try directory.configuration(InternVLConfiguration.self)
        try config.validate(file: directory.configURL.path)
        var (weights, _) = try directory.weightStore(
            memory: config.memoryTerms(file: directory.configURL.path), text: config.textConfig,
            sanitize: { try Self.sanitize($0, config: config, source: directory.url.path) })
        try self.init(configuration: config, weights: &weights, identifier: directory.url.lastPathComponent)
        try weights.finish()
    }

    init(configuration c: InternVLConfiguration, weights w: inout WeightStore, identifier: String) throws {
        configuration = c
        self.identifier = identifier
        vision = try InternVisionTower(configuration: c.visionConfig, weights: &w, prefix: "model.vision_tower")
        projector = try InternVLProjector(&w, prefix: "model.multi_modal_projector", config: c)
        decoder = try LlamaDecoder(configuration: c.textConfig, weights: &w, modelPrefix: "model.language_model.",
                                   lmHeadName: "lm_head.weight")
    }

    /// Maps the weight-name layouts of InternVL checkpoints onto one (transformers 5 in memory):
    /// `model.vision_tower.…`, `model.multi_modal_projector.…`, `model.language_model.…`, `lm_head.…`.
    /// - transformers `save_pretrained` and the `-hf` hub repositories: `vision_tower.…`,
    ///   `multi_modal_projector.…`, `language_model.model.…` / `language_model.lm_head.…` or the in-memory names;
    /// - OpenGVLab's original checkpoints: `vision_model.embeddings.{class_embedding, patch_embedding,
    ///   position_embedding}`, `vision_model.encoder.layers.{i}.{attn.qkv (fused), attn.proj, attn.q_norm,
    ///   attn.k_norm, ls1, ls2, norm1, norm2, mlp.fc1, mlp.fc2}`, `mlp1.{0,1,3}` (the projector's LayerNorm and
    ///   two linears), `language_model.model.…`, `language_model.lm_head.…` — the renames of transformers'
    ///   convert_internvl_weights_to_hf.py, the fused qkv split in three.
    /// Derived buffers (`rotary_emb.inv_freq`) are dropped.
    static func sanitize(_ tensors: [String: StoredTensor], config c: InternVLConfiguration,
                         source: String) throws -> [String: StoredTensor] {
        let prefixes: [(String, String)] = [
            ("language_model.lm_head.", "lm_head."),
            ("language_model.model.", "model.language_model."),
            ("vision_tower.", "model.vision_tower."),
            ("multi_modal_projector.", "model.multi_modal_projector."),
            ("vision_model.", "model.vision_tower."),
            ("mlp1.0.", "model.multi_modal_projector.layer_norm."),
            ("mlp1.1.", "model.multi_modal_projector.linear_1."),
            ("mlp1.3.", "model.multi_modal_projector.linear_2."),
        ]
        // Original InternViT names inside the tower (after the prefix rename), longest first.
        let original: [(String, String)] = [
            (".embeddings.class_embedding", ".embeddings.cls_token"),
            (".embeddings.patch_embedding.", ".embeddings.patch_embeddings.projection."),
            (".embeddings.position_embedding", ".embeddings.position_embeddings"),
            (".encoder.layers.", ".encoder.layer."),
            (".attn.proj.", ".attention.projection_layer."),
            (".attn.q_norm.", ".attention.q_norm."),
            (".attn.k_norm.", ".attention.k_norm."),
            (".ls1", ".lambda_1"), (".ls2", ".lambda_2"),
            (".norm1.", ".layernorm_before."), (".norm2.", ".layernorm_after."),
        ]
        var out: [String: StoredTensor] = [:]
        func put(_ name: String, _ tensor: StoredTensor, from: String) throws {
            guard out[name] == nil else {
                throw FormatError(.inconsistent, file: source, "tensors '\(from)' and another one both map to "
                                  + "'\(name)': the checkpoint mixes two weight-name layouts")
            }
            out[name] = tensor
        }
        for (name, tensor) in tensors {
            if name.hasSuffix("rotary_emb.inv_freq") { continue }
            var mapped = name
            for (from, to) in prefixes where name.hasPrefix(from) {
                mapped = to + name.dropFirst(from.count)
                break
            }
            if name.hasPrefix("vision_model.") {
                for (from, to) in original { mapped = mapped.replacingOccurrences(of: from, with: to) }
                if let range = mapped.range(of: ".attn.qkv.") {
                    let base = mapped[..<range.lowerBound] + ".attention."
                    let leaf = mapped[range.upperBound...]
                    for (part, slice) in try splitQKV(tensor, width: c.visionConfig.hiddenSize, source: source) {
                        try put("\(base)\(part)_proj.\(leaf)", slice, from: name)
                    }
                    continue
                }
            }
            try put(mapped, tensor, from: name)
        }
        return out
    }

    /// The q, k and v thirds of a fused `qkv` weight `[3d, d]` or bias `[3d]`.
    static func splitQKV(_ fused: StoredTensor, width d: Int, source: String) throws -> [(String, StoredTensor)] {
        guard fused.shape.first == 3 * d, fused.shape == [3 * d, d] || fused.shape == [3 * d] else {
            throw FormatError(.inconsistent, file: source, "tensor '\(fused.name)' has shape \(fused.shape); a fused "
                              + "qkv of vision_config.hidden_size \(d) is [\(3 * d), \(d)] "
                              + "(or [\(3 * d)] for its bias)")
        }
        let all = fused.toTensor().scalars, third = all.count / 3
        return ["q", "k", "v"].enumerated().map { i, part -> (String, StoredTensor) in
            let slice = Array(all[(i * third)..<((i + 1) * third)])
            return (part, StoredTensor(name: "\(fused.name)[\(part)]",
                                       Tensor(shape: [d] + fused.shape.dropFirst(), scalars: slice)))
        }
    }

    public var hookNames: [String] {
        vision.hookNames + ["vision.hook_selected", "vision.hook_shuffled", HookName.imageFeatures] + decoder.hookNames
    }

    /// Image features `[tiles · image_seq_length, d_model]` for the tiles `[tiles, C, S, S]`.
    public func imageFeatures(tiles pixels: Tensor, hooks: HookRun? = nil) throws -> Tensor {
        let c = configuration, v = c.visionConfig
        let index = c.hiddenStateIndex
        // transformers reads `last_hidden_state` (through the tower's LayerNorm when it has one) for -1 only, and
        // `hidden_states[k]` (never normalized) for any other layer, the last one written as a positive index too.
        let states = try vision.features(tiles: pixels, index: index, lastHiddenState: c.visionFeatureLayer == -1,
                                         hooks: hooks)
        let tiles = pixels.shape[0], n = v.positions
        // Drop each tile's class token (vision_feature_select_strategy "default").
        var rows: [Float] = []
        rows.reserveCapacity(tiles * (n - 1) * v.hiddenSize)
        for t in 0..<tiles {
            rows.append(contentsOf: states.scalars[((t * n + 1) * v.hiddenSize)..<((t + 1) * n * v.hiddenSize)])
        }
        var selected = Tensor(shape: [tiles * (n - 1), v.hiddenSize], scalars: rows)
        try hooks.visit("vision.hook_selected", &selected)
        var shuffled = internVLPixelShuffle(selected, tiles: tiles, side: v.grid.width, factor: c.shuffleFactor)
        try hooks.visit("vision.hook_shuffled", &shuffled)
        var projected = projector(shuffled)
        try hooks.visit(HookName.imageFeatures, &projected)
        return projected
    }
}
