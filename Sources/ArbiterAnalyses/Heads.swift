// Head identification and causal head interventions (claims 5a/5b and specificity).
//   identification (calibration split): attribution score = mean per-head DLA to s; causal score = mean
//     drop of s when the head alone is blocked (zeroed), i.e. mean(s_base − s_blocked) over conflict samples;
//     ranked by the causal score by default.
//   blocking (held-out split): relative MFR drop when the top k% heads are blocked, against random head sets
//     drawn outside the top set with its layer distribution (seeded), as an empirical p-value; accuracy of
//     consistent, image-only and text-only items before/after (general ability).
//   amplification (held-out): α chosen on the calibration split's failures from a grid, for the top set and
//     for each random set separately; fraction of failed held-out conflict samples that follow once the set
//     is scaled by its α, with the same p-value.
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
    /// A two-stage ranking's screen and candidates (`AnalysisConfiguration.headRanking`); nil for exact ablation
    /// of every head (the default; absent from the results then). Heads outside its candidates have a NaN causal
    /// score and follow the candidates in `causalOrder` in the screen's order.
    public var twoStage: TwoStageRankingRecord? = nil

    public func top(fraction: Double, byCausal: Bool = true) -> [HeadIndex] {
        let order = byCausal ? causalOrder : attributionOrder
        return Array(order.prefix(Self.setSize(fraction: fraction, total: order.count)))
    }

    /// ceil(fraction · total), at least 1.
    public static func setSize(fraction: Double, total: Int) -> Int {
        max(1, Int((fraction * Double(total)).rounded(.up)))
    }

    /// |top-k causal ∩ top-k attribution| / k.
    public func overlap(fraction: Double) -> Double {
        let a = Set(top(fraction: fraction)), b = Set(top(fraction: fraction, byCausal: false))
        return Double(a.intersection(b).count) / Double(max(a.count, 1))
    }
}

/// An observed statistic against the same statistic on random head sets: the sets' mean and 95th
/// percentile, and the empirical p-value p = (1 + #{random ≥ observed}) / (1 + N), whose smallest possible
/// value (its resolution) is 1/(1 + N).
public struct RandomSetControl: Sendable, Codable, Equatable {
    /// The percentile reported beside the p-value (and drawn in the report's plots).
    public static let percentile = 0.95

    public var count: Int
    public var mean: Double
    public var p95: Double
    /// NaN without random sets or when the observed value or a random value is NaN.
    public var pValue: Double
    public var resolution: Double

    public init(observed: Double, random: [Double]) {
        count = random.count
        mean = ArbiterAnalyses.mean(random)
        p95 = quantile(random, Self.percentile)
        resolution = 1 / Double(1 + random.count)
        let undefined = random.isEmpty || observed.isNaN || random.contains { $0.isNaN }
        pValue = undefined ? .nan : Double(1 + random.filter { $0 >= observed }.count) / Double(1 + random.count)
    }
}

/// Accuracy of one kind of held-out item (consistent, image_only, text_only) before and after blocking the
/// top heads.
public struct AbilityChange: Sendable, Codable, Equatable {
    public var kind: String
    public var count: Int
    /// Share of the items whose expected answer wins (NaN without items).
    public var before: Double
    public var after: Double
    /// after − before, with a paired percentile bootstrap 95% CI over the items.
    public var change: Estimate
}

