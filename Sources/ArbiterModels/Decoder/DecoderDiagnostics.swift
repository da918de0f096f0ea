// The decoder's checks of a run's inputs, and the diagnosis of a non-finite value (which hook, layer and token).
import ArbiterFormats
import ArbiterTensor
import Foundation

extension LlamaDecoder {
    /// The checks of one run's inputs; a batched run (`batchIndex`) must also have at least one token, and its
    /// errors name the run.
    func validateRun(residual: Tensor, positions: PositionIDs, prefix: PrefixKeyValues?, batchIndex: Int? = nil,
                     parentTokens: Int = 0, additions: ResidualAdditions? = nil) throws {
        let c = configuration, run = batchIndex.map { "batched run \($0): " } ?? ""
        guard residual.rank == 2, residual.columns == c.hiddenSize, batchIndex == nil || residual.rows > 0 else {
            let tokens = batchIndex == nil ? "tokens" : "tokens ≥ 1"
            throw ModelError.invalidInput("\(run)residual stream has shape \(residual.shape); want [\(tokens), "
                                          + "\(c.hiddenSize)]")
        }
        guard positions.count == residual.rows else {
            throw ModelError.invalidInput("\(run)\(positions.count) position ids for \(residual.rows) tokens")
        }
        if positions.isMultimodal && c.mropeSection == nil {
            throw ModelError.invalidInput("\(run)3-D position ids need a model with mrope_section")
        }
        if let prefix { try validate(prefix) }
        if let additions {
            guard additions.layers.count <= additionLayers,
                  additions.layers.allSatisfy({ $0.columns == c.hiddenSize }) else {
                throw ModelError.invalidInput("\(run)residual additions after \(additions.layers.count) layers of "
                    + "\(additions.layers.map(\.shape)); the decoder takes them after at most \(additionLayers) "
                    + "layers, \(c.hiddenSize) columns each")
            }
        }
        let tokens = parentTokens + residual.rows + (prefix?.count ?? 0)
        guard tokens <= c.maxPositionEmbeddings else {
            throw ModelError.invalidInput("\(run)a run of \(tokens) tokens is longer than the model's "
                                          + "max_position_embeddings (\(c.maxPositionEmbeddings), config.json)")
        }
    }

    func validate(_ prefix: PrefixKeyValues) throws {
        let width = configuration.keyValueHeads * configuration.headDim
        guard prefix.keys.count == blocks.count, prefix.values.count == blocks.count, prefix.count >= 0,
              (prefix.keys + prefix.values).allSatisfy({
                  $0.rank == 2 && $0.rows >= prefix.count && $0.columns == width
              }) else {
            throw ModelError.invalidInput("prefix keys/values must be \(blocks.count) layers of [≥ "
                                          + "\(prefix.count), \(width)]")
        }
    }

    /// Re-runs block `l` on its input with a hook at every point to find where a non-finite value first
    /// appeared, then throws `ModelError.nonFinite` naming that hook, the layer and the token position.
    /// (Pre-softmax scores legitimately hold -inf at masked keys; only NaN and +inf count there.)
    func diagnoseNonFinite(layer l: Int, input: Tensor, rotary: RotaryTables, hooks: HookRun?,
                           prefix: PrefixKeyValues? = nil, parent: KeyValueRecord? = nil) throws -> Never {
        let probe = HookRun()
        for name in blocks[l].hookNames(layerNames[l]) {
            // Replay the caller's edits first, so the diagnosis sees the same run.
            if let hooks, hooks.edits(name) {
                probe.addEdit(at: name) { tensor, point in try hooks.applyEdits(name, &tensor, point) }
            }
            probe.addEdit(at: name) { tensor, point in
                let isScores = point.name.hasSuffix("attn.hook_attn_scores")
                guard let bad = tensor.scalars.firstIndex(where: {
                    isScores ? ($0.isNaN || $0 == .infinity) : !$0.isFinite
                }) else {
                    return
                }
                // Token position: axis 0 for [T, …] tensors, axis 1 for [H, T, T] scores and patterns.
                let index = unravel(bad, shape: tensor.shape)
                let position = point.name.hasSuffix("hook_pattern") || isScores ? index[1] : index[0]
                throw ModelError.nonFinite(hook: point.name, layer: l, position: position, value: tensor.scalars[bad])
            }
        }
        _ = try blocks[l](input, context: rotary, layer: l, names: layerNames[l],
                          visits: [DecoderSegment(rows: 0..<input.rows, hooks: probe, prefix: prefix,
                                                    parent: parent)])
        throw ModelError.nonFinite(hook: layerNames[l].residPost, layer: l, position: 0, value: .nan)
    }
}
