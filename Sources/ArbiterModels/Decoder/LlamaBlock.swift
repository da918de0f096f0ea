// The decoder's transformer block: attention (with per-run segments of a batch and suffix runs) and SwiGLU MLP
// in the one `HookedBlock` (hook names: `BlockHook`, listed in LlamaDecoder.swift).
import ArbiterFormats
import ArbiterTensor
import Foundation

// MARK: - Attention

struct LlamaAttention: @unchecked Sendable {
    let qProj: StoredTensor, kProj: StoredTensor, vProj: StoredTensor, oProj: StoredTensor
    let qBias: StoredTensor?, kBias: StoredTensor?, vBias: StoredTensor?, oBias: StoredTensor?
    /// Qwen3's per-head RMSNorm of queries and keys (over head_dim, before the rotary), nil for other decoders.
    let qNorm: StoredTensor?, kNorm: StoredTensor?
    let normEps: Float
    let heads: AttentionHeads
    let scale: Float

    init(_ w: inout WeightStore, prefix: String, config c: DecoderConfiguration) throws {
        let h = c.attentionHeads * c.headDim, kv = c.keyValueHeads * c.headDim
        qProj = try w.take("\(prefix).q_proj.weight", shape: [h, c.hiddenSize])
        kProj = try w.take("\(prefix).k_proj.weight", shape: [kv, c.hiddenSize])
        vProj = try w.take("\(prefix).v_proj.weight", shape: [kv, c.hiddenSize])
        oProj = try w.take("\(prefix).o_proj.weight", shape: [c.hiddenSize, h])
        qBias = c.qkvBias ? try w.take("\(prefix).q_proj.bias", shape: [h]) : nil
        kBias = c.qkvBias ? try w.take("\(prefix).k_proj.bias", shape: [kv]) : nil
        vBias = c.qkvBias ? try w.take("\(prefix).v_proj.bias", shape: [kv]) : nil
        oBias = c.outputBias ? try w.take("\(prefix).o_proj.bias", shape: [c.hiddenSize]) : nil
        qNorm = c.qkNorm ? try w.take("\(prefix).q_norm.weight", shape: [c.headDim]) : nil
        kNorm = c.qkNorm ? try w.take("\(prefix).k_norm.weight", shape: [c.headDim]) : nil
        normEps = c.rmsNormEps
        heads = c.attentionHeadLayout
        scale = 1 / Float(c.headDim).squareRoot()
    }

    /// Attention over the stacked rows of `segments` (one segment: a plain run): the projections run on
    /// all rows at once, scores/softmax/mix per segment against that segment's own keys.
    func callAsFunction(_ x: Tensor, context rotary: RotaryTables, layer l: Int, names n: LayerHookNames,
                        visits segments: [DecoderSegment]) throws -> Tensor {
        let t = x.rows, d = heads.headDim
        var q = headNormed(linear(x, weight: qProj, bias: qBias), qNorm).reshaped([t, heads.heads, d])
        var k = headNormed(linear(x, weight: kProj, bias: kBias), kNorm).reshaped([t, heads.kvHeads, d])
        var v = linear(x, weight: vProj, bias: vBias).reshaped([t, heads.kvHeads, d])
        try segments.visit(n.q, layer: l, &q)
        try segments.visit(n.k, layer: l, &k)
        try segments.visit(n.v, layer: l, &v)
        rotary.apply(to: &q, heads: heads.heads, headDim: d)
        rotary.apply(to: &k, heads: heads.kvHeads, headDim: d)
        try segments.visit(n.rotQ, layer: l, &q)
        try segments.visit(n.rotK, layer: l, &k)

        var z: Tensor
        var edits: [(rows: Range<Int>, edited: Tensor, original: Tensor)] = []
        if segments.count == 1 {
            let (mixed, edit) = try attend(q: q, k: k, v: v, rows: 0..<t, layer: l, names: n, segment: segments[0])
            z = mixed
            if let edit { edits.append((0..<t, edit.edited, edit.original)) }
        } else {
            // The segments' rows follow each other: z is their mixes one after the other.
            var stacked: [Float] = []
            stacked.reserveCapacity(t * heads.heads * d)
            for segment in segments {
                let r = segment.rows
                guard r.lowerBound * heads.heads * d == stacked.count else {
                    throw ModelError.invalidInput("attention: batched segments out of order at rows \(r)")
                }
                let (mixed, edit) = try attend(q: q, k: k, v: v, rows: r, layer: l, names: n, segment: segment)
                stacked += mixed.scalars
                if let edit { edits.append((r, edit.edited, edit.original)) }
            }
            z = Tensor(shape: [t, heads.heads, d], scalars: stacked)
        }
        // An edit of hook_result changes the output by the edit's sum over heads. Adding the change to the
        // usual o_proj product (rather than re-summing heads) keeps identity edits and cache-only visits
        // bit-exact.
        var out = linear(z.reshaped([t, heads.heads * d]), weight: oProj, bias: oBias)
        for e in edits { addHeadDelta(&out, rowOffset: e.rows.lowerBound, edited: e.edited, original: e.original) }
        return out
    }