public struct HeadInterventionResult: Sendable, Codable, Equatable {
    public var fraction: Double
    public var heads: [HeadIndex]
    public var baselineMFR: Double
    public var blockedMFR: Double
    /// (baseline − blocked) / baseline; NaN when the baseline MFR is 0 (nothing to cut).
    public var relativeDrop: Double
    /// mean(s_blocked − s_base) over the held-out conflict items, with a bootstrap CI.
    public var blockedScoreShift: Estimate
    /// The random head sets (outside the top set, matched to its layers), shared by blocking and amplification.
    public var randomSets: [[HeadIndex]]
    /// How the sets were matched to the top set's layers, and where a layer had too few heads.
    public var randomSetMatching: String
    public var randomRelativeDrops: [Double]
    public var blockingControl: RandomSetControl
    /// General ability per item kind: consistent, image_only, text_only (in that order).
    public var ability: [AbilityChange]
    public var alpha: Double
    public var alphaGrid: [Double]
    /// Failed calibration conflict items α was chosen on.
    public var calibrationFailedCount: Int
    public var failedCount: Int
    /// Fraction of failed held-out conflict samples that follow after amplification (NaN without failures).
    public var amplifiedFixRate: Double
    /// Each random set's α, chosen like the top set's, and its fix rate.
    public var randomAlphas: [Double]
    public var randomFixRates: [Double]
    public var amplificationControl: RandomSetControl
    public var heldOutCount: Int
    public var seed: UInt64
    /// Conflict items generated to top up the failures (`failedCount` includes theirs), and the cap (0: the run
    /// could not generate items, e.g. a fixed dataset).
    public var extraConflictItems: Int = 0
    public var extraFailedCount: Int = 0
    public var extraConflictCap: Int = 0
}

public enum Heads {
    /// Deliberate breakages for the mutation tests, set only from tests (`@testable import`) with
    /// `Heads.$mutation.withValue(…)`: each must make a test fail. A task-local, so tests running side by
    /// side are not affected.
    enum Mutation: Sendable { case randomSetsAreTopSet, blockingBlocksNothing }
    @TaskLocal static var mutation: Mutation?

    /// The item kinds general ability is measured on.
    public static let abilityKinds = ["consistent", "image_only", "text_only"]

    /// Blocking (zeroing) `heads`, at every position or (`.afterImage`) after the image only.
    static func blocking(_ heads: [HeadIndex], at positions: HeadPositions? = nil) -> Intervention {
        let heads = mutation == .blockingBlocksNothing ? [] : heads
        return positions == .afterImage ? .blockHeadsAt(heads, queries: .span("after-image"))
            : .blockHeads(heads, means: nil)
    }

    /// Amplifying `heads` by `factor`, at every position or (`.afterImage`) after the image only.
    static func amplifying(_ heads: [HeadIndex], factor: Float, at positions: HeadPositions? = nil) -> Intervention {
        positions == .afterImage ? .amplifyHeadsAt(heads, factor: factor, queries: .span("after-image"))
            : .amplifyHeads(heads, factor: factor)
    }

    /// Single-head ablations of layer `l`: one (head, sample) request each, head-major (also counted by `VerifyPlan`).
    static func rankingRequests(_ conflict: [Int], layer l: Int, heads: Int,
                                positions: HeadPositions? = nil) -> [ScoreRequest] {
        (0..<(heads * conflict.count)).map { j in
            ScoreRequest(sample: conflict[j % conflict.count],
                         interventions: InterventionSet([blocking([HeadIndex(layer: l, head: j / conflict.count)],
                                                                  at: positions)]),
                         startLayer: l)
        }
    }

