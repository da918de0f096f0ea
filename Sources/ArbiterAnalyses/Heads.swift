// Head identification and causal head interventions (claims 5a/5b and specificity).
//   identification (calibration split): attribution score = mean per-head DLA to s; causal score = mean
//     drop of s when the head alone is blocked (zeroed), i.e. mean(s_base − s_blocked) over conflict samples;
//     ranked by the causal score by default.
//   blocking (held-out split): relative MFR drop when the top k% heads are blocked, against ≥ 20 random
//     sets of the same size (seeded); consistent-sample accuracy before/after (general ability).
//   amplification (held-out): α chosen on the calibration split's failures from a grid; fraction of failed
//     held-out conflict samples that follow once the top heads are scaled by α; the same for random sets.
import ArbiterInterventions

public struct HeadRanking: Sendable, Codable, Equatable {
    /// [layer][head] mean causal effect of blocking the head (s_base − s_blocked).
    public var causal: [[Double]]
    /// [layer][head] mean direct logit attribution.
    public var attribution: [[Double]]
    /// Heads by decreasing causal effect.
    public var causalOrder: [HeadIndex]
    public var attributionOrder: [HeadIndex]
    public var calibrationCount: Int

    public func top(fraction: Double, byCausal: Bool = true) -> [HeadIndex] {
        let order = byCausal ? causalOrder : attributionOrder
        return Array(order.prefix(Self.setSize(fraction: fraction, total: order.count)))
    }

    /// ceil(fraction · total), at least 1.
    public static func setSize(fraction: Double, total: Int) -> Int { max(1, Int((fraction * Double(total)).rounded(.up))) }

    /// |top-k causal ∩ top-k attribution| / k.
    public func overlap(fraction: Double) -> Double {
        let a = Set(top(fraction: fraction)), b = Set(top(fraction: fraction, byCausal: false))
        return Double(a.intersection(b).count) / Double(max(a.count, 1))
    }
}

public struct HeadInterventionResult: Sendable, Codable, Equatable {
    public var fraction: Double
    public var heads: [HeadIndex]
    public var baselineMFR: Double
    public var blockedMFR: Double
    /// (baseline − blocked) / baseline.
    public var relativeDrop: Double
    public var randomRelativeDrops: [Double]
    public var consistentAccuracyBefore: Double?
    public var consistentAccuracyAfter: Double?
    public var alpha: Double
    public var alphaGrid: [Double]
    public var failedCount: Int
    /// Fraction of failed held-out conflict samples that follow after amplification.
    public var amplifiedFixRate: Double
    public var randomFixRates: [Double]
    public var heldOutCount: Int
    public var seed: UInt64
}

public enum Heads {
    public static func rank(runner: AnalysisRunner, samples: [AnalysisSample], baselines: [BaselineRun],
                            attribution: [[Double]], progress: (String) -> Void = { _ in }) throws -> HeadRanking {
        let conflict = samples.indices.filter { samples[$0].kind == "conflict" && samples[$0].target != nil }
        guard conflict.count >= 2 else { throw AnalysisError.tooFewSamples(what: "head identification (calibration conflict samples)", have: conflict.count, need: 2) }
        let layers = runner.layers, heads = runner.heads
        var causal = [[Double]](repeating: [Double](repeating: 0, count: heads), count: layers)
        for l in 0..<layers {
            progress("single-head ablation, layer \(l + 1)/\(layers)")
            // One (head, sample) ablation per request; summed per head in sample order.
            let requests = (0..<(heads * conflict.count)).map { j in
                ScoreRequest(sample: conflict[j % conflict.count],
                             interventions: InterventionSet([.blockHeads([HeadIndex(layer: l, head: j / conflict.count)], means: nil)]),
                             startLayer: l)
            }
            let blocked = try runner.scores(requests, samples: samples, baselines: baselines)
            let effects = requests.indices.map { baselines[requests[$0].sample].score.s - blocked[$0].s }
            for h in 0..<heads {
                var total = 0.0
                for k in conflict.indices { total += effects[h * conflict.count + k] }
                causal[l][h] = total / Double(conflict.count)
            }
        }
        let all = (0..<layers).flatMap { l in (0..<heads).map { HeadIndex(layer: l, head: $0) } }
        return HeadRanking(causal: causal, attribution: attribution,
                           causalOrder: all.sorted { (causal[$0.layer][$0.head], $1) > (causal[$1.layer][$1.head], $0) },
                           attributionOrder: all.sorted { (attribution[$0.layer][$0.head], $1) > (attribution[$1.layer][$1.head], $0) },
                           calibrationCount: conflict.count)
    }

    /// Scores of `indices` under an intervention on `heads`, resuming at the first touched layer.
    static func scores(runner: AnalysisRunner, samples: [AnalysisSample], baselines: [BaselineRun], indices: [Int],
                       intervention: Intervention, heads: [HeadIndex]) throws -> [FollowingScore] {
        let start = heads.map(\.layer).min() ?? 0
        let requests = indices.map { ScoreRequest(sample: $0, interventions: InterventionSet([intervention]), startLayer: start) }
        return try runner.scores(requests, samples: samples, baselines: baselines)
    }

