// Pieces shared by the Qwen2-VL and Qwen2.5-VL vision towers, mirroring transformers 5.24's
// models/qwen2_5_vl/modeling_qwen2_5_vl.py and qwen2_vl/modeling_qwen2_vl.py (Qwen2_5_VisionPatchEmbed / PatchEmbed,
// Qwen2_5_VLVisionRotaryEmbedding, apply_rotary_pos_emb_vision, Qwen2_5_VLVisionAttention / VisionAttention,
// Qwen2_5_VLPatchMerger / PatchMerger) and transformers/vision_utils.py (get_vision_position_ids,
// get_vision_cu_seqlens, get_vision_window_index).
import ArbiterFormats
import ArbiterTensor
import Foundation

// MARK: - Token layout: positions, segments, windows

/// Where each vision token sits, and which tokens attend to each other, for a list of image grids.
/// Tokens are in the tower's working order: the processor's order (merge blocks of `m²` patches) for
/// Qwen2-VL, window order for Qwen2.5-VL (`order[k]` = processor-order merge unit at working position k).
public struct QwenVisionLayout: Sendable, Equatable {
    /// Merge units (groups of `m²` patches) in working order: `order[k]` is the processor-order unit index.
    public let order: [Int]
    /// `cu_seqlens`: boundaries of the full-attention segments (one per image frame), in patches.
    public let fullSegments: [Int]
    /// `cu_window_seqlens` (Qwen2.5-VL): boundaries of the attention windows, in patches.
    public let windowSegments: [Int]
    /// Height and width position of every patch in working order (`get_vision_position_ids`, permuted).
    public let heightPositions: [Int]
    public let widthPositions: [Int]

    /// `windowSide`: merged patches per window side, or nil for no windows (Qwen2-VL). Grids must have positive
    /// sides that are multiples of `m` (`QwenVisionTower.validate` checks inputs from outside).
    public init(grids: [VisionGrid], mergeSize m: Int, windowSide: Int?) {
        precondition(m > 0 && (windowSide ?? 1) > 0,
                     "merge size \(m) and window side \(String(describing: windowSide)) must be positive")
        precondition(grids.allSatisfy { $0.t > 0 && $0.h > 0 && $0.w > 0 && $0.h % m == 0 && $0.w % m == 0 },
                     "grids \(grids) must be positive multiples of the merge size \(m)")
        let unit = m * m
        // get_vision_position_ids: per frame, (block row, block column, row in block, column in block).
        var hpos: [Int] = [], wpos: [Int] = []
        var full = [0]
        for g in grids {
            for _ in 0..<g.t {
                for by in 0..<(g.h / m) { for bx in 0..<(g.w / m) { for iy in 0..<m { for ix in 0..<m {
                    hpos.append(by * m + iy); wpos.append(bx * m + ix)
                } } } }
                full.append(full[full.count - 1] + g.h * g.w)
            }
        }
        fullSegments = full
        guard let side = windowSide else {
            order = Array(0..<(hpos.count / unit))
            windowSegments = full
            heightPositions = hpos
            widthPositions = wpos
            return
        }
        // get_vision_window_index: windows of side×side merge units, the grid padded to whole windows
        // (a full extra window when a side is already a multiple), empty windows dropped by unique_consecutive.
        var order: [Int] = []
        var cu = [0]
        var offset = 0
        for g in grids {
            let lh = g.h / m, lw = g.w / m
            let padH = side - lh % side, padW = side - lw % side
            let windowsH = (lh + padH) / side, windowsW = (lw + padW) / side
            for t in 0..<g.t {
                for wy in 0..<windowsH {
                    for wx in 0..<windowsW {
                        var count = 0
                        for iy in 0..<side {
                            for ix in 0..<side {
                                let y = wy * side + iy, x = wx * side + ix
                                guard y < lh && x < lw else { continue }
                                order.append(offset + t * lh * lw + y * lw + x)
                                count += 1
                            }
                        }
                        let next = cu[cu.count - 1] + count * unit
                        if next != cu[cu.count - 1] { cu.append(next) }
                    }
                }
            }
            offset += g.t * lh * lw
        }
        self.order = order
        windowSegments = cu
        var h = [Int](repeating: 0, count: hpos.count), w = h
        for (k, u) in order.enumerated() {
            for i in 0..<unit { h[k * unit + i] = hpos[u * unit + i]; w[k * unit + i] = wpos[u * unit + i] }
        }
        heightPositions = h
        widthPositions = w
    }

    public var patchCount: Int { heightPositions.count }

    /// Rows of `x` (`[patches, d]`, processor order) in working order, moving whole merge units.
    func toWorkingOrder(_ x: Tensor, unit: Int) -> Tensor {
        permuteUnits(x, unit: unit) { order[$0] }
    }

