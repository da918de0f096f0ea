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
            samples[$0].kind == "conflict" && samples[$0].target != nil && baselines[$0].patterns != nil
                && (try? samples[$0].input.spans.positions("image"))?.isEmpty == false
                && (try? samples[$0].input.spans.positions("context"))?.isEmpty == false
        }
        guard !conflict.isEmpty else {
            throw AnalysisError.tooFewSamples(what: "attention routing (conflict samples with image and context)",
                                              have: 0, need: 1)
        }
        let layers = baselines[conflict[0]].patterns!.count
        var share: [String: [String: [Estimate]]] = [:], mass: [String: [String: [Estimate]]] = [:]
        var selectivity: [String: [Estimate]] = [:]
        for (qi, querySpan) in ["instruction", "last"].enumerated() {
            // values[layer][sample] = (image share, cue mass)
            var shares = [[Double]](repeating: [], count: layers), masses = [[Double]](repeating: [], count: layers)
            var targets: [InstructionTarget] = []
            for i in conflict {
                guard let queries = try? samples[i].input.spans.positions(querySpan), !queries.isEmpty else { continue }
                let image = try samples[i].input.spans.positions("image"),
                    context = try samples[i].input.spans.positions("context")
                targets.append(samples[i].target!)
                // The baseline keeps the pattern rows of its readout positions (instruction tokens, then last).
                let rowOf = Dictionary(baselines[i].readoutPositions.enumerated().map { ($1, $0) },
                                       uniquingKeysWith: { first, _ in first })
                if let missing = queries.first(where: { rowOf[$0] == nil }) {
                    throw AnalysisError.badSample(id: samples[i].id, problem: "attention routing reads query "
                                                  + "\(missing), whose pattern row the baseline did not keep")
                }
                for layer in 0..<layers {
                    let p = baselines[i].patterns![layer]
                    let h = p.shape[0], kept = p.shape[1], t = p.shape[2]
                    var mImage = 0.0, mContext = 0.0
                    for head in 0..<h {
                        for q in queries {
                            let row = (head * kept + rowOf[q]!) * t
                            for k in image where k <= q { mImage += Double(p.scalars[row + k]) }
                            for k in context where k <= q { mContext += Double(p.scalars[row + k]) }
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
