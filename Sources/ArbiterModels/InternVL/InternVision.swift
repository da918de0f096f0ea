// InternViT: the vision tower of InternVL, mirroring transformers 5.24's models/internvl/modeling_internvl.py
// (InternVLVisionEmbeddings, InternVLVisionAttention, InternVLVisionMLP, InternVLVisionLayer, InternVLVisionModel),
// eager attention, Float32. An image is a batch of tiles; each tile is its own sequence (class token + patches),
// and the tiles' rows are stacked: residual hooks hold `[tiles · N, d]`, patterns `[tiles, H, N, N]`.
//
// Hook points (N = patches + 1 class token per tile, d = vision hidden size, m = intermediate size, H heads):
//   vision.hook_embed                     [tiles·N, d]  class + patch embeddings + position embeddings
//   vision.blocks.{l}.hook_resid_pre      [tiles·N, d]
//   vision.blocks.{l}.ln1.hook_normalized [tiles·N, d]  layernorm_before
//   vision.blocks.{l}.attn.hook_q|k|v     [tiles·N, H, D]  (q, k after q_norm / k_norm when the tower has them)
//   vision.blocks.{l}.attn.hook_attn_scores, hook_pattern [tiles, H, N, N]
//   vision.blocks.{l}.attn.hook_z         [tiles·N, H, D]
//   vision.blocks.{l}.hook_attn_out       [tiles·N, d]  lambda_1 · projection_layer(z): what the block adds
//   vision.blocks.{l}.hook_resid_mid      [tiles·N, d]
//   vision.blocks.{l}.ln2.hook_normalized [tiles·N, d]  layernorm_after
//   vision.blocks.{l}.mlp.hook_pre|hook_post [tiles·N, m]
//   vision.blocks.{l}.hook_mlp_out        [tiles·N, d]  lambda_2 · fc2(…)
//   vision.blocks.{l}.hook_resid_post     [tiles·N, d]  (= hidden_states[l + 1])
//   vision.ln_post.hook_normalized        [tiles·N, d]  the tower's `layernorm` (only when use_mean_pooling is false)
import ArbiterFormats
import ArbiterTensor
import Foundation

// MARK: - Attention

/// Bidirectional attention within each tile, with InternViT's optional whole-width q/k RMSNorm and layer scale.
struct InternVisionAttention: BlockAttention, @unchecked Sendable {
    static let hookPoints: [BlockHook] = [.q, .k, .v, .attnScores, .pattern, .z]
    let q: StoredTensor, k: StoredTensor, v: StoredTensor, projection: StoredTensor
    let qBias: StoredTensor?, kBias: StoredTensor?, vBias: StoredTensor?, projectionBias: StoredTensor
    let qNorm: StoredTensor?, kNorm: StoredTensor?
    /// lambda_1: the layer scale of the attention's output.
    let scale: StoredTensor
    let heads: AttentionHeads
    let softmaxScale: Float

    init(_ w: inout WeightStore, prefix p: String, layerScale: String, config c: InternVisionConfiguration) throws {
        let d = c.hiddenSize
        q = try w.take("\(p).q_proj.weight", shape: [d, d])
        k = try w.take("\(p).k_proj.weight", shape: [d, d])
        v = try w.take("\(p).v_proj.weight", shape: [d, d])
        qBias = c.attentionBias ? try w.take("\(p).q_proj.bias", shape: [d]) : nil
        kBias = c.attentionBias ? try w.take("\(p).k_proj.bias", shape: [d]) : nil
        vBias = c.attentionBias ? try w.take("\(p).v_proj.bias", shape: [d]) : nil
        projection = try w.take("\(p).projection_layer.weight", shape: [d, d])
        projectionBias = try w.take("\(p).projection_layer.bias", shape: [d])
        qNorm = c.useQKNorm ? try w.take("\(p).q_norm.weight", shape: [d]) : nil
        kNorm = c.useQKNorm ? try w.take("\(p).k_norm.weight", shape: [d]) : nil
        scale = try w.take(layerScale, shape: [d])
        heads = AttentionHeads(heads: c.attentionHeads, kvHeads: c.attentionHeads, headDim: c.headDim)
        softmaxScale = 1 / Float(c.headDim).squareRoot()
    }