    /// `x` (`[T, heads·D]`) with every head's D features RMS-normalized by `norm` (Qwen3's q_norm / k_norm);
    /// `x` itself without one. `hook_q` / `hook_k` hold the normalized projections: what the rotary takes.
    func headNormed(_ x: Tensor, _ norm: StoredTensor?) -> Tensor {
        guard let norm else { return x }
        let d = heads.headDim
        return rmsNorm(x.reshaped([x.count / d, d]), weight: norm, eps: normEps).reshaped(x.shape)
    }

    /// One segment's attention: its queries (rows `rows` of the batch's q, k and v `[T, heads, D]`, read in
    /// place) against the cached prefix keys and its own, through the scores/pattern/z hooks; `hook_result` when
    /// the segment's hooks ask for it (returned when edited).
    func attend(q: Tensor, k: Tensor, v: Tensor, rows: Range<Int>, layer l: Int, names n: LayerHookNames,
                segment: DecoderSegment) throws -> (z: Tensor, result: (edited: Tensor, original: Tensor)?) {
        let t = rows.count, d = heads.headDim, hooks = segment.hooks
        // Keys and values of every position the queries may attend to: the cached prefix, then these rows
        // (read in place by the attention kernels; joined only for the runs that continue this one).
        let width = heads.kvHeads * d, queryWidth = heads.heads * d
        func own(_ x: Tensor, _ width: Int) -> ArraySlice<Float> {
            x.scalars[(rows.lowerBound * width)..<(rows.upperBound * width)]
        }
        var keys = AttentionRows(own: own(k, width), width: width)
        var values = AttentionRows(own: own(v, width), width: width)
        if let layer = segment.layerPrefix, layer.layer == l {
            keys.cached = layer.keys.scalars[...]
            values.cached = layer.values.scalars[...]
        } else if let parent = segment.parent?.layers[l] {
            keys.cached = parent.keys.scalars[...]
            values.cached = parent.values.scalars[...]
        } else if let prefix = segment.prefix {
            keys.cached = prefix.keys[l].scalars.prefix(prefix.count * width)
            values.cached = prefix.values[l].scalars.prefix(prefix.count * width)
        }
        let offset = keys.cachedRows
        if let record = segment.record {
            let joined = (keys.joined, values.joined)
            record.layers[l] = joined
            keys = AttentionRows(own: joined.0)
            values = AttentionRows(own: joined.1)
        }
        let queries = AttentionRows(own: own(q, queryWidth), width: queryWidth)
        var pattern: Tensor
        if hooks.wants(n.attnScores) || hooks?.recordsVisits == true {
            var scores = attentionScores(q: queries, keys: keys, heads: heads, scale: scale)
            applyCausalMask(&scores, queryOffset: offset)
            try hooks.visit(n.attnScores, layer: l, queryOffset: offset, &scores)
            pattern = consume scores
            attentionPattern(inPlace: &pattern)
        } else {
            // The same bits without writing the mask or the scores nothing reads.
            pattern = causalAttentionPattern(q: queries, keys: keys, heads: heads, scale: scale, queryOffset: offset)
        }
        try hooks.visit(n.pattern, layer: l, queryOffset: offset, &pattern)
        var z = attentionMix(pattern: pattern, values: values, heads: heads)
            .reshaped([t, heads.heads, d])
        try hooks.visit(n.z, layer: l, queryOffset: offset, &z)
        guard hooks.wants(n.result) else { return (z, nil) }
        let original = perHeadResult(z)
        var result = original
        try hooks.visit(n.result, layer: l, queryOffset: offset, &result)
        return (z, hooks?.edits(n.result) == true ? (result, original) : nil)
    }

    /// result[t, h, :] = z[t, h, :] · W_o[:, hD:(h+1)D]ᵀ — each head's write into the residual stream.
    func perHeadResult(_ z: Tensor) -> Tensor {
        let t = z.shape[0], d = heads.headDim, hd = heads.heads * d, model = oProj.shape[0]
        let wo = oProj.toTensor()
        var out = [Float](repeating: 0, count: t * heads.heads * model)
        z.scalars.withUnsafeBufferPointer { zp in
            wo.scalars.withUnsafeBufferPointer { wp in
                out.withUnsafeMutableBufferPointer { op in
                    for h in 0..<heads.heads {
                        BLAS.sgemm(transB: true, m: t, n: model, k: d, a: zp.baseAddress! + h * d, lda: hd,
                                   b: wp.baseAddress! + h * d, ldb: hd,
                                   c: op.baseAddress! + h * model, ldc: heads.heads * model)
                    }
                }
            }
        }
        return Tensor(shape: [t, heads.heads, model], scalars: out)
    }

