// Runs samples through a model: one cached baseline pass per sample, then intervened passes that resume
// from the cached residual stream at the first layer an intervention touches (so a sweep over layer
// windows recomputes only the layers at and after each window).
import ArbiterInterventions
import ArbiterModels
import ArbiterTensor

/// What a baseline pass keeps of one sample.
public struct BaselineRun: Sendable {
    public let score: FollowingScore
    /// `blocks.{l}.hook_resid_pre` for every layer, `[T, d]`.
    public let residPre: [Tensor]
    /// `blocks.{l}.hook_resid_post` rows at the readout positions (instruction positions, then last), `[P, d]`.
    public let readout: [Tensor]
    public let readoutPositions: [Int]
    /// Attention patterns `[H, T, T]` per layer (when requested).
    public let patterns: [Tensor]?
    /// Per-layer attention and MLP outputs at the last position `[d]`, and per-head results `[H, d]`.
    public let attnOutLast: [[Float]]
    public let mlpOutLast: [[Float]]
    public let headResultsLast: [Tensor]
    /// Final residual at the last position (before the final norm).
    public let finalResidualLast: [Float]
    /// Logits at the last position.
    public let logitsLast: [Float]
}

public final class AnalysisRunner: @unchecked Sendable {
    public let session: ModelSession
    public var decoder: LlamaDecoder { session.model.decoder }
    public var layers: Int { decoder.layerCount }
    public var heads: Int { decoder.configuration.attentionHeads }

    public init(session: ModelSession) { self.session = session }

    /// The embeddings (hook_embed) of a sample.
    func embeddings(_ sample: AnalysisSample) throws -> Tensor { try session.embeddings(sample.input) }

    /// A baseline pass with everything the analyses read.
    public func baseline(_ sample: AnalysisSample, keepPatterns: Bool = true) throws -> BaselineRun {
        let l = layers
        var patterns = ["blocks.*.hook_resid_pre", "blocks.*.hook_resid_post", "blocks.*.hook_attn_out",
                        "blocks.*.hook_mlp_out", "blocks.*.attn.hook_result"]
        if keepPatterns { patterns.append("blocks.*.attn.hook_pattern") }
        let hooks = HookRun(cache: .patterns(patterns))
        let out = try session.run(sample.input, logits: .last, hooks: hooks)
        let logits = Array(out.logits!.row(0))
        let t = sample.input.ids.count, last = t - 1
        let instruction = (try? sample.input.spans.positions("instruction")) ?? []
        let readoutPositions = instruction + [last]
        func lastRow(_ name: String) -> [Float] { Array(hooks.cache[name]!.row(last)) }
        return BaselineRun(
            score: FollowingScore(logits: logits, instructed: sample.instructed, competitor: sample.competitor),
            residPre: (0..<l).map { hooks.cache["blocks.\($0).hook_resid_pre"]! },
            readout: (0..<l).map { layer in
                let r = hooks.cache["blocks.\(layer).hook_resid_post"]!
                return Tensor(shape: [readoutPositions.count, r.columns], scalars: readoutPositions.flatMap { r.row($0) })
            },
            readoutPositions: readoutPositions,
            patterns: keepPatterns ? (0..<l).map { hooks.cache["blocks.\($0).attn.hook_pattern"]! } : nil,
            attnOutLast: (0..<l).map { lastRow("blocks.\($0).hook_attn_out") },
            mlpOutLast: (0..<l).map { lastRow("blocks.\($0).hook_mlp_out") },
            headResultsLast: (0..<l).map { layer in
                let r = hooks.cache["blocks.\(layer).attn.hook_result"]!
                let h = r.shape[1], d = r.shape[2]
                return Tensor(shape: [h, d], scalars: Array(r.scalars[(last * h * d)..<((last + 1) * h * d)]))
            },
            finalResidualLast: Array(out.residual.row(last)),
            logitsLast: logits)
    }

    /// The following score under `interventions`, resuming from the baseline's residual at `startLayer`
    /// (the first layer any intervention touches).
    public func score(_ sample: AnalysisSample, baseline: BaselineRun, interventions: InterventionSet,
                      startLayer: Int) throws -> FollowingScore {
        let hooks = try interventions.hooks(for: decoder, hookNames: session.model.hookNames,
                                            tokenCount: sample.input.ids.count, spans: sample.input.spans)
        let residual = startLayer < layers ? baseline.residPre[startLayer] : baseline.residPre[0]
        let out = try decoder.forward(residual: residual, positions: sample.input.positions,
                                      startLayer: startLayer < layers ? startLayer : 0, logits: .last, hooks: hooks)
        return FollowingScore(logits: Array(out.logits!.row(0)), instructed: sample.instructed, competitor: sample.competitor)
    }
}
