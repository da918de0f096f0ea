// Logit lens and decision alignment (LDAR): at each layer, the residual stream read through the final norm
// and unembedding gives a following score s_ℓ; the decision (instructed vs competitor) is sign(s_ℓ).
// At the instruction anchors the readout is the mean s_ℓ over instruction positions; at the last position
// it is s_ℓ there. LDAR(ℓ) = fraction of conflict samples whose layer-ℓ decision equals the final one.
import ArbiterTensor

public struct LogitLensResult: Sendable, Codable, Equatable {
    /// readout ("instruction", "last") → per-layer agreement rate with the final decision.
    public var agreement: [String: [Estimate]]
    /// readout → target → per-layer mean s_ℓ.
    public var meanScore: [String: [String: [Estimate]]]
    public var seed: UInt64
}

public enum LogitLens {
    public static func measure(runner: AnalysisRunner, samples: [AnalysisSample], baselines: [BaselineRun],
                               seed: UInt64) throws -> LogitLensResult {
        let conflict = samples.indices.filter { samples[$0].kind == "conflict" && samples[$0].target != nil }
        guard !conflict.isEmpty else { throw AnalysisError.tooFewSamples(what: "logit lens", have: 0, need: 1) }
        let layers = runner.layers
        var agree: [String: [[Double]]] = ["instruction": .init(repeating: [], count: layers),
                                           "last": .init(repeating: [], count: layers)]
        var scores: [String: [[Double]]] = agree
        var targets: [String: [InstructionTarget]] = ["instruction": [], "last": []]
        for i in conflict {
            let b = baselines[i], final = b.score.follows
            let instructionCount = b.readoutPositions.count - 1
            for layer in 0..<layers {
                let logits = runner.decoder.unembed(b.readout[layer])   // [P, vocab]
                let s = (0..<logits.rows).map {
                    FollowingScore(logits: Array(logits.row($0)), instructed: samples[i].instructed,
                                   competitor: samples[i].competitor).s
                }
                if instructionCount > 0 {
                    let anchor = mean(Array(s.prefix(instructionCount)))
                    agree["instruction"]![layer].append((anchor > 0) == final ? 1 : 0)
                    scores["instruction"]![layer].append(anchor)
                }
                agree["last"]![layer].append((s.last! > 0) == final ? 1 : 0)
                scores["last"]![layer].append(s.last!)
            }
            if instructionCount > 0 { targets["instruction"]!.append(samples[i].target!) }
            targets["last"]!.append(samples[i].target!)
        }
        var agreement: [String: [Estimate]] = [:], meanScore: [String: [String: [Estimate]]] = [:]
        for (r, readout) in ["instruction", "last"].enumerated() {
            agreement[readout] = (0..<layers).map {
                Estimate.bootstrap(agree[readout]![$0], seed: seed &+ UInt64(r * 1000 + $0), resamples: 500)
            }
            var byTarget: [String: [Estimate]] = [:]
            for target in InstructionTarget.allCases {
                let members = targets[readout]!.indices.filter { targets[readout]![$0] == target }
                byTarget[target.rawValue] = (0..<layers).map { l in
                    Estimate.bootstrap(members.map { scores[readout]![l][$0] },
                                       seed: seed &+ UInt64(r * 1000 + 500 + l), resamples: 500)
                }
            }
            meanScore[readout] = byTarget
        }
        return LogitLensResult(agreement: agreement, meanScore: meanScore, seed: seed)
    }
}
