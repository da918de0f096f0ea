// Direct logit attribution (DLA) of the following score s at the last position. s is linearised at the
// model's output: with ∂s/∂logit from `FollowingScore.gradient` and the final RMSNorm's scale frozen at the
// final residual, a component writing v into the residual stream contributes
//   DLA(v) = Σ_j v_j · γ_j / rms(x_final) · Σ_k (∂s/∂logit_k) · W_U[k, j].
// Components: each layer's attention output and MLP output, and each head's result (attn.hook_result).
// "Semantic inertia" (claim 4) is a negative total MLP DLA over the deep layers (the second half).
import ArbiterTensor

public struct AttributionResult: Sendable, Codable, Equatable {
    /// target ("image", "text", "overall") → per-layer mean attention DLA.
    public var attention: [String: [Estimate]]
    public var mlp: [String: [Estimate]]
    /// Mean per-head DLA over conflict samples, [layer][head].
    public var heads: [[Double]]
    /// Total MLP DLA over the deep layers (first deep layer = `deepStart`), per target and overall.
    public var deepMLPTotal: [String: Estimate]
    public var deepAttentionTotal: [String: Estimate]
    public var deepStart: Int
    public var seed: UInt64
}

public enum Attribution {
    /// The residual-space direction whose dot product with a component is its DLA to s.
    static func direction(runner: AnalysisRunner, sample: AnalysisSample, baseline: BaselineRun) -> [Double] {
        let c = runner.decoder.configuration, d = c.hiddenSize
        let x = baseline.finalResidualLast
        let rms = (x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(d) + Double(c.rmsNormEps)).squareRoot()
        let gamma = runner.decoder.finalNormWeight.toTensor().scalars
        var g = [Double](repeating: 0, count: d)
        var row = [Float](repeating: 0, count: d)
        for (k, weight) in FollowingScore.gradient(logits: baseline.logitsLast, instructed: sample.instructed,
                                                   competitor: sample.competitor) {
            row.withUnsafeMutableBufferPointer {
                runner.decoder.unembedding.widenRows(k..<(k + 1), into: $0.baseAddress!)
            }
            for j in 0..<d { g[j] += weight * Double(row[j]) }
        }
        for j in 0..<d { g[j] *= Double(gamma[j]) / rms }
        return g
    }

    static func dot(_ v: ArraySlice<Float>, _ g: [Double]) -> Double {
        var s = 0.0
        for (a, b) in zip(v, g) { s += Double(a) * b }
        return s
    }

    public static func measure(runner: AnalysisRunner, samples: [AnalysisSample], baselines: [BaselineRun],
                               seed: UInt64) throws -> AttributionResult {
        let conflict = samples.indices.filter { samples[$0].kind == "conflict" && samples[$0].target != nil }
        guard !conflict.isEmpty else { throw AnalysisError.tooFewSamples(what: "attribution", have: 0, need: 1) }
        let layers = runner.layers, heads = runner.heads
        let deepStart = layers / 2
        var attn = [[Double]](repeating: [], count: layers), mlp = attn
        var headSum = [[Double]](repeating: [Double](repeating: 0, count: heads), count: layers)
        var deepMLP: [Double] = [], deepAttn: [Double] = [], targets: [InstructionTarget] = []
        for i in conflict {
            let g = direction(runner: runner, sample: samples[i], baseline: baselines[i])
            var mlpTotal = 0.0, attnTotal = 0.0
            for l in 0..<layers {
                let a = dot(baselines[i].attnOutLast[l][...], g), m = dot(baselines[i].mlpOutLast[l][...], g)
                attn[l].append(a)
                mlp[l].append(m)
                if l >= deepStart { mlpTotal += m; attnTotal += a }
                let r = baselines[i].headResultsLast[l]
                for h in 0..<heads { headSum[l][h] += dot(r.row(h), g) }
            }
            deepMLP.append(mlpTotal)
            deepAttn.append(attnTotal)
            targets.append(samples[i].target!)
        }
        let n = Double(conflict.count)
        var attention: [String: [Estimate]] = [:], mlpOut: [String: [Estimate]] = [:]
        var deepM: [String: Estimate] = [:], deepA: [String: Estimate] = [:]
        for (gi, group) in ["image", "text", "overall"].enumerated() {
            let members = targets.indices.filter { group == "overall" || targets[$0].rawValue == group }
            attention[group] = (0..<layers).map { l in
                Estimate.bootstrap(members.map { attn[l][$0] }, seed: seed &+ UInt64(gi * 1000 + l), resamples: 500)
            }
            mlpOut[group] = (0..<layers).map { l in
                Estimate.bootstrap(members.map { mlp[l][$0] }, seed: seed &+ UInt64(gi * 1000 + 500 + l),
                                   resamples: 500)
            }
            deepM[group] = Estimate.bootstrap(members.map { deepMLP[$0] }, seed: seed &+ UInt64(gi * 1000 + 999))
            deepA[group] = Estimate.bootstrap(members.map { deepAttn[$0] }, seed: seed &+ UInt64(gi * 1000 + 998))
        }
        return AttributionResult(attention: attention, mlp: mlpOut, heads: headSum.map { $0.map { $0 / n } },
                                 deepMLPTotal: deepM, deepAttentionTotal: deepA, deepStart: deepStart, seed: seed)
    }
}