    /// The ranking by exact single-head ablation of every head, or with `method` in two stages (`rankTwoStage`;
    /// `keyValueBudget`: bytes its last-position screen may hold of keys and values the baselines did not keep).
    public static func rank(runner: AnalysisRunner, samples: [AnalysisSample], baselines: [BaselineRun],
                            attribution: [[Double]], method: TwoStageRanking? = nil,
                            positions: HeadPositions? = nil, keyValueBudget: Int = 1 << 30,
                            progress: (String) -> Void = { _ in }) throws -> HeadRanking {
        let conflict = samples.indices.filter { samples[$0].kind == "conflict" && samples[$0].target != nil }
        guard conflict.count >= 2 else {
            throw AnalysisError.tooFewSamples(what: "head identification (calibration conflict samples)",
                                              have: conflict.count, need: 2)
        }
        if let method {
            return try rankTwoStage(runner: runner, samples: samples, baselines: baselines, conflict: conflict,
                                    attribution: attribution, method: method, positions: positions,
                                    keyValueBudget: keyValueBudget, progress: progress)
        }
        let layers = runner.layers, heads = runner.heads
        var causal = [[Double]](repeating: [Double](repeating: 0, count: heads), count: layers)
        let calls = (0..<layers).map { rankingRequests(conflict, layer: $0, heads: heads, positions: positions) }
        let scored = try runner.scores(calls: calls, samples: samples, baselines: baselines) { l in
            progress(l.map { "single-head ablation, layer \($0 + 1)/\(layers)" }
                     ?? "single-head ablation, all \(layers) layers at once (keys and values run again)")
        }
        for l in 0..<layers {
            // One (head, sample) ablation per request; summed per head in sample order.
            let requests = calls[l], blocked = scored[l]
            let effects = requests.indices.map { baselines[requests[$0].sample].score.s - blocked[$0].s }
            for h in 0..<heads {
                var total = 0.0
                for k in conflict.indices { total += effects[h * conflict.count + k] }
                causal[l][h] = total / Double(conflict.count)
            }
        }
        let all = (0..<layers).flatMap { l in (0..<heads).map { HeadIndex(layer: l, head: $0) } }
        return HeadRanking(causal: causal, attribution: attribution,
                           causalOrder: all.sorted {
                               (causal[$0.layer][$0.head], $1) > (causal[$1.layer][$1.head], $0)
                           },
                           attributionOrder: all.sorted {
                               (attribution[$0.layer][$0.head], $1) > (attribution[$1.layer][$1.head], $0)
                           },
                           calibrationCount: conflict.count)
    }

    /// How many heads a random set draws from each layer: the top set's count there, capped at the layer's
    /// heads outside the top set; a shortfall is drawn from the nearest layers with heads left (the lower
    /// one first at equal distance). nil when fewer than `top.count` heads lie outside the top set. The
    /// text says how the quotas were matched.
    public static func layerQuotas(top: [HeadIndex], layers: Int, heads: Int) -> (quota: [Int], matching: String)? {
        var wanted = [Int](repeating: 0, count: layers)
        for h in top { wanted[h.layer] += 1 }
        let free = wanted.map { heads - $0 }
        guard free.reduce(0, +) >= top.count else { return nil }
        var quota = zip(wanted, free).map { min($0, $1) }
        var fallbacks: [String] = []
        for l in 0..<layers where wanted[l] > free[l] {
            var missing = wanted[l] - free[l]
            var moved: [String] = []
            for d in 1..<max(layers, 2) where missing > 0 {
                for m in [l - d, l + d] where m >= 0 && m < layers && missing > 0 && quota[m] < free[m] {
                    let take = min(missing, free[m] - quota[m])
                    quota[m] += take; missing -= take
                    moved.append("\(take) from layer \(m)")
                }
            }
            fallbacks.append("layer \(l) has \(free[l]) heads outside the top set for \(wanted[l]): "
                             + moved.joined(separator: ", "))
        }
        let layout = (0..<layers).filter { wanted[$0] > 0 }.map { "\(wanted[$0]) in layer \($0)" }
            .joined(separator: ", ")
        return (quota, "outside the top set, as many heads per layer as the top set (\(layout))"
                + (fallbacks.isEmpty ? "" : "; fell back to the nearest layers: " + fallbacks.joined(separator: "; ")))
    }

    /// `count` random head sets drawn by `layerQuotas` (each layer's share uniformly among its heads outside
    /// the top set), sorted; no sets when the heads outside the top set are too few.
    public static func randomSets(top: [HeadIndex], layers: Int, heads: Int, count: Int,
                                  seed: UInt64) -> (sets: [[HeadIndex]], matching: String) {
        if mutation == .randomSetsAreTopSet {
            return ([[HeadIndex]](repeating: top, count: count), "mutated: the top set")
        }
        guard let (quota, matching) = layerQuotas(top: top, layers: layers, heads: heads) else {
            return ([], "only \(layers * heads - Set(top).count) heads lie outside the top set of \(top.count): "
                    + "no random set can be drawn")
        }
        let inTop = Set(top)
        var rng = SeededRNG(seed: seed)
        let sets = (0..<count).map { _ in
            (0..<layers).flatMap { l -> [HeadIndex] in
                guard quota[l] > 0 else { return [] }
                let pool = (0..<heads).map { HeadIndex(layer: l, head: $0) }.filter { !inTop.contains($0) }
                return Array(pool.shuffled(using: &rng).prefix(quota[l])).sorted()
            }
        }
        return (sets, matching)
    }

