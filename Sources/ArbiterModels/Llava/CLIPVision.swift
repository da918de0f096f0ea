// CLIP vision transformer: the image encoder of LLaVA.
// Mirrors transformers/models/clip/modeling_clip.py (CLIPVisionEmbeddings, CLIPAttention, CLIPMLP,
// CLIPEncoderLayer, CLIPVisionModel), eager attention, Float32.
//
// Hook points (N = patches + 1 class token, d = vision hidden size, m = intermediate size, H heads):
//   vision.hook_embed                   [N, d]  class + patch embeddings + position embeddings
//   vision.ln_pre.hook_normalized       [N, d]  pre_layrnorm output (= encoder input, hidden_states[0])
//   vision.blocks.{l}.hook_resid_pre    [N, d]
//   vision.blocks.{l}.attn.hook_q|k|v   [N, H, D]
//   vision.blocks.{l}.attn.hook_attn_scores [H, N, N] (no mask: full attention)
//   vision.blocks.{l}.attn.hook_pattern [H, N, N]
//   vision.blocks.{l}.attn.hook_z       [N, H, D]
//   vision.blocks.{l}.hook_attn_out     [N, d]
//   vision.blocks.{l}.hook_resid_mid    [N, d]
//   vision.blocks.{l}.mlp.hook_pre      [N, m]  fc1 output
//   vision.blocks.{l}.mlp.hook_post     [N, m]  activation output
//   vision.blocks.{l}.hook_mlp_out      [N, d]
//   vision.blocks.{l}.hook_resid_post   [N, d]  (= hidden_states[l + 1])
import ArbiterFormats
import ArbiterTensor
import Foundation

// MARK: - Attention

struct CLIPAttention: @unchecked Sendable {
    let q: StoredTensor, k: StoredTensor, v: StoredTensor, out: StoredTensor
    let qBias: StoredTensor, kBias: StoredTensor, vBias: StoredTensor, outBias: StoredTensor
    let heads: AttentionHeads
    let scale: Float

    init(_ w: inout WeightStore, prefix p: String, config c: CLIPVisionConfiguration) throws {
        let d = c.hiddenSize
        q = try w.take("\(p).q_proj.weight", shape: [d, d]); qBias = try w.take("\(p).q_proj.bias", shape: [d])
        k = try w.take("\(p).k_proj.weight", shape: [d, d]); kBias = try w.take("\(p).k_proj.bias", shape: [d])
        v = try w.take("\(p).v_proj.weight", shape: [d, d]); vBias = try w.take("\(p).v_proj.bias", shape: [d])
        out = try w.take("\(p).out_proj.weight", shape: [d, d]); outBias = try w.take("\(p).out_proj.bias", shape: [d])
        heads = AttentionHeads(heads: c.attentionHeads, kvHeads: c.attentionHeads, headDim: d / c.attentionHeads)
        scale = 1 / Float(heads.headDim).squareRoot()
    }

    func callAsFunction(_ x: Tensor, context: Void, layer l: Int, names n: LayerHookNames,
                        visits hooks: RunHooks) throws -> Tensor {
        let t = x.rows, h = heads.heads, d = heads.headDim
        var qs = linear(x, weight: q, bias: qBias).reshaped([t, h, d])
        var ks = linear(x, weight: k, bias: kBias).reshaped([t, h, d])
        var vs = linear(x, weight: v, bias: vBias).reshaped([t, h, d])
        try hooks.visit(n.q, layer: l, &qs)
        try hooks.visit(n.k, layer: l, &ks)
        try hooks.visit(n.v, layer: l, &vs)
        var scores = attentionScores(q: qs.reshaped([t, h * d]), k: ks.reshaped([t, h * d]), heads: heads, scale: scale)
        try hooks.visit(n.attnScores, layer: l, &scores)
        var pattern = attentionPattern(scores: scores)
        try hooks.visit(n.pattern, layer: l, &pattern)
        var z = attentionMix(pattern: pattern, v: vs.reshaped([t, h * d]), heads: heads).reshaped([t, h, d])
        try hooks.visit(n.z, layer: l, &z)
        return linear(z.reshaped([t, h * d]), weight: out, bias: outBias)
    }
}

