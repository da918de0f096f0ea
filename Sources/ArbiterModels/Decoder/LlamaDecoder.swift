// Llama-family text decoder (Llama, Qwen2; the language model inside LLaVA and Qwen2-VL).
// Mirrors transformers/models/llama/modeling_llama.py (LlamaAttention, LlamaMLP, LlamaDecoderLayer,
// LlamaModel, LlamaForCausalLM) and qwen2/modeling_qwen2.py (q/k/v bias), eager attention, Float32.
//
// Hook points (TransformerLens names; T tokens, H heads, D head_dim, d d_model, m intermediate size):
//   hook_embed                      [T, d]     token (or merged multimodal) embeddings
//   blocks.{l}.hook_resid_pre       [T, d]
//   blocks.{l}.ln1.hook_normalized  [T, d]     input_layernorm output
//   blocks.{l}.attn.hook_q          [T, H, D]  before rotary
//   blocks.{l}.attn.hook_k          [T, KV, D] before rotary
//   blocks.{l}.attn.hook_v          [T, KV, D]
//   blocks.{l}.attn.hook_rot_q      [T, H, D]  after rotary
//   blocks.{l}.attn.hook_rot_k      [T, KV, D] after rotary
//   blocks.{l}.attn.hook_attn_scores [H, T, T] pre-softmax, scaled, causal mask applied (-inf)
//   blocks.{l}.attn.hook_pattern    [H, T, T]  softmax probabilities
//   blocks.{l}.attn.hook_z          [T, H, D]  per-head mix of values, before o_proj
//   blocks.{l}.attn.hook_result     [T, H, d]  per-head contribution to the residual (computed only when asked)
//   blocks.{l}.hook_attn_out        [T, d]     o_proj output
//   blocks.{l}.hook_resid_mid       [T, d]     resid_pre + attn_out
//   blocks.{l}.ln2.hook_normalized  [T, d]     post_attention_layernorm output
//   blocks.{l}.mlp.hook_pre         [T, m]     gate_proj output (before the activation)
//   blocks.{l}.mlp.hook_pre_linear  [T, m]     up_proj output
//   blocks.{l}.mlp.hook_post        [T, m]     act(gate) · up
//   blocks.{l}.hook_mlp_out         [T, d]     down_proj output
//   blocks.{l}.hook_resid_post      [T, d]     resid_mid + mlp_out
//   ln_final.hook_normalized        [T, d]
//   hook_logits                     [P, vocab] logits at the requested positions
//
// Suffix runs: given the keys and values of the first P positions at every layer (a `PrefixKeyValues` cut
// from a cached run), `forward(residual:…prefix:)` computes only positions P..<T. Every hook then sees the
// suffix rows only (scores and patterns are [H, T−P, T]); causal attention guarantees the prefix rows are
// the cached run's, so an intervention that touches only queries ≥ P gives the same result as a full run.
//
// Batched runs: `forward(batch:startLayer:)` stacks the token rows of many runs (each with its own hooks and
// prefix) for the matrix products and keeps attention and hooks per run — the analyses' thousands of small
// intervened passes then run as a few hundred large products. A run of a batch may continue another (its
// keys and values are the other's prefix, computed in the same pass): runs sharing their first tokens and
// interventions compute them once.
import ArbiterFormats
import ArbiterTensor
import Foundation

// MARK: - Attention

