// The Qwen3-VL vision transformer: patch embedding (with bias) + learned position embeddings interpolated to
// the image's grid → blocks (LayerNorm, full attention with the 2-D rotary, LayerNorm, linear_fc1 →
// gelu_pytorch_tanh →
// linear_fc2) → the patch merger; after each block of `deepstack_visual_indexes` a DeepStack merger (LayerNorm after
// the merge-unit shuffle) reads the tower. Mirrors transformers/models/qwen3_vl/modeling_qwen3_vl.py
// (Qwen3VLVisionModel.forward, Qwen3VLVisionPatchEmbed, Qwen3VLVisionPatchMerger, Qwen3VLVisionBlock) and
// transformers/vision_utils.py (get_vision_interpolation_indices_and_weights, bilinear, align_corners), eager
// attention, Float32. No windows: every tensor is in the processor's order (merge units of m² patches).
//
// Hook points (N patches, d tower width, m intermediate size, H heads, D head dim, U = N / merge² merged tokens,
// d_model the language model's width):
//   vision.hook_embed                          [N, d]      patch embedding output
//   vision.hook_pos_embed                      [N, d]      learned position embeddings, interpolated to the grid
//   vision.blocks.{l}.hook_resid_pre           [N, d]      (block 0: hook_embed + hook_pos_embed)
//   vision.blocks.{l}.ln1.hook_normalized … vision.blocks.{l}.hook_resid_post   as in Qwen2-VL's tower
//   vision.deepstack.{i}.norm.hook_normalized  [U, merge²·d] DeepStack merger i (after block
//                                                          deepstack_visual_indexes[i]): LayerNorm after the shuffle
//   vision.deepstack.{i}.hook_pre              [U, merge²·d] its first linear, before GELU
//   vision.deepstack.{i}.hook_features         [U, d_model] its output (added after a decoder layer:
//                                                          blocks.{k}.hook_deepstack)
//   vision.merger.norm.hook_normalized         [N, d]      the final merger's LayerNorm (before the shuffle)
//   vision.merger.hook_pre                     [U, merge²·d] its first linear, before GELU
import ArbiterFormats
import ArbiterTensor
import Foundation

// MARK: - Embeddings

/// The 3-D convolution (kernel = stride = temporal × patch × patch, with bias) as a matmul over flattened patches.
struct Qwen3PatchEmbedding: @unchecked Sendable {
    let weight: StoredTensor  // [width, C·T·P·P]
    let bias: StoredTensor

    init(_ w: inout WeightStore, prefix p: String, config c: Qwen3VisionConfiguration) throws {
        let conv = try w.take("\(p).proj.weight",
                              shape: [c.width, c.inChannels, c.temporalPatchSize, c.patchSize, c.patchSize])
        weight = StoredTensor(name: conv.name, conv.toTensor().reshaped([c.width, c.patchFeatures]))
        bias = try w.take("\(p).proj.bias", shape: [c.width])
    }

    func callAsFunction(_ pixels: Tensor) -> Tensor { linear(pixels, weight: weight, bias: bias) }
}

/// The learned `side × side` position table resampled bilinearly (align_corners, edge taps clamped) to each
/// image's patch grid, in the processor's patch order: transformers' `get_vision_interpolation_indices_and_weights`
/// and the weighted sum of the four taps, in float32 as there.
struct Qwen3PositionEmbedding: @unchecked Sendable {
    let table: Tensor  // [num_position_embeddings, width]
    let side: Int

    init(_ w: inout WeightStore, prefix p: String, config c: Qwen3VisionConfiguration) throws {
        table = try w.take("\(p).weight", shape: [c.positionEmbeddings, c.width]).toTensor()
        side = c.positionGridSide
    }

    /// The two taps into the table and their weights for target `index` on an axis of `size` patches.
    func taps(_ index: Int, size: Int) -> [(tap: Int, weight: Float)] {
        let src = Float(index) * Float(side - 1) / Float(max(size - 1, 1))
        let floor = src.rounded(.down)
        return (0..<2).map { o in
            let tap = min(max(Int(floor) + o, 0), side - 1)
            let distance = abs(src - floor - Float(o))
            return (tap, max(1 - distance, 0))
        }
    }