    /// `context`: rows per tile (the tower's positions).
    func callAsFunction(_ x: Tensor, context tile: Int, layer l: Int, names n: LayerHookNames,
                        visits hooks: RunHooks) throws -> Tensor {
        let t = x.rows, h = heads.heads, d = heads.headDim, width = h * d, tiles = t / tile
        var qs = linear(x, weight: q, bias: qBias), ks = linear(x, weight: k, bias: kBias)
        // InternVLVisionRMSNorm(embed_dim) keeps its own eps of 1e-6 (not layer_norm_eps).
        if let qNorm { qs = rmsNorm(qs, weight: qNorm, eps: 1e-6) }
        if let kNorm { ks = rmsNorm(ks, weight: kNorm, eps: 1e-6) }
        var q3 = qs.reshaped([t, h, d]), k3 = ks.reshaped([t, h, d])
        var v3 = linear(x, weight: v, bias: vBias).reshaped([t, h, d])
        try hooks.visit(n.q, layer: l, &q3)
        try hooks.visit(n.k, layer: l, &k3)
        try hooks.visit(n.v, layer: l, &v3)
        let q2 = q3.reshaped([t, width]), k2 = k3.reshaped([t, width]), v2 = v3.reshaped([t, width])
        var z = Tensor(zeros: [t, width])
        if hooks.wants(n.attnScores) || hooks.wants(n.pattern) {
            // Every tile's [H, N, N] scores side by side, so hooks see (and may edit) all of them.
            var scores = Tensor(zeros: [tiles, h, tile, tile])
            for i in 0..<tiles {
                let rows = (i * tile)..<((i + 1) * tile), block = h * tile * tile
                let part = attentionScores(q: q2.rows(rows), k: k2.rows(rows), heads: heads, scale: softmaxScale)
                scores.scalars.replaceSubrange((i * block)..<((i + 1) * block), with: part.scalars)
            }
            try hooks.visit(n.attnScores, layer: l, &scores)
            var pattern = attentionPattern(scores: scores)
            try hooks.visit(n.pattern, layer: l, &pattern)
            for i in 0..<tiles {
                let rows = (i * tile)..<((i + 1) * tile), block = h * tile * tile
                let p = Tensor(shape: [h, tile, tile], scalars: Array(pattern.scalars[(i * block)..<((i + 1) * block)]))
                let part = attentionMix(pattern: p, v: v2.rows(rows), heads: heads)
                z.scalars.replaceSubrange((rows.lowerBound * width)..<(rows.upperBound * width), with: part.scalars)
            }
        } else {
            for i in 0..<tiles {
                let rows = (i * tile)..<((i + 1) * tile)
                let pattern = attentionPattern(scores: attentionScores(q: q2.rows(rows), k: k2.rows(rows),
                                                                       heads: heads, scale: softmaxScale))
                let part = attentionMix(pattern: pattern, v: v2.rows(rows), heads: heads)
                z.scalars.replaceSubrange((rows.lowerBound * width)..<(rows.upperBound * width), with: part.scalars)
            }
        }
        var zh = z.reshaped([t, h, d])
        try hooks.visit(n.z, layer: l, &zh)
        var out = linear(zh.reshaped([t, width]), weight: projection, bias: projectionBias)
        scaleColumns(&out, by: scale)
        return out
    }
}

/// fc1 → activation → fc2, then the layer scale lambda_2.
struct InternVisionMLP: BlockMLP, @unchecked Sendable {
    static let hookPoints = FeedForwardMLP.hookPoints
    let mlp: FeedForwardMLP
    let scale: StoredTensor

    func callAsFunction(_ x: Tensor, layer l: Int, names n: LayerHookNames, visits: RunHooks) throws -> Tensor {
        var out = try mlp(x, layer: l, names: n, visits: visits)
        scaleColumns(&out, by: scale)
        return out
    }
}