    /// out[rowOffset + t, :] += Σ_h (edited − original)[t, h, :].
    func addHeadDelta(_ out: inout Tensor, rowOffset: Int, edited: Tensor, original: Tensor) {
        let t = edited.shape[0], h = edited.shape[1], model = edited.shape[2]
        for i in 0..<t {
            for head in 0..<h {
                let base = (i * h + head) * model
                for j in 0..<model where edited.scalars[base + j] != original.scalars[base + j] {
                    out.scalars[(rowOffset + i) * model + j] += edited.scalars[base + j] - original.scalars[base + j]
                }
            }
        }
    }
}

// MARK: - MLP

struct LlamaMLP: @unchecked Sendable {
    let gateProj: StoredTensor, upProj: StoredTensor, downProj: StoredTensor
    let gateBias: StoredTensor?, upBias: StoredTensor?, downBias: StoredTensor?
    let activation: Activation

    init(_ w: inout WeightStore, prefix: String, config c: DecoderConfiguration) throws {
        gateProj = try w.take("\(prefix).gate_proj.weight", shape: [c.intermediateSize, c.hiddenSize])
        upProj = try w.take("\(prefix).up_proj.weight", shape: [c.intermediateSize, c.hiddenSize])
        downProj = try w.take("\(prefix).down_proj.weight", shape: [c.hiddenSize, c.intermediateSize])
        gateBias = c.mlpBias ? try w.take("\(prefix).gate_proj.bias", shape: [c.intermediateSize]) : nil
        upBias = c.mlpBias ? try w.take("\(prefix).up_proj.bias", shape: [c.intermediateSize]) : nil
        downBias = c.mlpBias ? try w.take("\(prefix).down_proj.bias", shape: [c.hiddenSize]) : nil
        activation = try Activation(named: c.hiddenAct)
    }

    func callAsFunction(_ x: Tensor, layer l: Int, names n: LayerHookNames,
                        visits segments: [DecoderSegment]) throws -> Tensor {
        var gate = linear(x, weight: gateProj, bias: gateBias)
        try segments.visit(n.mlpPre, layer: l, &gate)
        var up = linear(x, weight: upProj, bias: upBias)
        try segments.visit(n.mlpPreLinear, layer: l, &up)
        activation.applyGated(&gate, up: up)
        try segments.visit(n.mlpPost, layer: l, &gate)
        return linear(gate, weight: downProj, bias: downBias)
    }
}

// MARK: - Block

extension LlamaAttention: BlockAttention {
    static let hookPoints: [BlockHook] = [.q, .k, .v, .rotQ, .rotK, .attnScores, .pattern, .z, .result]
}

extension LlamaMLP: BlockMLP {
    static let hookPoints: [BlockHook] = [.mlpPre, .mlpPreLinear, .mlpPost]
}

/// The decoder layer: RMSNorm → attention → RMSNorm → SwiGLU MLP.
typealias LlamaBlock = HookedBlock<LlamaAttention, LlamaMLP>

extension HookedBlock where Attention == LlamaAttention, MLP == LlamaMLP {
    init(_ w: inout WeightStore, prefix: String, config c: DecoderConfiguration) throws {
        let inputNorm = try BlockNorm.rms(&w, "\(prefix).input_layernorm", width: c.hiddenSize, eps: c.rmsNormEps)
        let postAttentionNorm = try BlockNorm.rms(&w, "\(prefix).post_attention_layernorm", width: c.hiddenSize,
                                                  eps: c.rmsNormEps)
        self.init(norm1: inputNorm, attention: try LlamaAttention(&w, prefix: "\(prefix).self_attn", config: c),
                  norm2: postAttentionNorm,
                  mlp: try LlamaMLP(&w, prefix: "\(prefix).mlp", config: c), hooksNorms: true)
    }
}

/// Hook names of one layer, formatted once at load time.
struct LayerHookNames: Sendable {
    let residPre, ln1, q, k, v, rotQ, rotK, attnScores, pattern, z, result, attnOut, residMid: String
    let ln2, mlpPre, mlpPreLinear, mlpPost, mlpOut, residPost: String

    /// The names under `p` (`blocks.3`, `vision.blocks.3`), each `BlockHook`'s.
    init(prefix p: String) {
        func name(_ hook: BlockHook) -> String { "\(p).\(hook.rawValue)" }
        self.prefix = p
        residPre = name(.residPre); ln1 = name(.ln1); q = name(.q); k = name(.k); v = name(.v)
        rotQ = name(.rotQ); rotK = name(.rotK); attnScores = name(.attnScores); pattern = name(.pattern)
        z = name(.z); result = name(.result); attnOut = name(.attnOut); residMid = name(.residMid)
        ln2 = name(.ln2); mlpPre = name(.mlpPre); mlpPreLinear = name(.mlpPreLinear); mlpPost = name(.mlpPost)
        mlpOut = name(.mlpOut); residPost = name(.residPost)
    }

    private let prefix: String

    /// The name of `hook` under this layer's prefix.
    func name(_ hook: BlockHook) -> String { "\(prefix).\(hook.rawValue)" }
}
