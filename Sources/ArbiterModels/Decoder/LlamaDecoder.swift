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

    func callAsFunction(_ x: Tensor, rotary: RotaryTables, layer l: Int, names n: LayerHookNames,
                        hooks: HookRun?, prefix: (keys: Tensor, values: Tensor)? = nil) throws -> Tensor {
        let t = x.rows, d = heads.headDim
        var q = linear(x, weight: qProj, bias: qBias).reshaped([t, heads.heads, d])
        var k = linear(x, weight: kProj, bias: kBias).reshaped([t, heads.kvHeads, d])
        var v = linear(x, weight: vProj, bias: vBias).reshaped([t, heads.kvHeads, d])
        try hooks.visit(n.q, layer: l, &q)
        try hooks.visit(n.k, layer: l, &k)
        try hooks.visit(n.v, layer: l, &v)
        rotary.apply(to: &q, heads: heads.heads, headDim: d)
        rotary.apply(to: &k, heads: heads.kvHeads, headDim: d)
        try hooks.visit(n.rotQ, layer: l, &q)
        try hooks.visit(n.rotK, layer: l, &k)

        // Keys and values of every position the queries may attend to: the cached prefix, then these rows.
        var keys = k.reshaped([t, heads.kvHeads * d]), values = v.reshaped([t, heads.kvHeads * d])
        let offset = prefix?.keys.rows ?? 0
        if let prefix {
            keys = Tensor(shape: [offset + t, keys.columns], scalars: prefix.keys.scalars + keys.scalars)
            values = Tensor(shape: [offset + t, values.columns], scalars: prefix.values.scalars + values.scalars)
        }
        var scores = attentionScores(q: q.reshaped([t, heads.heads * d]), k: keys, heads: heads, scale: scale)
        applyCausalMask(&scores, queryOffset: offset)
        try hooks.visit(n.attnScores, layer: l, &scores)
        var pattern = attentionPattern(scores: scores)
        try hooks.visit(n.pattern, layer: l, &pattern)
        var z = attentionMix(pattern: pattern, v: values, heads: heads)
            .reshaped([t, heads.heads, d])
        try hooks.visit(n.z, layer: l, &z)
        if hooks.wants(n.result) {
            let original = perHeadResult(z)
            var result = original
            try hooks.visit(n.result, layer: l, &result)
            // An edit of hook_result changes the output by the edit's sum over heads. Adding the change to the
            // usual o_proj product (rather than re-summing heads) keeps identity edits and cache-only visits
            // bit-exact.
            var out = linear(z.reshaped([t, heads.heads * d]), weight: oProj, bias: oBias)
            if hooks?.edits(n.result) == true { addHeadDelta(&out, edited: result, original: original) }
            return out
        }
        return linear(z.reshaped([t, heads.heads * d]), weight: oProj, bias: oBias)
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

    /// out[t, :] += Σ_h (edited − original)[t, h, :].
    func addHeadDelta(_ out: inout Tensor, edited: Tensor, original: Tensor) {
        let t = edited.shape[0], h = edited.shape[1], model = edited.shape[2]
        for i in 0..<t {
            for head in 0..<h {
                let base = (i * h + head) * model
                for j in 0..<model where edited.scalars[base + j] != original.scalars[base + j] {
                    out.scalars[i * model + j] += edited.scalars[base + j] - original.scalars[base + j]
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

    func callAsFunction(_ x: Tensor, layer l: Int, names n: LayerHookNames, hooks: HookRun?) throws -> Tensor {
        var gate = linear(x, weight: gateProj, bias: gateBias)
        try hooks.visit(n.mlpPre, layer: l, &gate)
        var up = linear(x, weight: upProj, bias: upBias)
        try hooks.visit(n.mlpPreLinear, layer: l, &up)
        activation.applyGated(&gate, up: up)
        try hooks.visit(n.mlpPost, layer: l, &gate)
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
                        hooks: HookRun?, prefix: (keys: Tensor, values: Tensor)? = nil) throws -> Tensor {
        var x = residual
        try hooks.visit(n.residPre, layer: l, &x)
        var h = rmsNorm(x, weight: inputNorm, eps: eps)
        try hooks.visit(n.ln1, layer: l, &h)
        var attnOut = try attention(h, rotary: rotary, layer: l, names: n, hooks: hooks, prefix: prefix)
        try hooks.visit(n.attnOut, layer: l, &attnOut)
        add(&x, attnOut)
        try hooks.visit(n.residMid, layer: l, &x)
        var h2 = rmsNorm(x, weight: postAttentionNorm, eps: eps)
        try hooks.visit(n.ln2, layer: l, &h2)
        var mlpOut = try mlp(h2, layer: l, names: n, hooks: hooks)
        try hooks.visit(n.mlpOut, layer: l, &mlpOut)
        add(&x, mlpOut)
        try hooks.visit(n.residPost, layer: l, &x)
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

/// Keys (after rotary) and values of the first `count` positions at every layer, `[count, KV·D]` each, as
/// cached from `blocks.{l}.attn.hook_rot_k` and `blocks.{l}.attn.hook_v` of a run over the same prompt.
public struct PrefixKeyValues: Sendable {
    public var keys: [Tensor]
    public var values: [Tensor]
    public var count: Int { keys.first?.rows ?? 0 }

    public init(keys: [Tensor], values: [Tensor]) {
        self.keys = keys
        self.values = values
    }

    /// The first `count` rows of full-length per-layer keys and values.
    public init(prefixOf keys: [Tensor], values: [Tensor], count: Int) {
        self.keys = keys.map { $0.rows(0..<count) }
        self.values = values.map { $0.rows(0..<count) }
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
        var x = try embed(ids)
        try hooks.visit("\(hookPrefix)hook_embed", &x)
        return try forward(residual: x, positions: positions ?? .sequential(ids.count), logits: logits, hooks: hooks)
    }

    /// Runs from the residual stream entering layer `startLayer` (`[T, d]`): embeddings when 0, a cached
    /// `blocks.{startLayer}.hook_resid_pre` to resume a run (only layers ≥ startLayer are computed).
    ///
    /// With `prefix`, `residual` and `positions` are those of the positions after the prefix only (see the
    /// header: a suffix run); logit positions then count from the first suffix row.
    public func forward(residual: Tensor, positions: PositionIDs, startLayer: Int = 0, logits: LogitPositions = .all,
                        hooks: HookRun? = nil, prefix: PrefixKeyValues? = nil) throws -> DecoderOutput {
        let c = configuration
        guard residual.rank == 2, residual.columns == c.hiddenSize else {
            throw ModelError.invalidInput("residual stream has shape \(residual.shape); want [tokens, \(c.hiddenSize)]")
        }
        guard positions.count == residual.rows else {
            throw ModelError.invalidInput("\(positions.count) position ids for \(residual.rows) tokens")
        }
        guard (0...blocks.count).contains(startLayer) else {
            throw ModelError.invalidInput("start layer \(startLayer) outside 0...\(blocks.count)")
        }
        if positions.isMultimodal && c.mropeSection == nil {
            throw ModelError.invalidInput("3-D position ids need a model with mrope_section")
        }
        if let prefix {
            let width = c.keyValueHeads * c.headDim
            guard prefix.keys.count == blocks.count, prefix.values.count == blocks.count,
                  (prefix.keys + prefix.values).allSatisfy({ $0.rank == 2 && $0.rows == prefix.count && $0.columns == width }) else {
                throw ModelError.invalidInput("prefix keys/values must be \(blocks.count) layers of [P, \(width)] with one P")
            }
        }
        let rotary = positions.rotaryTables(c.rope, mropeSection: c.mropeSection)
        var x = residual
        if let bad = x.firstNonFiniteIndex {
            throw ModelError.nonFinite(hook: startLayer == 0 ? "\(hookPrefix)hook_embed" : layerNames[startLayer].residPre,
                                       layer: startLayer == 0 ? nil : startLayer, position: bad / x.columns, value: x.scalars[bad])
        }
        for l in startLayer..<blocks.count {
            let input = x
            let cached = prefix.map { (keys: $0.keys[l], values: $0.values[l]) }
            x = try blocks[l](x, rotary: rotary, layer: l, names: layerNames[l], hooks: hooks, prefix: cached)
            if x.firstNonFiniteIndex != nil {
                try diagnoseNonFinite(layer: l, input: input, rotary: rotary, hooks: hooks, prefix: cached)
            }
        }
        let final = x
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
        guard !rows.isEmpty || wantsNorm else {
            return DecoderOutput(logits: nil, logitPositions: [], residual: final)
        }
        var normalized = rmsNorm(x, weight: finalNorm, eps: c.rmsNormEps)
        try hooks.visit("\(hookPrefix)ln_final.hook_normalized", &normalized)
        if let bad = normalized.firstNonFiniteIndex {
            throw ModelError.nonFinite(hook: "\(hookPrefix)ln_final.hook_normalized", layer: nil, position: bad / normalized.columns,
                                       value: normalized.scalars[bad])
        }
        guard !rows.isEmpty else { return DecoderOutput(logits: nil, logitPositions: [], residual: final) }
        let picked = rows.count == normalized.rows ? normalized
            : Tensor(shape: [rows.count, c.hiddenSize], scalars: rows.flatMap { normalized.row($0) })
        var out = linear(picked, weight: lmHead)
        try hooks.visit("\(hookPrefix)hook_logits", &out)
        if let bad = out.firstNonFiniteIndex {
            throw ModelError.nonFinite(hook: "\(hookPrefix)hook_logits", layer: nil, position: rows[bad / out.columns], value: out.scalars[bad])
        }
        return DecoderOutput(logits: out, logitPositions: rows, residual: final)
    }

    /// Re-runs block `l` on its input with a hook at every point to find where a non-finite value first
    /// appeared, then throws `ModelError.nonFinite` naming that hook, the layer and the token position.
    /// (Pre-softmax scores legitimately hold -inf at masked keys; only NaN and +inf count there.)
    func diagnoseNonFinite(layer l: Int, input: Tensor, rotary: RotaryTables, hooks: HookRun?,
                           prefix: (keys: Tensor, values: Tensor)? = nil) throws -> Never {
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
        _ = try blocks[l](input, rotary: rotary, layer: l, names: layerNames[l], hooks: probe, prefix: prefix)
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