// MARK: - Block

extension CLIPAttention: BlockAttention {
    static let hookPoints: [BlockHook] = [.q, .k, .v, .attnScores, .pattern, .z]
}

/// CLIPEncoderLayer: LayerNorm → attention → LayerNorm → fc1/fc2 MLP (its norms are not hook points).
typealias CLIPEncoderLayer = HookedBlock<CLIPAttention, FeedForwardMLP>

extension HookedBlock where Attention == CLIPAttention, MLP == FeedForwardMLP {
    init(_ w: inout WeightStore, prefix p: String, config c: CLIPVisionConfiguration) throws {
        let norm1 = try BlockNorm.layer(&w, "\(p).layer_norm1", width: c.hiddenSize, eps: c.layerNormEps)
        let norm2 = try BlockNorm.layer(&w, "\(p).layer_norm2", width: c.hiddenSize, eps: c.layerNormEps)
        self.init(norm1: norm1, attention: try CLIPAttention(&w, prefix: "\(p).self_attn", config: c), norm2: norm2,
                  mlp: try FeedForwardMLP(&w, prefix: "\(p).mlp", width: c.hiddenSize,
                                          intermediate: c.intermediateSize, activation: c.hiddenAct),
                  hooksNorms: false)
    }

    func callAsFunction(_ residual: Tensor, layer l: Int, names n: LayerHookNames, hooks: HookRun?) throws -> Tensor {
        try self(residual, context: (), layer: l, names: n, visits: RunHooks(hooks: hooks))
    }
}

// MARK: - Model

/// The CLIP vision tower. Weight names under `prefix` follow `CLIPVisionModel` (`embeddings.…`,
/// `pre_layrnorm.…`, `encoder.layers.{i}.…`, `post_layernorm.…`).
public final class CLIPVisionTower: @unchecked Sendable {
    public let configuration: CLIPVisionConfiguration
    let patchEmbedding: Tensor          // [d, 3·p·p] (conv weight flattened, channel-major)
    let classEmbedding: StoredTensor    // [d]
    let positionEmbedding: StoredTensor // [N, d]
    let preNorm: StoredTensor, preNormBias: StoredTensor
    let layers: [CLIPEncoderLayer]
    let layerNames: [LayerHookNames]

    /// `layersNeeded`: how many encoder layers to load and run (LLaVA reads hidden_states[-2], so the last
    /// layer's weights are loaded but never needed; they are still taken so loading stays strict).
    init(configuration c: CLIPVisionConfiguration, weights w: inout WeightStore, prefix p: String) throws {
        configuration = c
        let d = c.hiddenSize, patch = c.patchSize
        let conv = try w.take("\(p).embeddings.patch_embedding.weight", shape: [d, c.numChannels, patch, patch])
        patchEmbedding = conv.toTensor().reshaped([d, c.numChannels * patch * patch])
        classEmbedding = try w.take("\(p).embeddings.class_embedding", shape: [d])
        positionEmbedding = try w.take("\(p).embeddings.position_embedding.weight", shape: [c.positions, d])
        preNorm = try w.take("\(p).pre_layrnorm.weight", shape: [d])
        preNormBias = try w.take("\(p).pre_layrnorm.bias", shape: [d])
        // A loop, not `(0..<n).map`, which reserves n slots before the first tensor is looked up.
        var layers: [CLIPEncoderLayer] = []
        for i in 0..<c.layers { layers.append(try CLIPEncoderLayer(&w, prefix: "\(p).encoder.layers.\(i)", config: c)) }
        self.layers = layers
        // post_layernorm only feeds CLIP's pooled output, which LLaVA does not use.
        _ = try w.takeOptional("\(p).post_layernorm.weight", shape: [d])
        _ = try w.takeOptional("\(p).post_layernorm.bias", shape: [d])
        layerNames = (0..<c.layers).map { LayerHookNames(prefix: "vision.blocks.\($0)") }
    }