    public static func intervene(runner: AnalysisRunner, ranking: HeadRanking,
                                 calibration: (samples: [AnalysisSample], baselines: [BaselineRun]),
                                 heldOut: (samples: [AnalysisSample], baselines: [BaselineRun]),
                                 fraction: Double = 0.05, randomSets: Int = 20, alphaGrid: [Double] = [1.5, 2, 3, 4, 6],
                                 seed: UInt64, progress: (String) -> Void = { _ in }) throws -> HeadInterventionResult {
        guard randomSets >= 1 else { throw AnalysisError.invalidParameter("random head sets must be ≥ 1") }
        let (samples, baselines) = heldOut
        let conflict = samples.indices.filter { samples[$0].kind == "conflict" && samples[$0].target != nil }
        guard conflict.count >= 2 else { throw AnalysisError.tooFewSamples(what: "head interventions (held-out conflict samples)", have: conflict.count, need: 2) }
        let consistent = samples.indices.filter { samples[$0].kind == "consistent" }
        let top = ranking.top(fraction: fraction)
        let all = ranking.causalOrder
        func mfr(_ s: [FollowingScore]) -> Double { Double(s.filter(\.follows).count) / Double(max(s.count, 1)) }
        let baseMFR = mfr(conflict.map { baselines[$0].score })
        /// MFR of `indices` under `intervention(set)` for each set, all sets' passes in one batched evaluation.
        func mfrs(_ sets: [[HeadIndex]], indices: [Int], on split: (samples: [AnalysisSample], baselines: [BaselineRun]),
                  _ intervention: ([HeadIndex]) -> Intervention) throws -> [Double] {
            let requests = sets.flatMap { set in
                indices.map { ScoreRequest(sample: $0, interventions: InterventionSet([intervention(set)]), startLayer: set.map(\.layer).min() ?? 0) }
            }
            let all = try runner.scores(requests, samples: split.samples, baselines: split.baselines)
            return sets.indices.map { k in mfr(Array(all[(k * indices.count)..<((k + 1) * indices.count)])) }
        }
        progress("blocking the top \(top.count) heads")
        let blockedScores = try scores(runner: runner, samples: samples, baselines: baselines, indices: conflict,
                                       intervention: .blockHeads(top, means: nil), heads: top)
        let blockedMFR = mfr(blockedScores)
        var rng = SeededRNG(seed: seed)
        var randomHeadSets: [[HeadIndex]] = []
        for _ in 0..<randomSets { randomHeadSets.append(Array(all.shuffled(using: &rng).prefix(top.count))) }
        progress("blocking \(randomSets) random head sets of \(top.count)")
        let randomDrops = try mfrs(randomHeadSets, indices: conflict, on: heldOut) { .blockHeads($0, means: nil) }
            .map { baseMFR > 0 ? (baseMFR - $0) / baseMFR : 0 }
        var before: Double? = nil, after: Double? = nil
        if !consistent.isEmpty {
            before = mfr(consistent.map { baselines[$0].score })
            after = mfr(try scores(runner: runner, samples: samples, baselines: baselines, indices: consistent,
                                   intervention: .blockHeads(top, means: nil), heads: top))
        }
        // α on the calibration split's failures.
        let calFailed = calibration.samples.indices.filter {
            calibration.samples[$0].kind == "conflict" && calibration.samples[$0].target != nil && !calibration.baselines[$0].score.follows
        }
        var alpha = alphaGrid.first ?? 2
        if !calFailed.isEmpty {
            var best = -1.0
            for a in alphaGrid {
                progress("amplification α=\(a) on calibration failures")
                let fixed = mfr(try scores(runner: runner, samples: calibration.samples, baselines: calibration.baselines,
                                           indices: calFailed, intervention: .amplifyHeads(top, factor: Float(a)), heads: top))
                if fixed > best { best = fixed; alpha = a }
            }
        }
        let failed = conflict.filter { !baselines[$0].score.follows }
        progress("amplifying the top heads and \(randomSets) random sets ×\(alpha) on \(failed.count) failed held-out samples")
        let fixRates = failed.isEmpty ? [Double](repeating: .nan, count: randomSets + 1)
            : try mfrs([top] + randomHeadSets, indices: failed, on: heldOut) { .amplifyHeads($0, factor: Float(alpha)) }
        let fix = fixRates[0], randomFix = Array(fixRates.dropFirst())
        return HeadInterventionResult(
            fraction: fraction, heads: top, baselineMFR: baseMFR, blockedMFR: blockedMFR,
            relativeDrop: baseMFR > 0 ? (baseMFR - blockedMFR) / baseMFR : 0, randomRelativeDrops: randomDrops,
            consistentAccuracyBefore: before, consistentAccuracyAfter: after, alpha: alpha, alphaGrid: alphaGrid,
            failedCount: failed.count, amplifiedFixRate: fix, randomFixRates: randomFix, heldOutCount: conflict.count, seed: seed)
    }
}
