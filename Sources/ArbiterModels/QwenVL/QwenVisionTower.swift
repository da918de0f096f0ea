// The Qwen2-VL / Qwen2.5-VL vision transformer: patch embedding → (window reordering) → blocks → patch merger →
// (reverse reordering). Mirrors transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py
// (Qwen2_5_VisionTransformerPretrainedModel.forward) and qwen2_vl/modeling_qwen2_vl.py
// (Qwen2VisionTransformerPretrainedModel.forward), eager attention, Float32.
//
// Hook points (N patches, d tower width, m intermediate size, H heads, D head dim, U = N / merge² merged tokens).
// Qwen2.5-VL works in window order (QwenVisionLayout.order), exactly as transformers does, so every
// `vision.blocks.*` and `vision.merger.*` tensor is in window order; Qwen2-VL works in processor order.
//   vision.hook_embed                      [N, d]     patch embedding output, processor order
//   vision.blocks.{l}.hook_resid_pre       [N, d]
//   vision.blocks.{l}.ln1.hook_normalized  [N, d]
//   vision.blocks.{l}.attn.hook_q|k|v      [N, H, D]  before rotary
//   vision.blocks.{l}.attn.hook_rot_q|rot_k [N, H, D] after the 2-D rotary
//   vision.blocks.{l}.attn.hook_attn_scores [H, N, N] scaled, -inf between windows/images
//   vision.blocks.{l}.attn.hook_pattern    [H, N, N]  block-diagonal probabilities
//   vision.blocks.{l}.attn.hook_z          [N, H, D]
//   vision.blocks.{l}.hook_attn_out        [N, d]
//   vision.blocks.{l}.hook_resid_mid       [N, d]
//   vision.blocks.{l}.ln2.hook_normalized  [N, d]
//   vision.blocks.{l}.mlp.hook_pre         [N, m]     gate_proj (2.5) / fc1 (2) output
//   vision.blocks.{l}.mlp.hook_pre_linear  [N, m]     up_proj output (Qwen2.5-VL only)
//   vision.blocks.{l}.mlp.hook_post        [N, m]
//   vision.blocks.{l}.hook_mlp_out         [N, d]
//   vision.blocks.{l}.hook_resid_post      [N, d]
//   vision.merger.ln_q.hook_normalized     [N, d]
//   vision.merger.hook_pre                 [U, merge²·d] first merger linear, before GELU
import ArbiterFormats
import ArbiterTensor
import Foundation

/// One vision block (Qwen2-VL or Qwen2.5-VL): a `HookedBlock` over `QwenVisionAttention` and its MLP.
protocol QwenVisionBlock: Sendable {
    func callAsFunction(_ residual: Tensor, rotary: RotaryTables, segments: [Int], layer l: Int,
                        names n: LayerHookNames, hooks: HookRun?) throws -> Tensor
    func hookNames(_ n: LayerHookNames) -> [String]
}

extension QwenVisionAttention: BlockAttention {
    static let hookPoints: [BlockHook] = [.q, .k, .v, .rotQ, .rotK, .attnScores, .pattern, .z]
}

extension HookedBlock: QwenVisionBlock where Attention == QwenVisionAttention {
    func callAsFunction(_ residual: Tensor, rotary: RotaryTables, segments: [Int], layer l: Int,
                        names n: LayerHookNames, hooks: HookRun?) throws -> Tensor {
        try self(residual, context: (rotary, segments), layer: l, names: n, visits: RunHooks(hooks: hooks))
    }
}

public final class QwenVisionTower: @unchecked Sendable {
    public let configuration: QwenVisionConfiguration
    let patchEmbedding: QwenPatchEmbedding
    let blocks: [any QwenVisionBlock]
    let merger: QwenPatchMerger
    let layerNames: [LayerHookNames]
    let blockHookNames: [String]