    public var hookNames: [String] {
        let perLayer = zip(layers, layerNames).flatMap { $0.hookNames($1) }
        return ["vision.hook_embed", "vision.ln_pre.hook_normalized"] + perLayer
    }

    /// Encoder hidden states 0...`throughLayer + 1` are computed; returns hidden_states[`index`]
    /// (index 0 = after pre_layrnorm, index l+1 = after layer l).
    public func hiddenState(pixelValues: Tensor, index: Int, hooks: HookRun?) throws -> Tensor {
        let c = configuration
        guard pixelValues.shape == [c.numChannels, c.imageSize, c.imageSize] else {
            throw ModelError.invalidInput("pixel values have shape \(pixelValues.shape); the vision tower wants "
                                          + "[\(c.numChannels), \(c.imageSize), \(c.imageSize)]")
        }
        guard (0...layers.count).contains(index) else {
            throw ModelError.invalidInput("vision feature index \(index) outside 0...\(layers.count)")
        }
        var x = embed(pixelValues)
        try hooks.visit("vision.hook_embed", &x)
        x = layerNorm(x, weight: preNorm, bias: preNormBias, eps: c.layerNormEps)
        try hooks.visit("vision.ln_pre.hook_normalized", &x)
        for l in 0..<index {
            x = try layers[l](x, layer: l, names: layerNames[l], hooks: hooks)
        }
        return x
    }

    /// Class token + patch embeddings (convolution as a matmul over im2col patches) + positions.
    func embed(_ pixels: Tensor) -> Tensor {
        let c = configuration, p = c.patchSize, grid = c.imageSize / p, ch = c.numChannels, size = c.imageSize
        var columns = [Float](repeating: 0, count: grid * grid * ch * p * p)
        for gy in 0..<grid {
            for gx in 0..<grid {
                let row = (gy * grid + gx) * ch * p * p
                for channel in 0..<ch {
                    for ky in 0..<p {
                        for kx in 0..<p {
                            columns[row + (channel * p + ky) * p + kx] =
                                pixels.scalars[(channel * size + gy * p + ky) * size + gx * p + kx]
                        }
                    }
                }
            }
        }
        let patches = matmulTransposed(Tensor(shape: [grid * grid, ch * p * p], scalars: columns), patchEmbedding)
        let d = c.hiddenSize
        var out = classEmbedding.toTensor().scalars + patches.scalars
        let positions = positionEmbedding.toTensor().scalars
        for i in out.indices { out[i] += positions[i] }
        return Tensor(shape: [grid * grid + 1, d], scalars: out)
    }
}

/// A[m, k] · B[n, k]ᵀ.
func matmulTransposed(_ a: Tensor, _ b: Tensor) -> Tensor {
    linear(a, weight: StoredTensor(name: "matmul", b))
}

// MARK: - Configuration