struct LlamaAttention: @unchecked Sendable {
    let qProj: StoredTensor, kProj: StoredTensor, vProj: StoredTensor, oProj: StoredTensor
    let qBias: StoredTensor?, kBias: StoredTensor?, vBias: StoredTensor?, oBias: StoredTensor?
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
        heads = c.attentionHeadLayout
        scale = 1 / Float(c.headDim).squareRoot()
    }

    /// Attention over the stacked rows of `segments` (one segment: a plain run): the projections run on
    /// all rows at once, scores/softmax/mix per segment against that segment's own keys.
    func callAsFunction(_ x: Tensor, rotary: RotaryTables, layer l: Int, names n: LayerHookNames,
                        segments: [DecoderSegment]) throws -> Tensor {
        let t = x.rows, d = heads.headDim
        var q = linear(x, weight: qProj, bias: qBias).reshaped([t, heads.heads, d])
        var k = linear(x, weight: kProj, bias: kBias).reshaped([t, heads.kvHeads, d])
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

    func callAsFunction(_ x: Tensor, layer l: Int, names n: LayerHookNames, segments: [DecoderSegment]) throws -> Tensor {
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

struct LlamaBlock: @unchecked Sendable {
    let inputNorm: StoredTensor
    let postAttentionNorm: StoredTensor
    let attention: LlamaAttention
    let mlp: LlamaMLP
    let eps: Float

    init(_ w: inout WeightStore, prefix: String, config c: DecoderConfiguration) throws {
        inputNorm = try w.take("\(prefix).input_layernorm.weight", shape: [c.hiddenSize])
        postAttentionNorm = try w.take("\(prefix).post_attention_layernorm.weight", shape: [c.hiddenSize])
        attention = try LlamaAttention(&w, prefix: "\(prefix).self_attn", config: c)
        mlp = try LlamaMLP(&w, prefix: "\(prefix).mlp", config: c)
        eps = c.rmsNormEps
    }

    func callAsFunction(_ residual: Tensor, rotary: RotaryTables, layer l: Int, names n: LayerHookNames,
                        segments: [DecoderSegment]) throws -> Tensor {
        var x = residual
        try segments.visit(n.residPre, layer: l, &x)
        var h = rmsNorm(x, weight: inputNorm, eps: eps)
        try segments.visit(n.ln1, layer: l, &h)
        var attnOut = try attention(h, rotary: rotary, layer: l, names: n, segments: segments)
        try segments.visit(n.attnOut, layer: l, &attnOut)
        add(&x, attnOut)
        try segments.visit(n.residMid, layer: l, &x)
        var h2 = rmsNorm(x, weight: postAttentionNorm, eps: eps)
        try segments.visit(n.ln2, layer: l, &h2)
        var mlpOut = try mlp(h2, layer: l, names: n, segments: segments)
        try segments.visit(n.mlpOut, layer: l, &mlpOut)
        add(&x, mlpOut)
        try segments.visit(n.residPost, layer: l, &x)
        return x
    }
}

@inline(__always)
func add(_ x: inout Tensor, _ y: Tensor) {
    x.scalars.withUnsafeMutableBufferPointer { xp in
        y.scalars.withUnsafeBufferPointer { yp in
            for i in xp.indices { xp[i] += yp[i] }
        }
    }
}

/// Hook names of one layer, formatted once at load time.
struct LayerHookNames: Sendable {
    let residPre, ln1, q, k, v, rotQ, rotK, attnScores, pattern, z, result, attnOut, residMid: String
    let ln2, mlpPre, mlpPreLinear, mlpPost, mlpOut, residPost: String

    init(prefix p: String) {
        residPre = "\(p).hook_resid_pre"; ln1 = "\(p).ln1.hook_normalized"
        q = "\(p).attn.hook_q"; k = "\(p).attn.hook_k"; v = "\(p).attn.hook_v"
        rotQ = "\(p).attn.hook_rot_q"; rotK = "\(p).attn.hook_rot_k"
        attnScores = "\(p).attn.hook_attn_scores"; pattern = "\(p).attn.hook_pattern"
        z = "\(p).attn.hook_z"; result = "\(p).attn.hook_result"
        attnOut = "\(p).hook_attn_out"; residMid = "\(p).hook_resid_mid"; ln2 = "\(p).ln2.hook_normalized"
        mlpPre = "\(p).mlp.hook_pre"; mlpPreLinear = "\(p).mlp.hook_pre_linear"; mlpPost = "\(p).mlp.hook_post"
        mlpOut = "\(p).hook_mlp_out"; residPost = "\(p).hook_resid_post"
    }

    /// In forward order.
    var ordered: [String] {
        [residPre, ln1, q, k, v, rotQ, rotK, attnScores, pattern, z, result, attnOut, residMid,
         ln2, mlpPre, mlpPreLinear, mlpPost, mlpOut, residPost]
    }
}

// MARK: - Model

/// Which positions get logits (the LM head over a 150k vocabulary is costly: analyses need only the last).
public enum LogitPositions: Sendable, Equatable {
    case all
    case last
    case positions([Int])
    case none
}

/// Keys (after rotary) and values of the first `count` positions at every layer, `[≥ count, KV·D]` each, as
/// cached from `blocks.{l}.attn.hook_rot_k` and `blocks.{l}.attn.hook_v` of a run over the same prompt.
/// Rows past `count` are ignored, so a full-length cache serves any prefix without copying.
public struct PrefixKeyValues: Sendable {
    public var keys: [Tensor]
    public var values: [Tensor]
    public var count: Int

    /// Every row of `keys`/`values` is prefix.
    public init(keys: [Tensor], values: [Tensor]) {
        self.keys = keys
        self.values = values
        self.count = keys.first?.rows ?? 0
    }

    /// The first `count` rows of full-length per-layer keys and values (shared, not copied).
    public init(prefixOf keys: [Tensor], values: [Tensor], count: Int) {
        self.keys = keys
        self.values = values
        self.count = count
    }
}

/// One run inside a batch of runs whose token rows are stacked for the matrix products (see
/// `LlamaDecoder.forward(batch:startLayer:)`): its rows in the stack, its hooks and its cached prefix. A class:
/// every layer passes the batch's segments around many times, and copying a reference is one retain where
/// copying these fields was seven.
final class DecoderSegment {
    let rows: Range<Int>
    let hooks: HookRun?
    let prefix: PrefixKeyValues?
    /// Keys and values (`[P, KV·D]`) that replace `prefix`'s at one layer (the final layer of a batch,
    /// where only the last position is computed).
    let layerPrefix: (layer: Int, keys: Tensor, values: Tensor)?
    /// The keys and values of the run this segment continues (`DecoderRun.continues`): attended to before
    /// the segment's own at every layer.
    let parent: KeyValueRecord?
    /// Where the segment keeps the keys and values it attends to (its prefix's, then its own rows'), per
    /// layer, when other runs continue it.
    let record: KeyValueRecord?

    init(rows: Range<Int>, hooks: HookRun?, prefix: PrefixKeyValues?,
         layerPrefix: (layer: Int, keys: Tensor, values: Tensor)? = nil, parent: KeyValueRecord? = nil,
         record: KeyValueRecord? = nil) {
        self.rows = rows
        self.hooks = hooks
        self.prefix = prefix
        self.layerPrefix = layerPrefix
        self.parent = parent
        self.record = record
    }
}

/// Per-layer keys and values `[P, KV·D]` of a run (everything its last row attends to), recorded as the run
/// computes them, for the runs that continue it.
final class KeyValueRecord: @unchecked Sendable {
    var layers: [(keys: Tensor, values: Tensor)?]
    init(layers: Int) { self.layers = Array(repeating: nil, count: layers) }
    /// The run's tokens, cached prefix included (0 before any layer ran).
    var tokens: Int { layers.lazy.compactMap { $0?.keys.rows }.first ?? 0 }
}

extension Array where Element == DecoderSegment {
    /// Visits a hook point of stacked `[rows, …]` tensors: one segment visits the tensor itself; several
    /// visit their own rows (a copy, written back when the segment's hooks edit that point).
    @inline(__always)
    func visit(_ name: String, layer: Int, _ tensor: inout Tensor) throws {
        if count == 1 {
            try self[0].hooks.visit(name, layer: layer, &tensor)
            return
        }
        for segment in self where segment.hooks.wants(name) {
            var part = tensor.slicingTokens(segment.rows)
            let shape = part.shape
            try segment.hooks.visit(name, layer: layer, &part)
            guard segment.hooks?.edits(name) == true else { continue }
            guard part.shape == shape else {
                throw ModelError.invalidInput("an edit at \(name) changed its shape from \(shape) to \(part.shape)")
            }
            tensor.replaceTokens(segment.rows, with: part)
        }
    }
}

/// A run of `LlamaDecoder.forward(batch:startLayer:)`: as the arguments of `forward(residual:…)`.
///
/// `continues` = i makes the run the continuation of the batch's earlier run i (a shared prefix): at every
/// layer it attends to run i's keys and values — run i's cached prefix and rows, as run i computed them with
/// its own hooks — before its own, as a suffix run whose `prefix` held them would. Its `positions` then go
/// on from run i's, and it has no `prefix` of its own. Many runs whose first tokens and interventions are
/// the same compute those tokens once this way.
public struct DecoderRun: Sendable {
    public var residual: Tensor
    public var positions: PositionIDs
    public var hooks: HookRun?
    public var prefix: PrefixKeyValues?
    public var continues: Int?

    public init(residual: Tensor, positions: PositionIDs, hooks: HookRun? = nil, prefix: PrefixKeyValues? = nil,
                continues: Int? = nil) {
        self.residual = residual
        self.positions = positions
        self.hooks = hooks
        self.prefix = prefix
        self.continues = continues
    }
}

/// What a decoder run returns.
public struct DecoderOutput: Sendable {
    /// `[P, vocab]` for the requested positions, or nil for `.none`.
    public var logits: Tensor?
    /// The positions `logits` rows belong to.
    public var logitPositions: [Int]
    /// Final residual stream `[T, d]` (before the final norm).
    public var residual: Tensor
}

/// The Llama-family decoder with its embedding, final norm and LM head.
public final class LlamaDecoder: @unchecked Sendable {
    public let configuration: DecoderConfiguration
    let embedTokens: StoredTensor
    let blocks: [LlamaBlock]
    let finalNorm: StoredTensor
    let lmHead: StoredTensor
    let layerNames: [LayerHookNames]
    /// Hook-name prefix: "" for a text model; LLaVA keeps the same names for its language model.
    public let hookPrefix: String

    /// Loads weights named `<prefix>embed_tokens.weight`, `<prefix>layers.{i}.…`, `<prefix>norm.weight`
    /// and `lmHead` (or ties the head to the embeddings).
    public init(configuration c: DecoderConfiguration, weights w: inout WeightStore, modelPrefix: String = "model.",
                lmHeadName: String = "lm_head.weight", hookPrefix: String = "") throws {
        configuration = c
        self.hookPrefix = hookPrefix
        embedTokens = try w.take("\(modelPrefix)embed_tokens.weight", shape: [c.vocabularySize, c.hiddenSize])
        var blocks: [LlamaBlock] = []
        for i in 0..<c.layers {
            blocks.append(try LlamaBlock(&w, prefix: "\(modelPrefix)layers.\(i)", config: c))
        }
        self.blocks = blocks
        finalNorm = try w.take("\(modelPrefix)norm.weight", shape: [c.hiddenSize])
        if c.tieWordEmbeddings {
            // A tied checkpoint may still carry a copy of the head; it must equal the embedding's shape.
            _ = try w.takeOptional(lmHeadName, shape: [c.vocabularySize, c.hiddenSize])
            lmHead = embedTokens
        } else {
            lmHead = try w.take(lmHeadName, shape: [c.vocabularySize, c.hiddenSize])
        }
        layerNames = (0..<c.layers).map { LayerHookNames(prefix: "\(hookPrefix)blocks.\($0)") }
    }

    public var layerCount: Int { blocks.count }

    /// Every hook name of the decoder in forward order.
    public var hookNames: [String] {
        ["\(hookPrefix)hook_embed"] + layerNames.flatMap(\.ordered)
            + ["\(hookPrefix)ln_final.hook_normalized", "\(hookPrefix)hook_logits"]
    }

    /// Embeddings of `ids`: `[T, d]`. Ids outside the vocabulary are an error.
    public func embed(_ ids: [Int]) throws -> Tensor {
        let d = configuration.hiddenSize
        try ResourceGuard.checkRun(tokens: ids.count, configuration: configuration, model: "\(hookPrefix)prompt")
        var out = [Float](repeating: 0, count: ids.count * d)
        for (t, id) in ids.enumerated() {
            guard id >= 0 && id < configuration.vocabularySize else {
                throw ModelError.invalidInput("token id \(id) at position \(t) is outside the vocabulary (0..<\(configuration.vocabularySize))")
            }
            out.withUnsafeMutableBufferPointer { embedTokens.widenRows(id..<(id + 1), into: $0.baseAddress! + t * d) }
        }
        return Tensor(shape: [ids.count, d], scalars: out)
    }

    /// Runs from token ids.
    public func forward(ids: [Int], positions: PositionIDs? = nil, logits: LogitPositions = .all,
                        hooks: HookRun? = nil) throws -> DecoderOutput {
        try forward(residual: try embedded(ids, hooks: hooks), positions: positions ?? .sequential(ids.count), logits: logits,
                    hooks: hooks)
    }

    /// Embeddings of `ids` after the `hook_embed` hook.
    /// Embeddings of `ids` with the rows at `imageTokenID` replaced, in order, by the rows of `features` (the
    /// image-token merge of every image family: transformers' `masked_scatter` of the placeholder mask).
    public func embed(_ ids: [Int], replacing imageTokenID: Int, with features: Tensor) throws -> Tensor {
        let imagePositions = ids.indices.filter { ids[$0] == imageTokenID }
        guard imagePositions.count == features.rows else {
            throw ModelError.invalidInput("the prompt has \(imagePositions.count) image tokens (id \(imageTokenID)) but "
                                          + "the image gives \(features.rows) features; expand the image token to "
                                          + "\(features.rows) tokens")
        }
        var x = try embed(ids)
        let d = x.columns
        for (k, position) in imagePositions.enumerated() {
            for j in 0..<d { x.scalars[position * d + j] = features.scalars[k * d + j] }
        }
        return x
    }

    private func embedded(_ ids: [Int], hooks: HookRun?) throws -> Tensor {
        var x = try embed(ids)
        try hooks.visit("\(hookPrefix)hook_embed", &x)
        return x
    }

    /// Runs from the residual stream entering layer `startLayer` (`[T, d]`): embeddings when 0, a cached
    /// `blocks.{startLayer}.hook_resid_pre` to resume a run (only layers ≥ startLayer are computed).
    ///
    /// With `prefix`, `residual` and `positions` are those of the positions after the prefix only (see the
    /// header: a suffix run); logit positions then count from the first suffix row.
    public func forward(residual: Tensor, positions: PositionIDs, startLayer: Int = 0, logits: LogitPositions = .all,
                        hooks: HookRun? = nil, prefix: PrefixKeyValues? = nil) throws -> DecoderOutput {
        try forward(residual: residual, positions: positions, startLayer: startLayer, logits: logits, hooks: hooks,
                    prefix: prefix, parent: nil, record: nil)
    }

    /// `forward(residual:…)` continuing the run that recorded `parent` (when given), recording its own keys
    /// and values into `record` (when given).
    func forward(residual: Tensor, positions: PositionIDs, startLayer: Int, logits: LogitPositions, hooks: HookRun?,
                 prefix: PrefixKeyValues?, parent: KeyValueRecord?, record: KeyValueRecord?) throws -> DecoderOutput {
        let final = try runLayers(residual: residual, positions: positions, startLayer: startLayer, hooks: hooks,
                                  prefix: prefix, parent: parent, record: record)
        guard let (rows, picked) = try finalNormalized(final, logits: logits, hooks: hooks) else {
            return DecoderOutput(logits: nil, logitPositions: [], residual: final)
        }
        var out = linear(picked, weight: lmHead)
        try hooks.visit("\(hookPrefix)hook_logits", &out)
        if let bad = out.firstNonFiniteIndex {
            throw ModelError.nonFinite(hook: "\(hookPrefix)hook_logits", layer: nil, position: rows[bad / out.columns], value: out.scalars[bad])
        }
        return DecoderOutput(logits: out, logitPositions: rows, residual: final)
    }

    /// Runs from token ids and hands the logits to `consume` in vocabulary blocks instead of returning one
    /// `[P, vocab]` tensor: `consume(vocab, block)` is called for consecutive ranges of at most `blockColumns`
    /// vocabulary ids, in order, with `block` = logits[:, vocab] as `[P, vocab.count]` (P = the rows of
    /// `logits`, listed in the output's `logitPositions`). Peak memory holds one block, so all-position logits
    /// over a 150k vocabulary cost `P × blockColumns` floats, not `P × vocab` (each weight row is still widened
    /// once). The values equal `forward(ids:logits:)`'s columns. A `hook_logits` hook needs the whole tensor
    /// and is refused; non-finite logits are reported with their position as there.
    public func forward(ids: [Int], positions: PositionIDs? = nil, logits: LogitPositions = .all, hooks: HookRun? = nil,
                        blockColumns: Int = 4096, consume: (_ vocab: Range<Int>, _ block: Tensor) throws -> Void) throws -> DecoderOutput {
        guard blockColumns > 0 else { throw ModelError.invalidInput("logit block width \(blockColumns) must be positive") }
        guard !hooks.wants("\(hookPrefix)hook_logits") else {
            throw ModelError.invalidInput("\(hookPrefix)hook_logits needs the whole logits tensor; streamed logits come in vocabulary blocks")
        }
        let final = try runLayers(residual: try embedded(ids, hooks: hooks), positions: positions ?? .sequential(ids.count),
                                  startLayer: 0, hooks: hooks, prefix: nil)
        guard let (rows, picked) = try finalNormalized(final, logits: logits, hooks: hooks) else {
            return DecoderOutput(logits: nil, logitPositions: [], residual: final)
        }
        let vocabulary = configuration.vocabularySize
        var first = 0
        while first < vocabulary {
            let range = first..<min(first + blockColumns, vocabulary)
            let block = Tensor(shape: [rows.count, range.count]) { op in
                picked.scalars.withUnsafeBufferPointer { xp in
                    linearInto(x: xp.baseAddress!, n: rows.count, weight: lmHead, outputs: range, out: op, ldo: range.count)
                }
            }
            if let bad = block.firstNonFiniteIndex {
                throw ModelError.nonFinite(hook: "\(hookPrefix)hook_logits", layer: nil, position: rows[bad / block.columns],
                                           value: block.scalars[bad])
            }
            try consume(range, block)
            first = range.upperBound
        }
        return DecoderOutput(logits: nil, logitPositions: rows, residual: final)
    }

    /// The layers from `startLayer` on: the final residual stream (before the final norm).
    private func runLayers(residual: Tensor, positions: PositionIDs, startLayer: Int, hooks: HookRun?,
                           prefix: PrefixKeyValues?, parent: KeyValueRecord? = nil,
                           record: KeyValueRecord? = nil) throws -> Tensor {
        let c = configuration
        try validateRun(residual: residual, positions: positions, prefix: prefix, parentTokens: parent?.tokens ?? 0)
        guard (0...blocks.count).contains(startLayer) else {
            throw ModelError.invalidInput("start layer \(startLayer) outside 0...\(blocks.count)")
        }
        let rotary = positions.rotaryTables(c.rope, mropeSection: c.mropeSection)
        var x = residual
        if let bad = x.firstNonFiniteIndex {
            throw ModelError.nonFinite(hook: startLayer == 0 ? "\(hookPrefix)hook_embed" : layerNames[startLayer].residPre,
                                       layer: startLayer == 0 ? nil : startLayer, position: bad / x.columns, value: x.scalars[bad])
        }
        let segments = [DecoderSegment(rows: 0..<x.rows, hooks: hooks, prefix: prefix, parent: parent, record: record)]
        for l in startLayer..<blocks.count {
            let input = x
            x = try blocks[l](x, rotary: rotary, layer: l, names: layerNames[l], segments: segments)
            if x.firstNonFiniteIndex != nil {
                try diagnoseNonFinite(layer: l, input: input, rotary: rotary, hooks: hooks, prefix: prefix,
                                      parent: parent)
            }
        }
        return x
    }

    /// The logit rows and the final-normed residual at those rows (`ln_final.hook_normalized` visited on every
    /// row), or nil when no logits are wanted.
    private func finalNormalized(_ x: Tensor, logits: LogitPositions, hooks: HookRun?) throws -> (rows: [Int], picked: Tensor)? {
        let c = configuration
        let rows: [Int]
        switch logits {
        case .all: rows = Array(0..<x.rows)
        case .last: rows = x.rows > 0 ? [x.rows - 1] : []
        case .positions(let p):
            guard p.allSatisfy({ (0..<x.rows).contains($0) }) else {
                throw ModelError.invalidInput("logit positions \(p) outside 0..<\(x.rows)")
            }
            rows = p
        case .none: rows = []
        }
        let wantsNorm = hooks.wants("\(hookPrefix)ln_final.hook_normalized")
        guard !rows.isEmpty || wantsNorm else { return nil }
        var normalized = rmsNorm(x, weight: finalNorm, eps: c.rmsNormEps)
        try hooks.visit("\(hookPrefix)ln_final.hook_normalized", &normalized)
        if let bad = normalized.firstNonFiniteIndex {
            throw ModelError.nonFinite(hook: "\(hookPrefix)ln_final.hook_normalized", layer: nil, position: bad / normalized.columns,
                                       value: normalized.scalars[bad])
        }
        guard !rows.isEmpty else { return nil }
        let picked = rows.count == normalized.rows ? normalized
            : Tensor(shape: [rows.count, c.hiddenSize], scalars: rows.flatMap { normalized.row($0) })
        return (rows, picked)
    }

    /// Runs several runs from `startLayer` side by side and returns each run's logits at its last position
    /// (`[vocab]`). Their token rows are stacked for the matrix products (one large product instead of
    /// many small ones: the weights are read and packed once per batch), while attention and every hook
    /// stay per run; the final layer computes only what the last positions need (see
    /// `finalLayerAtLastPositions`). The results equal separate `forward(residual:…logits: .last…)` calls up
    /// to the last bits of the products (BLAS's result for a row depends on how many rows a call has). A run whose
    /// hooks want `ln_final`/`hook_logits`, and any batch that meets a non-finite value, is computed run by
    /// run through `forward(residual:…)`, so such runs see their usual hooks and errors name the run's hook,
    /// layer and position. A run may continue an earlier run of the batch (`DecoderRun.continues`: a shared
    /// prefix), whose keys and values it then attends to at every layer, in the batch and run by run alike.
    public func forward(batch runs: [DecoderRun], startLayer: Int) throws -> [[Float]] {
        let c = configuration
        let finalHooks = ["\(hookPrefix)ln_final.hook_normalized", "\(hookPrefix)hook_logits"]
        // Runs that others continue record their keys and values for them.
        var continued = Set<Int>()
        for (i, run) in runs.enumerated() {
            guard let parent = run.continues else { continue }
            guard (0..<i).contains(parent) else {
                throw ModelError.invalidInput("batched run \(i): continues run \(parent), which is not an earlier "
                                              + "run of the batch")
            }
            guard run.prefix == nil else {
                throw ModelError.invalidInput("batched run \(i): continues run \(parent) and has a prefix of its own "
                                              + "(a continuation's prefix is the run it continues)")
            }
            continued.insert(parent)
        }
        func separately() throws -> [[Float]] {
            var records: [Int: KeyValueRecord] = [:]
            return try runs.indices.map { i in
                let run = runs[i]
                let record = continued.contains(i) ? KeyValueRecord(layers: blocks.count) : nil
                records[i] = record
                let out = try forward(residual: run.residual, positions: run.positions, startLayer: startLayer,
                                      logits: .last, hooks: run.hooks, prefix: run.prefix,
                                      parent: run.continues.flatMap { records[$0] }, record: record)
                guard let logits = out.logits, logits.rows == 1 else {
                    throw ModelError.invalidInput("a batched run has no tokens")
                }
                return Array(logits.row(0))
            }
        }
        guard runs.count > 1, !runs.contains(where: { run in finalHooks.contains { run.hooks.wants($0) } }) else {
            return try separately()
        }
        guard (0...blocks.count).contains(startLayer) else {
            throw ModelError.invalidInput("start layer \(startLayer) outside 0...\(blocks.count)")
        }
        var segments: [DecoderSegment] = [], tables: [RotaryTables] = []
        var stacked: [Float] = [], tokens: [Int] = []
        for (i, run) in runs.enumerated() {
            let parentTokens = run.continues.map { tokens[$0] } ?? 0
            try validateRun(residual: run.residual, positions: run.positions, prefix: run.prefix, batchIndex: i,
                            parentTokens: parentTokens)
            tokens.append(parentTokens + (run.prefix?.count ?? 0) + run.residual.rows)
            let start = stacked.count / c.hiddenSize
            segments.append(DecoderSegment(rows: start..<(start + run.residual.rows), hooks: run.hooks,
                                           prefix: run.prefix,
                                           parent: run.continues.map { segments[$0].record! },
                                           record: continued.contains(i) ? KeyValueRecord(layers: blocks.count) : nil))
            tables.append(run.positions.rotaryTables(c.rope, mropeSection: c.mropeSection))
            stacked += run.residual.scalars
        }
        var x = Tensor(shape: [stacked.count / c.hiddenSize, c.hiddenSize], scalars: stacked)
        guard x.firstNonFiniteIndex == nil else { return try separately() }
        let rotary = RotaryTables(concatenating: tables)
        let final = blocks.count - 1
        for l in startLayer..<max(startLayer, final) {
            x = try blocks[l](x, rotary: rotary, layer: l, names: layerNames[l], segments: segments)
            guard x.firstNonFiniteIndex == nil else { return try separately() }
        }
        var last = Tensor(shape: [segments.count, c.hiddenSize], scalars: segments.flatMap { x.row($0.rows.upperBound - 1) })
        if startLayer <= final {
            last = try finalLayerAtLastPositions(x, rotary: rotary, segments: segments)
            guard last.firstNonFiniteIndex == nil else { return try separately() }
        }
        let logits = linear(rmsNorm(last, weight: finalNorm, eps: c.rmsNormEps), weight: lmHead)
        guard logits.firstNonFiniteIndex == nil else { return try separately() }
        return (0..<segments.count).map { Array(logits.row($0)) }
    }

    /// The final layer of a batch, computed only where the logits need it: keys and values for every row
    /// (the last positions attend to them), everything else for each run's last row alone — a one-row
    /// suffix run whose prefix is the cached prefix plus the run's other rows. Saves all but the K/V
    /// projections of the final layer for every row but one. (So the final layer's hooks see the last
    /// row only, as in any suffix run.)
    func finalLayerAtLastPositions(_ x: Tensor, rotary: RotaryTables, segments: [DecoderSegment]) throws -> Tensor {
        let l = blocks.count - 1, block = blocks[l], a = block.attention, heads = a.heads
        let h = rmsNorm(x, weight: block.inputNorm, eps: block.eps)
        var k = linear(h, weight: a.kProj, bias: a.kBias)
        let v = linear(h, weight: a.vProj, bias: a.vBias)
        rotary.apply(to: &k, heads: heads.kvHeads, headDim: heads.headDim)
        let width = k.columns
        var lastSegments: [DecoderSegment] = [], lastRows: [Int] = []
        for (i, segment) in segments.enumerated() {
            let own = segment.rows.lowerBound..<(segment.rows.upperBound - 1)
            var cachedKeys: [Float] = [], cachedValues: [Float] = []
            if let parent = segment.parent?.layers[l] {
                cachedKeys = parent.keys.scalars
                cachedValues = parent.values.scalars
            } else if let prefix = segment.prefix {
                cachedKeys = Array(prefix.keys[l].scalars.prefix(prefix.count * width))
                cachedValues = Array(prefix.values[l].scalars.prefix(prefix.count * width))
            }
            let cached = cachedKeys.count / width
            let keys = Tensor(shape: [cached + own.count, width], scalars: cachedKeys + k.rows(own).scalars)
            let values = Tensor(shape: [cached + own.count, width], scalars: cachedValues + v.rows(own).scalars)
            if let record = segment.record {
                let last = own.upperBound..<segment.rows.upperBound
                let rows = keys.rows + 1
                record.layers[l] = (Tensor(shape: [rows, width], scalars: keys.scalars + k.rows(last).scalars),
                                    Tensor(shape: [rows, width], scalars: values.scalars + v.rows(last).scalars))
            }
            lastSegments.append(DecoderSegment(rows: i..<(i + 1), hooks: segment.hooks, prefix: nil, layerPrefix: (l, keys, values)))
            lastRows.append(segment.rows.upperBound - 1)
        }
        let input = Tensor(shape: [segments.count, x.columns], scalars: lastRows.flatMap { x.row($0) })
        return try block(input, rotary: rotary.rows(lastRows), layer: l, names: layerNames[l], segments: lastSegments)
    }

    /// The checks of one run's inputs; a batched run (`batchIndex`) must also have at least one token, and its
    /// errors name the run.
    func validateRun(residual: Tensor, positions: PositionIDs, prefix: PrefixKeyValues?, batchIndex: Int? = nil,
                     parentTokens: Int = 0) throws {
        let c = configuration, run = batchIndex.map { "batched run \($0): " } ?? ""
        guard residual.rank == 2, residual.columns == c.hiddenSize, batchIndex == nil || residual.rows > 0 else {
            let tokens = batchIndex == nil ? "tokens" : "tokens ≥ 1"
            throw ModelError.invalidInput("\(run)residual stream has shape \(residual.shape); want [\(tokens), \(c.hiddenSize)]")
        }
        guard positions.count == residual.rows else {
            throw ModelError.invalidInput("\(run)\(positions.count) position ids for \(residual.rows) tokens")
        }
        if positions.isMultimodal && c.mropeSection == nil {
            throw ModelError.invalidInput("\(run)3-D position ids need a model with mrope_section")
        }
        if let prefix { try validate(prefix) }
        let tokens = parentTokens + residual.rows + (prefix?.count ?? 0)
        guard tokens <= c.maxPositionEmbeddings else {
            throw ModelError.invalidInput("\(run)a run of \(tokens) tokens is longer than the model's "
                                          + "max_position_embeddings (\(c.maxPositionEmbeddings), config.json)")
        }
    }

    func validate(_ prefix: PrefixKeyValues) throws {
        let width = configuration.keyValueHeads * configuration.headDim
        guard prefix.keys.count == blocks.count, prefix.values.count == blocks.count, prefix.count >= 0,
              (prefix.keys + prefix.values).allSatisfy({ $0.rank == 2 && $0.rows >= prefix.count && $0.columns == width }) else {
            throw ModelError.invalidInput("prefix keys/values must be \(blocks.count) layers of [≥ \(prefix.count), \(width)]")
        }
    }

    /// Re-runs block `l` on its input with a hook at every point to find where a non-finite value first
    /// appeared, then throws `ModelError.nonFinite` naming that hook, the layer and the token position.
    /// (Pre-softmax scores legitimately hold -inf at masked keys; only NaN and +inf count there.)
    func diagnoseNonFinite(layer l: Int, input: Tensor, rotary: RotaryTables, hooks: HookRun?,
                           prefix: PrefixKeyValues? = nil, parent: KeyValueRecord? = nil) throws -> Never {
        let probe = HookRun()
        for name in layerNames[l].ordered {
            // Replay the caller's edits first, so the diagnosis sees the same run.
            if let hooks, hooks.edits(name) {
                probe.addEdit(at: name) { tensor, point in try hooks.applyEdits(name, &tensor, point) }
            }
            probe.addEdit(at: name) { tensor, point in
                let isScores = point.name.hasSuffix("attn.hook_attn_scores")
                guard let bad = tensor.scalars.firstIndex(where: { isScores ? ($0.isNaN || $0 == .infinity) : !$0.isFinite }) else { return }
                // Token position: axis 0 for [T, …] tensors, axis 1 for [H, T, T] scores and patterns.
                let index = unravel(bad, shape: tensor.shape)
                let position = point.name.hasSuffix("hook_pattern") || isScores ? index[1] : index[0]
                throw ModelError.nonFinite(hook: point.name, layer: l, position: position, value: tensor.scalars[bad])
            }
        }
        _ = try blocks[l](input, rotary: rotary, layer: l, names: layerNames[l],
                          segments: [DecoderSegment(rows: 0..<input.rows, hooks: probe, prefix: prefix,
                                                    parent: parent)])
        throw ModelError.nonFinite(hook: layerNames[l].residPost, layer: l, position: 0, value: .nan)
    }

    /// Logit-lens readout: final norm then LM head applied to residual rows (`[P, d]` → `[P, vocab]`).
    public func unembed(_ residualRows: Tensor) -> Tensor {
        linear(rmsNorm(residualRows, weight: finalNorm, eps: configuration.rmsNormEps), weight: lmHead)
    }

    /// The unembedding matrix (tied or not), for direct logit attribution.
    public var unembedding: StoredTensor { lmHead }
    public var finalNormWeight: StoredTensor { finalNorm }
}