/// x[r, j] · s[j] (transformers' `lambda * output`, one float32 product per element).
func scaleColumns(_ x: inout Tensor, by s: StoredTensor) {
    let scale = s.toTensor().scalars, columns = x.columns
    x.scalars.withUnsafeMutableBufferPointer { p in
        for r in 0..<(p.count / columns) { for j in 0..<columns { p[r * columns + j] *= scale[j] } }
    }
}

// MARK: - Block

/// InternVLVisionLayer: norm → attention · lambda_1 → norm → MLP · lambda_2.
typealias InternVisionLayer = HookedBlock<InternVisionAttention, InternVisionMLP>

extension HookedBlock where Attention == InternVisionAttention, MLP == InternVisionMLP {
    init(_ w: inout WeightStore, prefix p: String, config c: InternVisionConfiguration) throws {
        func norm(_ name: String) throws -> BlockNorm {
            c.norm == .layerNorm ? try .layer(&w, "\(p).\(name)", width: c.hiddenSize, eps: c.layerNormEps)
                : try .rms(&w, "\(p).\(name)", width: c.hiddenSize, eps: c.layerNormEps)
        }
        let attention = try InternVisionAttention(&w, prefix: "\(p).attention", layerScale: "\(p).lambda_1", config: c)
        let mlp = InternVisionMLP(
            mlp: try FeedForwardMLP(&w, prefix: "\(p).mlp", width: c.hiddenSize, intermediate: c.intermediateSize,
                                    activation: c.hiddenAct),
            scale: try w.take("\(p).lambda_2", shape: [c.hiddenSize]))
        self.init(norm1: try norm("layernorm_before"), attention: attention, norm2: try norm("layernorm_after"),
                  mlp: mlp, hooksNorms: true)
    }
}

// MARK: - Tower

/// The InternViT tower. Weight names under `prefix` follow `InternVLVisionModel` (`embeddings.…`,
/// `encoder.layer.{i}.…`, `layernorm.…`).
public final class InternVisionTower: @unchecked Sendable {
    public let configuration: InternVisionConfiguration
    let patchEmbedding: StoredTensor    // [d, C·P·P] (conv weight flattened, channel-major)
    let patchBias: StoredTensor         // [d]
    let classToken: StoredTensor        // [d]
    let positionEmbedding: StoredTensor // [N, d]
    let postNorm: (weight: StoredTensor, bias: StoredTensor)?
    let layers: [InternVisionLayer]
    let layerNames: [LayerHookNames]

    init(configuration c: InternVisionConfiguration, weights w: inout WeightStore, prefix p: String) throws {
        configuration = c
        let d = c.hiddenSize, (ph, pw) = c.patchSize
        let conv = try w.take("\(p).embeddings.patch_embeddings.projection.weight", shape: [d, c.numChannels, ph, pw])
        patchEmbedding = StoredTensor(name: conv.name, conv.toTensor().reshaped([d, c.patchFeatures]))
        patchBias = try w.take("\(p).embeddings.patch_embeddings.projection.bias", shape: [d])
        let cls = try w.take("\(p).embeddings.cls_token", shape: [1, 1, d])
        classToken = StoredTensor(name: cls.name, cls.toTensor().reshaped([d]))
        let positions = try w.take("\(p).embeddings.position_embeddings", shape: [1, c.positions, d])
        positionEmbedding = StoredTensor(name: positions.name, positions.toTensor().reshaped([c.positions, d]))
        // The mask token only serves masked image modelling (bool_masked_pos), never InternVL's forward.
        if c.useMaskToken { _ = try w.take("\(p).embeddings.mask_token", shape: [1, 1, d]) }
        var layers: [InternVisionLayer] = []
        for i in 0..<c.layers { layers.append(try InternVisionLayer(&w, prefix: "\(p).encoder.layer.\(i)", config: c)) }
        self.layers = layers
        postNorm = c.useMeanPooling ? nil
            : (try w.take("\(p).layernorm.weight", shape: [d]), try w.take("\(p).layernorm.bias", shape: [d]))
        layerNames = (0..<c.layers).map { LayerHookNames(prefix: "vision.blocks.\($0)") }
    }