    /// Rows of `x` (`[units, d]`, one per merge unit, working order) back in processor order.
    func unitsToProcessorOrder(_ x: Tensor) -> Tensor {
        var inverse = [Int](repeating: 0, count: order.count)
        for (k, u) in order.enumerated() { inverse[u] = k }
        return permuteUnits(x, unit: 1) { inverse[$0] }
    }

    private func permuteUnits(_ x: Tensor, unit: Int, source: (Int) -> Int) -> Tensor {
        if order.indices.allSatisfy({ order[$0] == $0 }) { return x }
        let d = x.columns, block = unit * d
        var out = [Float](repeating: 0, count: x.count)
        x.scalars.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                for k in 0..<(x.rows / unit) {
                    let from = source(k) * block
                    for j in 0..<block { op[k * block + j] = xp[from + j] }
                }
            }
        }
        return Tensor(shape: x.shape, scalars: out)
    }
}

// MARK: - Patch embedding, rotary

/// The 3-D convolution (kernel = stride = temporal × patch × patch, no bias) as a matmul over flattened patches.
struct QwenPatchEmbedding: @unchecked Sendable {
    let weight: StoredTensor  // [width, C·T·P·P]

    init(_ w: inout WeightStore, prefix p: String, config c: QwenVisionConfiguration) throws {
        let conv = try w.take("\(p).proj.weight",
                              shape: [c.width, c.inChannels, c.temporalPatchSize, c.patchSize, c.patchSize])
        weight = StoredTensor(name: conv.name, conv.toTensor().reshaped([c.width, c.patchFeatures]))
    }

    func callAsFunction(_ pixels: Tensor) -> Tensor { linear(pixels, weight: weight) }
}

/// cos/sin of the 2-D vision rotary: frequencies `1 / θ^(2i / (D/2))` for i < D/4, the first D/4 angles from the
/// height position, the next D/4 from the width position, the whole repeated (rotate-half over all D features).
func qwenVisionRotary(layout: QwenVisionLayout, config c: QwenVisionConfiguration) -> RotaryTables {
    qwenVisionRotary(layout: layout, headDim: c.headDim, theta: c.ropeTheta)
}

/// The 2-D vision rotary of heads of `headDim` features (Qwen2-VL, Qwen2.5-VL and Qwen3-VL alike).
func qwenVisionRotary(layout: QwenVisionLayout, headDim: Int, theta: Double) -> RotaryTables {
    let spatial = headDim / 2
    let inv = RopeParameters(theta: theta, dimension: spatial, originalMaxPositions: 1).inverseFrequencies()
    let quarter = inv.count
    let h = layout.heightPositions, w = layout.widthPositions
    return RotaryTables(inverseFrequencies: inv + inv,
                        positionsPerFrequency: { i, t in i < quarter ? h[t] : w[t] }, count: layout.patchCount)
}

// MARK: - Attention

/// Bidirectional multi-head attention with a fused qkv projection, restricted to segments (images, or
/// windows): tokens attend only within their segment (`cu_seqlens` as a block-diagonal mask).
struct QwenVisionAttention: @unchecked Sendable {
    let qkv: StoredTensor, qkvBias: StoredTensor, proj: StoredTensor, projBias: StoredTensor
    let heads: AttentionHeads
    let scale: Float

    init(_ w: inout WeightStore, prefix p: String, config c: QwenVisionConfiguration) throws {
        try self.init(&w, prefix: p, width: c.width, heads: c.heads)
    }

    /// The attention of a tower `d` wide with `heads` heads (Qwen3-VL's is the same module).
    init(_ w: inout WeightStore, prefix p: String, width d: Int, heads: Int) throws {
        qkv = try w.take("\(p).qkv.weight", shape: [3 * d, d]); qkvBias = try w.take("\(p).qkv.bias", shape: [3 * d])
        proj = try w.take("\(p).proj.weight", shape: [d, d]); projBias = try w.take("\(p).proj.bias", shape: [d])
        self.heads = AttentionHeads(heads: heads, kvHeads: heads, headDim: d / heads)
        scale = 1 / Float(d / heads).squareRoot()
    }