    /// Loads weights named `<prefix>.patch_embed.…`, `<prefix>.blocks.{i}.…`, `<prefix>.merger.…`.
    init(configuration c: QwenVisionConfiguration, weights w: inout WeightStore, prefix p: String) throws {
        configuration = c
        patchEmbedding = try QwenPatchEmbedding(&w, prefix: "\(p).patch_embed", config: c)
        var blocks: [any QwenVisionBlock] = []
        for i in 0..<c.depth {
            switch c.kind {
            case .qwen2VL: blocks.append(try Qwen2VisionBlock(&w, prefix: "\(p).blocks.\(i)", config: c))
            case .qwen2_5VL: blocks.append(try Qwen2_5VisionBlock(&w, prefix: "\(p).blocks.\(i)", config: c))
            }
        }
        self.blocks = blocks
        merger = try QwenPatchMerger(&w, prefix: "\(p).merger", config: c)
        layerNames = (0..<c.depth).map { LayerHookNames(prefix: "vision.blocks.\($0)") }
        blockHookNames = zip(blocks, layerNames).flatMap { $0.hookNames($1) }
    }

    public var hookNames: [String] { ["vision.hook_embed"] + blockHookNames + QwenPatchMerger.hookNames }

    /// Token layout (window order, segments, 2-D positions) for `grids`.
    public func layout(for grids: [VisionGrid]) -> QwenVisionLayout {
        let c = configuration
        return QwenVisionLayout(grids: grids, mergeSize: c.spatialMergeSize,
                                windowSide: c.kind == .qwen2_5VL ? c.mergedWindowSide : nil)
    }

    /// Checks that `pixelValues` (`[patches, C·T·P·P]`) holds exactly the patches of `grids`.
    public func validate(pixelValues: Tensor, grids: [VisionGrid]) throws {
        try Self.validate(pixelValues: pixelValues, grids: grids, mergeSize: configuration.spatialMergeSize,
                          patchFeatures: configuration.patchFeatures)
    }

    /// The checks of any tower of Qwen2-VL patch grids (Qwen3-VL's too): grids given, positive, multiples of the
    /// merge size, and pixel values of one row of `patchFeatures` per patch.
    static func validate(pixelValues: Tensor, grids: [VisionGrid], mergeSize m: Int, patchFeatures: Int) throws {
        guard !grids.isEmpty else {
            throw ModelError.invalidInput("pixel values were given without any image grid (image_grid_thw)")
        }
        for (i, g) in grids.enumerated() {
            guard g.t > 0, g.h > 0, g.w > 0, g.h % m == 0, g.w % m == 0 else {
                throw ModelError.invalidInput("image grid \(i) is \(g); t, h, w must be positive and h, w multiples of "
                                              + "spatial_merge_size \(m)")
            }
        }
        let patches = grids.reduce(0) { $0 + $1.patches }
        guard pixelValues.rank == 2, pixelValues.shape == [patches, patchFeatures] else {
            throw ModelError.invalidInput("pixel values have shape \(pixelValues.shape); the grids \(grids) need "
                                          + "[\(patches), \(patchFeatures)] (patches × channels·temporal·patch²)")
        }
    }

    /// Merged image features `[patches / merge², output size]` in processor order (one row per image token).
    public func callAsFunction(pixelValues: Tensor, grids: [VisionGrid], hooks: HookRun?) throws -> Tensor {
        try validate(pixelValues: pixelValues, grids: grids)
        let c = configuration, unit = c.spatialMergeSize * c.spatialMergeSize
        let layout = layout(for: grids)
        var x = patchEmbedding(pixelValues)
        try hooks.visit("vision.hook_embed", &x)
        x = layout.toWorkingOrder(x, unit: unit)
        let rotary = qwenVisionRotary(layout: layout, config: c)
        let full = Set(c.fullAttentionBlocks)
        for (l, block) in blocks.enumerated() {
            let segments = c.kind == .qwen2VL || full.contains(l) ? layout.fullSegments : layout.windowSegments
            x = try block(x, rotary: rotary, segments: segments, layer: l, names: layerNames[l], hooks: hooks)
        }
        let merged = try merger(x, hooks: hooks)
        return layout.unitsToProcessorOrder(merged)
    }
}