    /// `[patches, width]` for `grids`, merge units of `m × m` patches in order.
    func callAsFunction(grids: [VisionGrid], mergeSize m: Int) -> Tensor {
        let d = table.columns
        var out: [Float] = []
        out.reserveCapacity(grids.reduce(0) { $0 + $1.patches } * d)
        table.scalars.withUnsafeBufferPointer { tp in
            for g in grids {
                let blocksW = g.w / m
                for within in 0..<(g.t * g.h * g.w) {
                    let k = within % (g.h * g.w)
                    let row = (k / (m * m * blocksW)) * m + (k / m) % m
                    let col = ((k / (m * m)) % blocksW) * m + k % m
                    var acc = [Float](repeating: 0, count: d)
                    for (hTap, hWeight) in taps(row, size: g.h) {
                        for (wTap, wWeight) in taps(col, size: g.w) {
                            let weight = hWeight * wWeight, base = (hTap * side + wTap) * d
                            for j in 0..<d { acc[j] += tp[base + j] * weight }
                        }
                    }
                    out += acc
                }
            }
        }
        return Tensor(shape: [out.count / max(d, 1), d], scalars: out)
    }
}

// MARK: - Block

extension HookedBlock where Attention == QwenVisionAttention, MLP == FeedForwardMLP {
    /// LayerNorm → full attention → LayerNorm → linear_fc1 → activation → linear_fc2 (Qwen3VLVisionBlock).
    init(_ w: inout WeightStore, prefix p: String, config c: Qwen3VisionConfiguration) throws {
        let norm1 = try BlockNorm.layer(&w, "\(p).norm1", width: c.width, eps: 1e-6)
        let norm2 = try BlockNorm.layer(&w, "\(p).norm2", width: c.width, eps: 1e-6)
        self.init(norm1: norm1, attention: try QwenVisionAttention(&w, prefix: "\(p).attn", width: c.width,
                                                                   heads: c.heads),
                  norm2: norm2,
                  mlp: try FeedForwardMLP(&w, prefix: "\(p).mlp", width: c.width, intermediate: c.intermediateSize,
                                          activation: c.hiddenAct, names: ("linear_fc1", "linear_fc2")),
                  hooksNorms: true)
    }
}

// MARK: - Patch mergers

/// LayerNorm (over the tower width, or with `use_postshuffle_norm` over a merge unit's concatenated patches) →
/// concatenation of each merge unit's m² patches → linear_fc1 → GELU (erf) → linear_fc2 to the language model's
/// width.
struct Qwen3PatchMerger: @unchecked Sendable {
    let norm: StoredTensor, normBias: StoredTensor
    let fc1: StoredTensor, fc1Bias: StoredTensor, fc2: StoredTensor, fc2Bias: StoredTensor
    let unit: Int
    let postShuffleNorm: Bool
    /// Hook names: the norm's output and the first linear's.
    let normalizedName: String, preName: String

    init(_ w: inout WeightStore, prefix p: String, config c: Qwen3VisionConfiguration, postShuffleNorm: Bool,
         hookPrefix: String) throws {
        unit = c.spatialMergeSize * c.spatialMergeSize
        self.postShuffleNorm = postShuffleNorm
        let merged = c.mergedWidth, normed = postShuffleNorm ? merged : c.width
        norm = try w.take("\(p).norm.weight", shape: [normed]); normBias = try w.take("\(p).norm.bias", shape: [normed])
        fc1 = try w.take("\(p).linear_fc1.weight", shape: [merged, merged])
        fc1Bias = try w.take("\(p).linear_fc1.bias", shape: [merged])
        fc2 = try w.take("\(p).linear_fc2.weight", shape: [c.outputSize, merged])
        fc2Bias = try w.take("\(p).linear_fc2.bias", shape: [c.outputSize])
        normalizedName = "\(hookPrefix).norm.hook_normalized"
        preName = "\(hookPrefix).hook_pre"
    }

    var hookNames: [String] { [normalizedName, preName] }

    func callAsFunction(_ x: Tensor, hooks: HookRun?) throws -> Tensor {
        let shape = [x.rows / unit, x.columns * unit]
        var normalized = postShuffleNorm ? layerNorm(x.reshaped(shape), weight: norm, bias: normBias, eps: 1e-6)
            : layerNorm(x, weight: norm, bias: normBias, eps: 1e-6)
        try hooks.visit(normalizedName, &normalized)
        var h = linear(normalized.reshaped(shape), weight: fc1, bias: fc1Bias)
        try hooks.visit(preName, &h)
        Activation.gelu.apply(&h)
        return linear(h, weight: fc2, bias: fc2Bias)
    }
}

// MARK: - Tower