    /// `segments`: boundaries (`cu_seqlens`) of the groups of rows that attend to each other.
    func callAsFunction(_ x: Tensor, context: (rotary: RotaryTables, segments: [Int]), layer l: Int,
                        names n: LayerHookNames, visits hooks: RunHooks) throws -> Tensor {
        let (rotary, segments) = context
        let t = x.rows, h = heads.heads, d = heads.headDim, width = h * d
        let fused = linear(x, weight: qkv, bias: qkvBias)
        var q = Tensor(zeros: [t, h, d]), k = Tensor(zeros: [t, h, d]), v = Tensor(zeros: [t, h, d])
        for r in 0..<t {
            let base = r * 3 * width
            for j in 0..<width {
                q.scalars[r * width + j] = fused.scalars[base + j]
                k.scalars[r * width + j] = fused.scalars[base + width + j]
                v.scalars[r * width + j] = fused.scalars[base + 2 * width + j]
            }
        }
        try hooks.visit(n.q, layer: l, &q)
        try hooks.visit(n.k, layer: l, &k)
        try hooks.visit(n.v, layer: l, &v)
        rotary.apply(to: &q, heads: h, headDim: d)
        rotary.apply(to: &k, heads: h, headDim: d)
        try hooks.visit(n.rotQ, layer: l, &q)
        try hooks.visit(n.rotK, layer: l, &k)

        var z: Tensor
        if hooks.wants(n.attnScores) || hooks.wants(n.pattern) {
            // Dense [H, T, T] with the block-diagonal mask, so hooks see (and may edit) the whole pattern.
            var scores = attentionScores(q: q.reshaped([t, width]), k: k.reshaped([t, width]), heads: heads,
                                         scale: scale)
            applySegmentMask(&scores, segments: segments)
            try hooks.visit(n.attnScores, layer: l, &scores)
            var pattern = attentionPattern(scores: scores)
            try hooks.visit(n.pattern, layer: l, &pattern)
            z = attentionMix(pattern: pattern, v: v.reshaped([t, width]), heads: heads)
        } else {
            // Segment by segment, as transformers' eager path splits at cu_seqlens.
            z = Tensor(zeros: [t, width])
            let q2 = q.reshaped([t, width]), k2 = k.reshaped([t, width]), v2 = v.reshaped([t, width])
            for s in 0..<(segments.count - 1) where segments[s + 1] > segments[s] {
                let range = segments[s]..<segments[s + 1]
                let pattern = attentionPattern(scores: attentionScores(q: q2.rows(range), k: k2.rows(range),
                                                                       heads: heads, scale: scale))
                let part = attentionMix(pattern: pattern, v: v2.rows(range), heads: heads)
                z.scalars.replaceSubrange((range.lowerBound * width)..<(range.upperBound * width), with: part.scalars)
            }
        }
        var zh = z.reshaped([t, h, d])
        try hooks.visit(n.z, layer: l, &zh)
        return linear(zh.reshaped([t, width]), weight: proj, bias: projBias)
    }
}

/// Sets scores between rows of different segments to -inf (`scores` is `[H, T, T]`).
func applySegmentMask(_ scores: inout Tensor, segments: [Int]) {
    let h = scores.shape[0], t = scores.shape[1]
    var segmentOf = [Int](repeating: 0, count: t)
    for s in 0..<(segments.count - 1) {
        for r in segments[s]..<min(segments[s + 1], t) { segmentOf[r] = s }
    }
    scores.scalars.withUnsafeMutableBufferPointer { p in
        for head in 0..<h {
            for i in 0..<t {
                let row = (head * t + i) * t
                for j in 0..<t where segmentOf[j] != segmentOf[i] { p[row + j] = -.infinity }
            }
        }
    }
}

// MARK: - Patch merger

/// Norm (RMSNorm for Qwen2.5-VL, LayerNorm for Qwen2-VL; eps 1e-6) → concatenation of each merge unit's
/// `m²` patches → Linear → GELU (erf) → Linear to the language model's width.
struct QwenPatchMerger: @unchecked Sendable {
    let norm: StoredTensor, normBias: StoredTensor?
    let fc1: StoredTensor, fc1Bias: StoredTensor, fc2: StoredTensor, fc2Bias: StoredTensor
    let unit: Int

    init(_ w: inout WeightStore, prefix p: String, config c: QwenVisionConfiguration) throws {
        unit = c.spatialMergeSize * c.spatialMergeSize
        let merged = c.width * unit
        norm = try w.take("\(p).ln_q.weight", shape: [c.width])
        normBias = c.kind == .qwen2VL ? try w.take("\(p).ln_q.bias", shape: [c.width]) : nil
        fc1 = try w.take("\(p).mlp.0.weight",
                         shape: [merged, merged]); fc1Bias = try w.take("\(p).mlp.0.bias", shape: [merged])
        fc2 = try w.take("\(p).mlp.2.weight",
                         shape: [c.outputSize, merged]); fc2Bias = try w.take("\(p).mlp.2.bias", shape: [c.outputSize])
    }

    func callAsFunction(_ x: Tensor, hooks: HookRun?) throws -> Tensor {
        var normalized = normBias == nil ? rmsNorm(x, weight: norm, eps: 1e-6)
            : layerNorm(x, weight: norm, bias: normBias, eps: 1e-6)
        try hooks.visit("vision.merger.ln_q.hook_normalized", &normalized)
        let grouped = normalized.reshaped([x.rows / unit, x.columns * unit])
        var h = linear(grouped, weight: fc1, bias: fc1Bias)
        try hooks.visit("vision.merger.hook_pre", &h)
        Activation.gelu.apply(&h)
        return linear(h, weight: fc2, bias: fc2Bias)
    }

    static let hookNames = ["vision.merger.ln_q.hook_normalized", "vision.merger.hook_pre"]
}