    /// One request per (head set pass, item), pass-major, resuming at the set's first layer (also counted by
    /// `VerifyPlan`).
    static func setRequests(_ passes: [([HeadIndex], Intervention)], _ indices: [Int]) -> [ScoreRequest] {
        passes.flatMap { heads, intervention in
            indices.map { ScoreRequest(sample: $0, interventions: InterventionSet([intervention]),
                                       startLayer: heads.map(\.layer).min() ?? 0) }
        }
    }

    public static func intervene(runner: AnalysisRunner, ranking: HeadRanking,
                                 calibration: (samples: [AnalysisSample], baselines: [BaselineRun]),
                                 heldOut: (samples: [AnalysisSample], baselines: [BaselineRun]),
                                 extraFailed: (samples: [AnalysisSample], baselines: [BaselineRun]) = ([], []),
                                 fraction: Double = 0.05, randomSets count: Int = 200,
                                 alphaGrid: [Double] = [1.5, 2, 3, 4, 6], positions: HeadPositions? = nil,
                                 seed: UInt64, progress: (String) -> Void = { _ in }) throws -> HeadInterventionResult {
        guard count >= 1 else { throw AnalysisError.invalidParameter("random head sets must be ≥ 1") }
        guard !alphaGrid.isEmpty else { throw AnalysisError.invalidParameter("the α grid is empty") }
        let (samples, baselines) = heldOut
        let conflict = samples.indices.filter { samples[$0].kind == "conflict" && samples[$0].target != nil }
        guard conflict.count >= 2 else {
            throw AnalysisError.tooFewSamples(what: "head interventions (held-out conflict samples)",
                                              have: conflict.count, need: 2)
        }
        let top = ranking.top(fraction: fraction)
        func mfr(_ s: ArraySlice<FollowingScore>) -> Double {
            Double(s.filter(\.follows).count) / Double(max(s.count, 1))
        }
        func mfr(_ s: [FollowingScore]) -> Double { mfr(s[...]) }
        /// Scores of `indices` of `split` under each (heads, intervention) pass, all in one batched evaluation
        /// resuming at the heads' first layer: one slice of `indices.count` scores per pass, in order.
        func scores(_ passes: [([HeadIndex], Intervention)], _ indices: [Int],
                    on split: (samples: [AnalysisSample], baselines: [BaselineRun]))
            throws -> [ArraySlice<FollowingScore>] {
            let requests = setRequests(passes, indices)
            let all = try runner.scores(requests, samples: split.samples, baselines: split.baselines)
            return passes.indices.map { k in all[(k * indices.count)..<((k + 1) * indices.count)] }
        }
        func blockingPasses(_ sets: [[HeadIndex]]) -> [([HeadIndex], Intervention)] {
            sets.map { ($0, blocking($0, at: positions)) }
        }
        let baseMFR = mfr(conflict.map { baselines[$0].score })
        func drop(_ blocked: Double) -> Double { baseMFR > 0 ? (baseMFR - blocked) / baseMFR : .nan }

        progress("blocking the top \(top.count) heads")
        let blockedScores = try scores(blockingPasses([top]), conflict, on: heldOut)[0]
        let blockedMFR = mfr(blockedScores)
        let shift = Estimate.bootstrap(zip(conflict, blockedScores).map { $1.s - baselines[$0].score.s },
                                       seed: seed &+ 1)
        let (randomHeadSets, matching) = randomSets(top: top, layers: runner.layers, heads: runner.heads, count: count,
                                                    seed: seed)
        progress("blocking \(randomHeadSets.count) random head sets of \(top.count)")
        let randomDrops = try scores(blockingPasses(randomHeadSets), conflict, on: heldOut).map { drop(mfr($0)) }
        let relativeDrop = drop(blockedMFR)

        // General ability: held-out items of each kind, before and after blocking the top set.
        let kindIndices = abilityKinds.map { kind in samples.indices.filter { samples[$0].kind == kind } }
        let abilityIndices = kindIndices.flatMap { $0 }
        if !abilityIndices.isEmpty {
            progress("general ability: blocking the top heads on \(abilityIndices.count) held-out items")
        }
        let abilityScores = abilityIndices.isEmpty ? []
            : Array(try scores(blockingPasses([top]), abilityIndices, on: heldOut)[0])
        var offset = 0, ability: [AbilityChange] = []
        for (k, kind) in abilityKinds.enumerated() {
            let indices = kindIndices[k], after = abilityScores[offset..<(offset + indices.count)]
            offset += indices.count
            let beforeHits = indices.map { baselines[$0].score.follows ? 1.0 : 0.0 }
            let afterHits = after.map { $0.follows ? 1.0 : 0.0 }
            ability.append(AbilityChange(kind: kind, count: indices.count, before: mean(beforeHits),
                                         after: mean(afterHits),
                                         change: .bootstrap(zip(afterHits, beforeHits).map { $0 - $1 },
                                                            seed: seed &+ 2 &+ UInt64(k))))
        }

        // α on the calibration split's failures, for the top set and each random set separately.
        let calFailed = calibration.samples.indices.filter {
            calibration.samples[$0].kind == "conflict" && calibration.samples[$0].target != nil
                && !calibration.baselines[$0].score.follows
        }
        let sets = [top] + randomHeadSets
        var alphas = [Double](repeating: alphaGrid[0], count: sets.count)
        if !calFailed.isEmpty && alphaGrid.count > 1 {
            progress("α for the top set and \(randomHeadSets.count) random sets on \(calFailed.count) "
                     + "calibration failures")
            let passes = sets.flatMap { set in
                alphaGrid.map { (set, amplifying(set, factor: Float($0), at: positions)) }
            }
            let fixed = try scores(passes, calFailed, on: calibration).map(mfr)
            for k in sets.indices {
                // The first α of the grid with the highest fix rate.
                var best = -1.0
                for (g, a) in alphaGrid.enumerated() where fixed[k * alphaGrid.count + g] > best {
                    best = fixed[k * alphaGrid.count + g]; alphas[k] = a
                }
            }
        }
        // Sharded runs: round 2 (blocking, ability, α) ends here; amplification depends on each set's α.
        try runner.checkpoint()
        // The held-out failures, then the generated ones (all failing at baseline), as one split.
        let amplified = (samples: samples + extraFailed.samples, baselines: baselines + extraFailed.baselines)
        let failed = conflict.filter { !baselines[$0].score.follows }
            + extraFailed.samples.indices.map { samples.count + $0 }
        progress("amplifying the top heads and \(randomHeadSets.count) random sets on \(failed.count) failed "
                 + "held-out samples")
        let fixRates = failed.isEmpty ? [Double](repeating: .nan, count: sets.count)
            : try scores(sets.indices.map {
                             (sets[$0], amplifying(sets[$0], factor: Float(alphas[$0]), at: positions))
                         },
                         failed,
                         on: amplified).map(mfr)
        // Sharded runs: round 3 (amplification) ends here.
        try runner.checkpoint()
        let fix = fixRates[0], randomFix = Array(fixRates.dropFirst())
        return HeadInterventionResult(
            fraction: fraction, heads: top, baselineMFR: baseMFR, blockedMFR: blockedMFR, relativeDrop: relativeDrop,
            blockedScoreShift: shift, randomSets: randomHeadSets, randomSetMatching: matching,
            randomRelativeDrops: randomDrops,
            blockingControl: RandomSetControl(observed: relativeDrop, random: randomDrops),
            ability: ability, alpha: alphas[0], alphaGrid: alphaGrid, calibrationFailedCount: calFailed.count,
            failedCount: failed.count, amplifiedFixRate: fix, randomAlphas: Array(alphas.dropFirst()),
            randomFixRates: randomFix, amplificationControl: RandomSetControl(observed: fix, random: randomFix),
            heldOutCount: conflict.count, seed: seed, extraFailedCount: extraFailed.samples.count)
    }
}
