// Llama-family text decoder (Llama, Qwen2; the language model inside LLaVA, Qwen2-VL and Qwen3-VL).
// Mirrors transformers/models/llama/modeling_llama.py (LlamaAttention, LlamaMLP, LlamaDecoderLayer,
// LlamaModel, LlamaForCausalLM), qwen2/modeling_qwen2.py (q/k/v bias) and qwen3_vl/modeling_qwen3_vl.py
// (Qwen3VLTextAttention: q_norm / k_norm), eager attention, Float32.
//
// Hook points (TransformerLens names; T tokens, H heads, D head_dim, d d_model, m intermediate size):
//   hook_embed                      [T, d]     token (or merged multimodal) embeddings
//   blocks.{l}.hook_resid_pre       [T, d]
//   blocks.{l}.ln1.hook_normalized  [T, d]     input_layernorm output
//   blocks.{l}.attn.hook_q          [T, H, D]  before rotary (Qwen3: after the per-head q_norm)
//   blocks.{l}.attn.hook_k          [T, KV, D] before rotary (Qwen3: after k_norm)
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
//   blocks.{l}.hook_deepstack       [K, d]     rows added after layer l (Qwen3-VL; ResidualAdditions.swift)
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
    /// Layers after which a run may add rows to the residual stream (`ResidualAdditions`; Qwen3-VL's DeepStack
    /// layers, 0 for every other model): each has the hook point `blocks.{l}.hook_deepstack`.
    public let additionLayers: Int
    let additionNames: [String]

    /// Loads weights named `<prefix>embed_tokens.weight`, `<prefix>layers.{i}.…`, `<prefix>norm.weight`
    /// and `lmHead` (or ties the head to the embeddings).
    public init(configuration c: DecoderConfiguration, weights w: inout WeightStore, modelPrefix: String = "model.",
                lmHeadName: String = "lm_head.weight", hookPrefix: String = "", additionLayers: Int = 0) throws {
        configuration = c
        self.hookPrefix = hookPrefix
        guard (0...max(c.layers, 0)).contains(additionLayers) else {
            throw ModelError.invalidInput("\(additionLayers) layers with residual additions, but the decoder has "
                                          + "\(c.layers)")
        }
        self.additionLayers = additionLayers
        additionNames = (0..<additionLayers).map { ResidualAdditions.hookName($0, prefix: hookPrefix) }
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
        ["\(hookPrefix)\(HookName.embed)"]
            + zip(blocks, layerNames).enumerated().flatMap { l, block in
                block.0.hookNames(block.1) + (l < additionLayers ? [additionNames[l]] : [])
            }
            + ["\(hookPrefix)\(HookName.finalNorm)", "\(hookPrefix)\(HookName.logits)"]
    }

    /// Embeddings of `ids`: `[T, d]`. Ids outside the vocabulary are an error.
    public func embed(_ ids: [Int]) throws -> Tensor {
        let d = configuration.hiddenSize
        try ResourceGuard.checkRun(tokens: ids.count, configuration: configuration, model: "\(hookPrefix)prompt")
        var out = [Float](repeating: 0, count: ids.count * d)
        for (t, id) in ids.enumerated() {
            guard id >= 0 && id < configuration.vocabularySize else {
                throw ModelError.invalidInput("token id \(id) at position \(t) is outside the vocabulary "
                                              + "(0..<\(configuration.vocabularySize))")
            }
            out.withUnsafeMutableBufferPointer { embedTokens.widenRows(id..<(id + 1), into: $0.baseAddress! + t * d) }
        }
        return Tensor(shape: [ids.count, d], scalars: out)
    }

    /// Runs from token ids.
    public func forward(ids: [Int], positions: PositionIDs? = nil, logits: LogitPositions = .all,
                        hooks: HookRun? = nil) throws -> DecoderOutput {
        try forward(residual: try embedded(ids, hooks: hooks), positions: positions ?? .sequential(ids.count),
                    logits: logits,
                    hooks: hooks)
    }

    /// Embeddings of `ids` after the `hook_embed` hook.
    /// Embeddings of `ids` with the rows at `imageTokenID` replaced, in order, by the rows of `features` (the
    /// image-token merge of every image family: transformers' `masked_scatter` of the placeholder mask).
    public func embed(_ ids: [Int], replacing imageTokenID: Int, with features: Tensor) throws -> Tensor {
        let imagePositions = ids.indices.filter { ids[$0] == imageTokenID }
        guard imagePositions.count == features.rows else {
            throw ModelError.invalidInput("the prompt has \(imagePositions.count) image tokens (id "
                                          + "\(imageTokenID)) but "
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
        try hooks.visit("\(hookPrefix)\(HookName.embed)", &x)
        return x
    }

    /// Runs from the residual stream entering layer `startLayer` (`[T, d]`): embeddings when 0, a cached
    /// `blocks.{startLayer}.hook_resid_pre` to resume a run (only layers ≥ startLayer are computed).
    ///
    /// With `prefix`, `residual` and `positions` are those of the positions after the prefix only (see the
    /// header: a suffix run); logit positions then count from the first suffix row. `additions`: the run's rows
    /// added after layers (`ResidualAdditions`, positions from the prompt's first token), as the run that
    /// cached `residual` had them (its `DecoderOutput.additions`).
    public func forward(residual: Tensor, positions: PositionIDs, startLayer: Int = 0, logits: LogitPositions = .all,
                        hooks: HookRun? = nil, prefix: PrefixKeyValues? = nil,
                        additions: ResidualAdditions? = nil) throws -> DecoderOutput {
        try forward(residual: residual, positions: positions, startLayer: startLayer, logits: logits, hooks: hooks,
                    prefix: prefix, parent: nil, record: nil, additions: additions)
    }

    /// `forward(residual:…)` continuing the run that recorded `parent` (when given), recording its own keys
    /// and values into `record` (when given).
    func forward(residual: Tensor, positions: PositionIDs, startLayer: Int, logits: LogitPositions, hooks: HookRun?,
                 prefix: PrefixKeyValues?, parent: KeyValueRecord?, record: KeyValueRecord?,
                 additions: ResidualAdditions? = nil) throws -> DecoderOutput {
        let final = try runLayers(residual: residual, positions: positions, startLayer: startLayer, hooks: hooks,
                                  prefix: prefix, parent: parent, record: record, additions: additions)
        guard let (rows, picked) = try finalNormalized(final, logits: logits, hooks: hooks) else {
            return DecoderOutput(logits: nil, logitPositions: [], residual: final, additions: additions)
        }
        var out = linear(picked, weight: lmHead)
        try hooks.visit("\(hookPrefix)\(HookName.logits)", &out)
        if let bad = out.firstNonFiniteIndex {
            throw ModelError.nonFinite(hook: "\(hookPrefix)\(HookName.logits)", layer: nil,
                                       position: rows[bad / out.columns], value: out.scalars[bad])
        }
        return DecoderOutput(logits: out, logitPositions: rows, residual: final, additions: additions)
    }

    /// Runs from token ids and hands the logits to `consume` in vocabulary blocks instead of returning one
    /// `[P, vocab]` tensor: `consume(vocab, block)` is called for consecutive ranges of at most `blockColumns`
    /// vocabulary ids, in order, with `block` = logits[:, vocab] as `[P, vocab.count]` (P = the rows of
    /// `logits`, listed in the output's `logitPositions`). Peak memory holds one block, so all-position logits
    /// over a 150k vocabulary cost `P × blockColumns` floats, not `P × vocab` (each weight row is still widened
    /// once). The values equal `forward(ids:logits:)`'s columns. A `hook_logits` hook needs the whole tensor
    /// and is refused; non-finite logits are reported with their position as there.
    public func forward(ids: [Int], positions: PositionIDs? = nil, logits: LogitPositions = .all, hooks: HookRun? = nil,
                        blockColumns: Int = 4096, consume: (_ vocab: Range<Int>,
                                                            _ block: Tensor) throws -> Void) throws -> DecoderOutput {
        guard blockColumns > 0 else {
            throw ModelError.invalidInput("logit block width \(blockColumns) must be positive")
        }
        guard !hooks.wants("\(hookPrefix)\(HookName.logits)") else {
            throw ModelError.invalidInput("\(hookPrefix)hook_logits needs the whole logits tensor; streamed logits "
                                          + "come in vocabulary blocks")
        }
        let final = try runLayers(residual: try embedded(ids, hooks: hooks),
                                  positions: positions ?? .sequential(ids.count),
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
                    linearInto(x: xp.baseAddress!, n: rows.count, weight: lmHead, outputs: range, out: op,
                               ldo: range.count)
                }
            }
            if let bad = block.firstNonFiniteIndex {
                throw ModelError.nonFinite(hook: "\(hookPrefix)\(HookName.logits)", layer: nil,
                                           position: rows[bad / block.columns],
                                           value: block.scalars[bad])
            }
            try consume(range, block)
            first = range.upperBound
        }
        return DecoderOutput(logits: nil, logitPositions: rows, residual: final)
    }

    /// The layers from `startLayer` on: the final residual stream (before the final norm).
    func runLayers(residual: Tensor, positions: PositionIDs, startLayer: Int, hooks: HookRun?,
                           prefix: PrefixKeyValues?, parent: KeyValueRecord? = nil,
                           record: KeyValueRecord? = nil, additions: ResidualAdditions? = nil) throws -> Tensor {
        let c = configuration
        try validateRun(residual: residual, positions: positions, prefix: prefix, parentTokens: parent?.tokens ?? 0,
                        additions: additions)
        let offset = (parent?.tokens ?? 0) + (prefix?.count ?? 0)
        guard (0...blocks.count).contains(startLayer) else {
            throw ModelError.invalidInput("start layer \(startLayer) outside 0...\(blocks.count)")
        }
        let rotary = positions.rotaryTables(c.rope, mropeSection: c.mropeSection, interleaved: c.mropeInterleaved)
        var x = residual
        if let bad = x.firstNonFiniteIndex {
            let hook = startLayer == 0 ? "\(hookPrefix)\(HookName.embed)" : layerNames[startLayer].residPre
            throw ModelError.nonFinite(hook: hook, layer: startLayer == 0 ? nil : startLayer,
                                       position: bad / x.columns, value: x.scalars[bad])
        }
        let segments = [DecoderSegment(rows: 0..<x.rows, hooks: hooks, prefix: prefix, parent: parent, record: record)]
        for l in startLayer..<blocks.count {
            let input = x
            x = try blocks[l](x, context: rotary, layer: l, names: layerNames[l], visits: segments)
            if x.firstNonFiniteIndex != nil {
                try diagnoseNonFinite(layer: l, input: input, rotary: rotary, hooks: hooks, prefix: prefix,
                                      parent: parent)
            }
            if let additions, l < additions.layers.count {
                try additions.add(after: l, to: &x, count: x.rows, offset: offset, name: additionNames[l], hooks: hooks)
            }
        }
        return x
    }

    /// The logit rows and the final-normed residual at those rows (`ln_final.hook_normalized` visited on every
    /// row), or nil when no logits are wanted.
    func finalNormalized(_ x: Tensor, logits: LogitPositions,
                         hooks: HookRun?) throws -> (rows: [Int], picked: Tensor)? {
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
        let wantsNorm = hooks.wants("\(hookPrefix)\(HookName.finalNorm)")
        guard !rows.isEmpty || wantsNorm else { return nil }
        var normalized = rmsNorm(x, weight: finalNorm, eps: c.rmsNormEps)
        try hooks.visit("\(hookPrefix)\(HookName.finalNorm)", &normalized)
        if let bad = normalized.firstNonFiniteIndex {
            throw ModelError.nonFinite(hook: "\(hookPrefix)\(HookName.finalNorm)", layer: nil,
                                       position: bad / normalized.columns,
                                       value: normalized.scalars[bad])
        }
        guard !rows.isEmpty else { return nil }
        let picked = rows.count == normalized.rows ? normalized
            : Tensor(shape: [rows.count, c.hiddenSize], scalars: rows.flatMap { normalized.row($0) })
        return (rows, picked)
    }

    /// Logit-lens readout: final norm then LM head applied to residual rows (`[P, d]` → `[P, vocab]`).
    public func unembed(_ residualRows: Tensor) -> Tensor {
        linear(rmsNorm(residualRows, weight: finalNorm, eps: configuration.rmsNormEps), weight: lmHead)
    }

    /// The unembedding matrix (tied or not), for direct logit attribution.
    public var unembedding: StoredTensor { lmHead }
    public var finalNormWeight: StoredTensor { finalNorm }
}