    public var hookNames: [String] {
        ["vision.hook_embed"] + zip(layers, layerNames).flatMap { $0.hookNames($1) }
            + (postNorm == nil ? [] : ["vision.ln_post.hook_normalized"])
    }

    /// hidden_states[`index`] of the tiles `[tiles, C, S, S]` (0 = embeddings, l + 1 = after layer l; with
    /// `index` = layers and no mean pooling, after the tower's LayerNorm, as `last_hidden_state`). Layers past
    /// `index` run only when a hook asks for them.
    func features(tiles pixels: Tensor, index: Int, lastHiddenState: Bool, hooks: HookRun?) throws -> Tensor {
        let c = configuration
        guard pixels.rank == 4, pixels.shape[0] > 0,
              Array(pixels.shape.dropFirst()) == [c.numChannels, c.imageSize.height, c.imageSize.width] else {
            throw ModelError.invalidInput("pixel values have shape \(pixels.shape); the InternViT tower wants "
                                          + "[tiles, \(c.numChannels), \(c.imageSize.height), \(c.imageSize.width)]")
        }
        let hooked = (0..<layers.count).last { l in layers[l].hookNames(layerNames[l]).contains { hooks.wants($0) } }
        let deepest = max(index, hooked.map { $0 + 1 } ?? 0,
                          hooks.wants("vision.ln_post.hook_normalized") ? layers.count : 0)
        var x = embed(pixels)
        try hooks.visit("vision.hook_embed", &x)
        var selected = index == 0 ? x : nil
        for l in 0..<deepest {
            x = try layers[l](x, context: c.positions, layer: l, names: layerNames[l], visits: RunHooks(hooks: hooks))
            if l + 1 == index { selected = x }
        }
        if let postNorm, deepest == layers.count {
            var normalized = layerNorm(x, weight: postNorm.weight, bias: postNorm.bias, eps: c.layerNormEps)
            try hooks.visit("vision.ln_post.hook_normalized", &normalized)
            if lastHiddenState { selected = normalized }
        }
        return selected ?? x
    }

    /// Class token + patch embeddings (convolution as a matmul over im2col patches, with its bias) + positions,
    /// tile by tile.
    func embed(_ pixels: Tensor) -> Tensor {
        let c = configuration, (ph, pw) = c.patchSize, (gh, gw) = c.grid, ch = c.numChannels
        let (sh, sw) = c.imageSize, tiles = pixels.shape[0], d = c.hiddenSize, n = c.positions
        let features = c.patchFeatures, tileSize = ch * sh * sw
        var columns = [Float](repeating: 0, count: tiles * gh * gw * features)
        for t in 0..<tiles {
            for gy in 0..<gh {
                for gx in 0..<gw {
                    let row = ((t * gh + gy) * gw + gx) * features
                    for channel in 0..<ch {
                        for ky in 0..<ph {
                            for kx in 0..<pw {
                                columns[row + (channel * ph + ky) * pw + kx] =
                                    pixels.scalars[t * tileSize + (channel * sh + gy * ph + ky) * sw + gx * pw + kx]
                            }
                        }
                    }
                }
            }
        }
        let patches = linear(Tensor(shape: [tiles * gh * gw, features], scalars: columns), weight: patchEmbedding,
                             bias: patchBias)
        let cls = classToken.toTensor().scalars, positions = positionEmbedding.toTensor().scalars
        var out = [Float](repeating: 0, count: tiles * n * d)
        for t in 0..<tiles {
            for j in 0..<d { out[t * n * d + j] = cls[j] + positions[j] }
            for p in 0..<(n - 1) {
                for j in 0..<d {
                    out[(t * n + p + 1) * d + j] =
                        patches.scalars[(t * (n - 1) + p) * d + j] + positions[(p + 1) * d + j]
                }
            }
        }
        return Tensor(shape: [tiles * n, d], scalars: out)
    }
}