public final class Qwen3VisionTower: @unchecked Sendable {
    public let configuration: Qwen3VisionConfiguration
    let patchEmbedding: Qwen3PatchEmbedding
    let positionEmbedding: Qwen3PositionEmbedding
    let blocks: [Qwen2VisionBlock]
    let merger: Qwen3PatchMerger
    /// DeepStack merger i (`deepstack_merger_list.{i}`), read after block `deepstack_visual_indexes[i]`.
    let deepstackMergers: [Qwen3PatchMerger]
    let layerNames: [LayerHookNames]
    public let hookNames: [String]

    /// Loads weights named `<prefix>.patch_embed.…`, `<prefix>.pos_embed.…`, `<prefix>.blocks.{i}.…`,
    /// `<prefix>.merger.…`, `<prefix>.deepstack_merger_list.{i}.…`.
    init(configuration c: Qwen3VisionConfiguration, weights w: inout WeightStore, prefix p: String) throws {
        configuration = c
        patchEmbedding = try Qwen3PatchEmbedding(&w, prefix: "\(p).patch_embed", config: c)
        positionEmbedding = try Qwen3PositionEmbedding(&w, prefix: "\(p).pos_embed", config: c)
        blocks = try (0..<c.depth).map { try Qwen2VisionBlock(&w, prefix: "\(p).blocks.\($0)", config: c) }
        merger = try Qwen3PatchMerger(&w, prefix: "\(p).merger", config: c, postShuffleNorm: false,
                                      hookPrefix: "vision.merger")
        deepstackMergers = try c.deepstackIndexes.indices.map {
            try Qwen3PatchMerger(&w, prefix: "\(p).deepstack_merger_list.\($0)", config: c, postShuffleNorm: true,
                                 hookPrefix: Self.deepstackPrefix($0))
        }
        let layerNames = (0..<c.depth).map { LayerHookNames(prefix: "vision.blocks.\($0)") }
        self.layerNames = layerNames
        let readers = Dictionary(uniqueKeysWithValues: c.deepstackOrder.map { ($0.block, $0.merger) })
        let deepstackMergers = self.deepstackMergers
        hookNames = ["vision.hook_embed", "vision.hook_pos_embed"]
            + zip(blocks, layerNames).enumerated().flatMap { l, pair -> [String] in
                pair.0.hookNames(pair.1)
                    + (readers[l].map { deepstackMergers[$0].hookNames + [Self.featuresName($0)] } ?? [])
            }
            + merger.hookNames
    }

    static func deepstackPrefix(_ merger: Int) -> String { "vision.deepstack.\(merger)" }
    /// The hook name of DeepStack merger `merger`'s output.
    static func featuresName(_ merger: Int) -> String { "\(deepstackPrefix(merger)).hook_features" }

    /// Checks that `pixelValues` (`[patches, C·T·P·P]`) holds exactly the patches of `grids`.
    public func validate(pixelValues: Tensor, grids: [VisionGrid]) throws {
        try QwenVisionTower.validate(pixelValues: pixelValues, grids: grids, mergeSize: configuration.spatialMergeSize,
                                     patchFeatures: configuration.patchFeatures)
    }

    /// Merged image features `[patches / merge², output size]` (one row per image token) and the DeepStack
    /// features in the order the decoder adds them (the k-th after decoder layer k).
    public func callAsFunction(pixelValues: Tensor, grids: [VisionGrid], hooks: HookRun?) throws
        -> (features: Tensor, deepstack: [Tensor]) {
        try validate(pixelValues: pixelValues, grids: grids)
        let c = configuration
        let layout = QwenVisionLayout(grids: grids, mergeSize: c.spatialMergeSize, windowSide: nil)
        var x = patchEmbedding(pixelValues)
        try hooks.visit("vision.hook_embed", &x)
        var positions = positionEmbedding(grids: grids, mergeSize: c.spatialMergeSize)
        try hooks.visit("vision.hook_pos_embed", &positions)
        add(&x, positions)
        let rotary = qwenVisionRotary(layout: layout, headDim: c.headDim, theta: c.ropeTheta)
        let readers = Dictionary(uniqueKeysWithValues: c.deepstackOrder.map { ($0.block, $0.merger) })
        var deepstack: [Tensor] = []
        for (l, block) in blocks.enumerated() {
            x = try block(x, rotary: rotary, segments: layout.fullSegments, layer: l, names: layerNames[l],
                          hooks: hooks)
            if let i = readers[l] {
                var features = try deepstackMergers[i](x, hooks: hooks)
                try hooks.visit(Self.featuresName(i), &features)
                deepstack.append(features)
            }
        }
        return (try merger(x, hooks: hooks), deepstack)
    }
}
