// Attention routing: per layer, the attention mass that instruction tokens (and the last position) put on
// image tokens vs text-context tokens, split by instruction target, and a selectivity index
//   SI(ℓ) = share_image(follow-image samples) − share_image(follow-text samples),
// where share_image = mass(image) / (mass(image) + mass(context)), averaged over heads and query positions.
// SI ≈ 0: routing does not depend on the instruction (non-selective); SI > 0: the instruction steers it.

public struct AttentionRoutingResult: Sendable, Codable, Equatable {
    /// query span ("instruction", "last") → target → per-layer mean image share.
    public var imageShare: [String: [String: [Estimate]]]
    /// query span → target → per-layer total mass on image + context.
    public var cueMass: [String: [String: [Estimate]]]
    /// query span → per-layer selectivity index.
    public var selectivity: [String: [Estimate]]
    public var seed: UInt64
}

public enum AttentionRouting {
    public static func measure(samples: [AnalysisSample], baselines: [BaselineRun],
                               seed: UInt64) throws -> AttentionRoutingResult {
        let conflict = samples.indices.filter {
            samples[$0].kind == "conflict" && samples[$0].target != nil && baselines[$0].cueMass != nil
                && (try? samples[$0].input.spans.positions("image"))?.isEmpty == false
                && (try? samples[$0].input.spans.positions("context"))?.isEmpty == false
        }
        guard !conflict.isEmpty else {
            throw AnalysisError.tooFewSamples(what: "attention routing (conflict samples with image and context)",
                                              have: 0, need: 1)
        }
        let layers = baselines[conflict[0]].cueMass!.count
        var share: [String: [String: [Estimate]]] = [:], mass: [String: [String: [Estimate]]] = [:]
        var selectivity: [String: [Estimate]] = [:]
        for (qi, querySpan) in ["instruction", "last"].enumerated() {
            // values[layer][sample] = (image share, cue mass)
            var shares = [[Double]](repeating: [], count: layers), masses = [[Double]](repeating: [], count: layers)
            var targets: [InstructionTarget] = []
            for i in conflict {
                guard let queries = try? samples[i].input.spans.positions(querySpan), !queries.isEmpty else { continue }
                targets.append(samples[i].target!)
                // The baseline keeps, per head and readout position (instruction tokens, then last), the query's
                // mass on the image and on the context keys up to it.
                let rowOf = Dictionary(baselines[i].readoutPositions.enumerated().map { ($1, $0) },
                                       uniquingKeysWith: { first, _ in first })
                if let missing = queries.first(where: { rowOf[$0] == nil }) {
                    throw AnalysisError.badSample(id: samples[i].id, problem: "attention routing reads query "
                                                  + "\(missing), whose attention mass the baseline did not keep")
                }
                for layer in 0..<layers {
                    let p = baselines[i].cueMass![layer], kept = baselines[i].readoutPositions.count
                    let h = p.count / max(2 * kept, 1)
                    var mImage = 0.0, mContext = 0.0
                    for head in 0..<h {
                        for q in queries {
                            let row = (head * kept + rowOf[q]!) * 2
                            mImage += p[row]
                            mContext += p[row + 1]
                        }
                    }
                    let n = Double(h * queries.count)
                    mImage /= n; mContext /= n
                    shares[layer].append(mImage + mContext > 0 ? mImage / (mImage + mContext) : 0.5)
                    masses[layer].append(mImage + mContext)
                }
            }
            var byTargetShare: [String: [Estimate]] = [:], byTargetMass: [String: [Estimate]] = [:]
            for target in InstructionTarget.allCases {
                let members = targets.indices.filter { targets[$0] == target }
                byTargetShare[target.rawValue] = (0..<layers).map { l in
                    Estimate.bootstrap(members.map { shares[l][$0] }, seed: seed &+ UInt64(qi * 10000 + l),
                                       resamples: 500)
                }
                byTargetMass[target.rawValue] = (0..<layers).map { l in
                    Estimate.bootstrap(members.map { masses[l][$0] }, seed: seed &+ UInt64(qi * 10000 + 500 + l),
                                       resamples: 500)
                }
            }
            let img = targets.indices.filter { targets[$0] == .image },
                txt = targets.indices.filter { targets[$0] == .text }
            selectivity[querySpan] = (0..<layers).map { l in
                twoSampleDifference(img.map { shares[l][$0] }, txt.map { shares[l][$0] },
                                    seed: seed &+ UInt64(qi * 10000 + 900 + l))
            }
            share[querySpan] = byTargetShare
            mass[querySpan] = byTargetMass
        }
        return AttentionRoutingResult(imageShare: share, cueMass: mass, selectivity: selectivity, seed: seed)
    }

    /// mean(a) − mean(b) with a bootstrap that resamples each group independently.
    static func twoSampleDifference(_ a: [Double], _ b: [Double], seed: UInt64, resamples: Int = 500) -> Estimate {
        guard !a.isEmpty, !b.isEmpty else {
            return Estimate(value: .nan, low: .nan, high: .nan, count: a.count + b.count)
        }
        var rng = SeededRNG(seed: seed)
        var stats: [Double] = []
        for _ in 0..<resamples {
            let ma = (0..<a.count).reduce(0.0) { acc, _ in acc + a[Int(rng.next() % UInt64(a.count))] }
                / Double(a.count)
            let mb = (0..<b.count).reduce(0.0) { acc, _ in acc + b[Int(rng.next() % UInt64(b.count))] }
                / Double(b.count)
            stats.append(ma - mb)
        }
        stats.sort()
        return Estimate(value: mean(a) - mean(b), low: stats[Int(0.025 * Double(resamples - 1))],
                        high: stats[Int(0.975 * Double(resamples - 1))], count: a.count + b.count)
    }
}