/// `vision_config` of a LLaVA config (`CLIPVisionConfig`).
public struct CLIPVisionConfiguration: Codable, Sendable, Equatable {
    public var modelType: String
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var attentionHeads: Int
    public var imageSize: Int
    public var patchSize: Int
    public var numChannels: Int
    public var hiddenAct: String
    public var layerNormEps: Float

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case layers = "num_hidden_layers", attentionHeads = "num_attention_heads", imageSize = "image_size"
        case patchSize = "patch_size", numChannels = "num_channels", hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "clip_vision_model"
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? 768
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? 3072
        layers = try c.decodeIfPresent(Int.self, forKey: .layers) ?? 12
        attentionHeads = try c.decodeIfPresent(Int.self, forKey: .attentionHeads) ?? 12
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? 224
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? 32
        numChannels = try c.decodeIfPresent(Int.self, forKey: .numChannels) ?? 3
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "quick_gelu"
        layerNormEps = Float(try c.decodeIfPresent(Double.self, forKey: .layerNormEps) ?? 1e-5)
    }

    public var grid: Int { imageSize / patchSize }
    public var positions: Int { grid * grid + 1 }

    public func validate(file: String) throws {
        func fail(_ p: String) -> ModelError { .invalidConfiguration(file: file, problem: "vision_config.\(p)") }
        guard modelType == "clip_vision_model" else {
            throw ModelError.unsupportedModelType(modelType, file: file,
                                                  supported: ["clip_vision_model (vision_config)"])
        }
        for (name, value) in [("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
                              ("num_hidden_layers", layers), ("num_attention_heads", attentionHeads),
                              ("image_size", imageSize), ("patch_size", patchSize), ("num_channels", numChannels)]
            where value <= 0 { throw fail("\(name) must be positive, got \(value)") }
        guard hiddenSize % attentionHeads == 0 else {
            throw fail("hidden_size \(hiddenSize) is not divisible by num_attention_heads \(attentionHeads)")
        }
        guard imageSize % patchSize == 0 else {
            throw fail("image_size \(imageSize) is not a multiple of patch_size \(patchSize)")
        }
        guard layerNormEps > 0, layerNormEps.isFinite else {
            throw fail("layer_norm_eps must be positive and finite, got \(layerNormEps)")
        }
        guard Activation(rawValue: hiddenAct) != nil else { throw fail("hidden_act '\(hiddenAct)' is not supported") }
        _ = try parameterCount(file: file)
    }

    /// `positions` (patches and the class token), computed with overflow checks.
    func positionCount(file: String) throws -> Int {
        let patches = try Checked.product("(vision_config.image_size / patch_size)²", [grid, grid], file: file)
        return try Checked.sum("the vision positions", [patches, 1], file: file)
    }

    /// Weights of one encoder layer: q, k, v, o (hidden² each), fc1 and fc2 (hidden × intermediate each).
    func parametersPerLayer(file: String) throws -> Int {
        let attention = try Checked.product("4 × vision_config.hidden_size²", [4, hiddenSize, hiddenSize], file: file)
        let mlp = try Checked.product("2 × vision_config.hidden_size × intermediate_size",
                                      [2, hiddenSize, intermediateSize], file: file)
        return try Checked.sum("the weights of one vision layer", [attention, mlp], file: file)
    }

    /// Weights of the tower (embeddings and layers), computed with overflow checks.
    public func parameterCount(file: String) throws -> Int {
        let patch = try Checked.product("vision_config.hidden_size × num_channels × patch_size²",
                                        [hiddenSize, numChannels, patchSize, patchSize], file: file)
        let position = try Checked.product("vision positions × vision_config.hidden_size",
                                           [positionCount(file: file), hiddenSize], file: file)
        let stack = try Checked.product("vision_config.num_hidden_layers × weights per layer (hidden_size, "
                                        + "intermediate_size)",
                                        [layers, parametersPerLayer(file: file)], file: file)
        return try Checked.sum("the vision parameter count", [patch, position, stack], file: file)
    }

    /// The terms of the tower's memory estimate (call after `validate`).
    func memoryTerms(file: String) throws -> [MemoryTerm] {
        let positions = try positionCount(file: file), perLayer = try parametersPerLayer(file: file)
        let sizes = "vision_config.image_size \(imageSize) / patch_size \(patchSize) → \(positions) positions"
        // One layer's working set, plus the hidden states of every layer that feature selection keeps.
        let activations = Checked.saturatingSum(
            ResourceGuard.transientBytes(positions: positions, width: hiddenSize, intermediate: intermediateSize,
                                         heads: attentionHeads, outputs: 0),
            Checked.saturatingProduct(4, positions, hiddenSize, layers + 1))
        return [
            .weights("\(layers) vision layers (vision_config.num_hidden_layers) of \(perLayer) weights each "
                     + "(vision_config.hidden_size \(hiddenSize), intermediate_size \(intermediateSize))",
                     count: Checked.saturatingProduct(layers, perLayer)),
            .weights("the vision embeddings (\(sizes) × hidden_size \(hiddenSize), num_channels \(numChannels))",
                     count: try parameterCount(file: file) - Checked.saturatingProduct(layers, perLayer)),
            MemoryTerm("vision activations (\(sizes), hidden_size \(hiddenSize), intermediate_size "
                       + "\(intermediateSize), num_attention_heads \(attentionHeads), num_hidden_layers \(layers))",
                       bytes: activations),
        ]
    }
}
