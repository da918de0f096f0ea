// Verdicts are monotone in their thresholds: on random synthetic analysis results and random thresholds,
// making any set of thresholds stricter never raises a claim's verdict (fails never becomes holds, holds
// directionally never becomes holds), and whether a claim is inconclusive does not depend on them at all.
// Property-based (swift-property-based).
@testable import ArbiterAnalyses
import ArbiterClaims
import PropertyBased
import Testing

/// Random AnalysisResults carrying every number the claim statistics read, and random thresholds around them.
enum SyntheticResults {
    static func uniform(_ rng: inout SeededRNG, _ range: ClosedRange<Double>) -> Double {
        Double.random(in: range, using: &rng)
    }

    /// An estimate around a value drawn from `range` (NaN about once in 40).
    static func estimate(_ rng: inout SeededRNG, _ range: ClosedRange<Double>) -> Estimate {
        if Int.random(in: 0..<40, using: &rng) == 0 { return Estimate(value: .nan, low: .nan, high: .nan, count: 0) }
        let v = uniform(&rng, range)
        return Estimate(value: v, low: v - uniform(&rng, 0...0.4), high: v + uniform(&rng, 0...0.4),
                        count: Int.random(in: 1...50, using: &rng))
    }

    static func curve(_ rng: inout SeededRNG, layers: Int, _ range: ClosedRange<Double>) -> [Estimate] {
        (0..<layers).map { _ in estimate(&rng, range) }
    }

    static func results(seed: UInt64) -> AnalysisResults {
        var rng = SeededRNG(seed: seed)
        let layers = Int.random(in: 1...12, using: &rng)
        // All items, calibration and held-out: three random curve sets (an edge missing one time in 8, the split
        // missing one time in 10).
        var shift: [String: [String: [Estimate]]] = [:], calibrationShift = shift, heldOutShift = shift
        let split = Int.random(in: 0..<10, using: &rng) != 0
        for edge in ["cues->instruction", "context->instruction", "image->instruction", "cues->last", "context->last",
                     "image->last"]
        where Int.random(in: 0..<8, using: &rng) != 0 {
            shift[edge] = ["image": curve(&rng, layers: layers, -1...0.3),
                           "text": curve(&rng, layers: layers, -1...0.3)]
            if split {
                calibrationShift[edge] = ["image": curve(&rng, layers: layers, -1...0.3),
                                          "text": curve(&rng, layers: layers, -1...0.3)]
                heldOutShift[edge] = ["image": curve(&rng, layers: layers, -1...0.3),
                                      "text": curve(&rng, layers: layers, -1...0.3)]
            }
        }
        var agreement = ["last": curve(&rng, layers: layers, 0...1)]
        var meanScore: [String: [String: [Estimate]]] = [:]
        if Bool.random(using: &rng) {
            agreement["instruction"] = curve(&rng, layers: layers, 0...1)
            meanScore["instruction"] = ["image": curve(&rng, layers: layers, -1...1), "text": curve(&rng, layers: layers, -1...1)]
        }
        // Usually enough random sets for a verdict (≥ 200), sometimes too few; NaN about once in 20.
        let randomCount = Int.random(in: 0..<4, using: &rng) == 0 ? Int.random(in: 0...30, using: &rng)
            : Int.random(in: 200...260, using: &rng)
        func nanOr(_ value: Double) -> Double { Int.random(in: 0..<20, using: &rng) == 0 ? .nan : value }
        let randomDrops = (0..<randomCount).map { _ in uniform(&rng, -0.3...0.9) }
        let fixes = (0..<randomCount).map { _ in uniform(&rng, 0...0.8) }
        let drop = nanOr(uniform(&rng, -0.3...1)), fix = nanOr(uniform(&rng, 0...1))
        let failed = Int.random(in: 0..<6, using: &rng) == 0 ? 0 : Int.random(in: 1...80, using: &rng)
        let ability = Heads.abilityKinds.map { kind in
            let count = Int.random(in: 0..<5, using: &rng) == 0 ? Int.random(in: 0...12, using: &rng)
                : Int.random(in: 10...60, using: &rng)
            let before = uniform(&rng, 0...1), change = estimate(&rng, -0.2...0.2)
            return AbilityChange(kind: kind, count: count, before: before, after: before + change.value, change: change)
        }
        let interventions = HeadInterventionResult(
            fraction: 0.05, heads: [], baselineMFR: Int.random(in: 0..<20, using: &rng) == 0 ? 0 : uniform(&rng, 0...1),
            blockedMFR: uniform(&rng, 0...1), relativeDrop: drop,
            blockedScoreShift: estimate(&rng, -1...1), randomSets: [], randomSetMatching: "synthetic",
            randomRelativeDrops: randomDrops, blockingControl: RandomSetControl(observed: drop, random: randomDrops),
            ability: ability, alpha: 2, alphaGrid: [2], calibrationFailedCount: failed,
            failedCount: failed, amplifiedFixRate: fix, randomAlphas: fixes.map { _ in 2 }, randomFixRates: fixes,
            amplificationControl: RandomSetControl(observed: fix, random: fixes),
            heldOutCount: Int.random(in: 0..<8, using: &rng) == 0 ? 20 : 40, seed: seed)
        let attribution = AttributionResult(attention: [:], mlp: [:], heads: [],
                                            deepMLPTotal: ["overall": estimate(&rng, -1...1),
                                                           "image": estimate(&rng, -1...1),
                                                           "text": estimate(&rng, -1...1)],
                                            deepAttentionTotal: ["overall": estimate(&rng, -1...1)],
                                            deepStart: layers / 2, seed: seed)
        return AnalysisResults(
            model: "synthetic", modelType: "llava", dataset: "synthetic", layout: "raw", layoutFingerprint: "-",
            configuration: AnalysisConfiguration(), layers: layers, headsPerLayer: 4,
            calibrationIDs: [], heldOutIDs: [], skipped: [],
            following: ModalityFollowingResult(ratio: [:], counts: ["overall": [20, 40]], accuracy: [:], meanScore: [:],
                                               thirdAnswers: [:], thirdCounts: [:], seed: seed),
            flow: InformationFlowResult(window: 1, shift: shift, calibrationShift: calibrationShift,
                                        heldOutShift: heldOutShift, seed: seed),
            routing: AttentionRoutingResult(imageShare: [:], cueMass: [:],
                                            selectivity: ["instruction": curve(&rng, layers: layers, -0.4...0.4),
                                                          "last": curve(&rng, layers: layers, -0.4...0.4)],
                                            seed: seed),
            lens: LogitLensResult(agreement: agreement, meanScore: meanScore, seed: seed),
            attribution: attribution,
            ranking: HeadRanking(causal: [], attribution: [], causalOrder: [], attributionOrder: [],
                                 calibrationCount: 0),
            interventions: interventions, seconds: 0)
    }

    /// Random thresholds spanning the ranges of the synthetic statistics (the standard ones one time in 4).
    static func thresholds(_ rng: inout SeededRNG) -> ClaimThresholds {
        var t = ClaimThresholds.standard
        guard Int.random(in: 0..<4, using: &rng) != 0 else { return t }
        t.anchorsRatio = uniform(&rng, 0...4)
        t.nonSelectiveSI = uniform(&rng, 0...0.5)
        t.nonSelectiveSIDirectional = uniform(&rng, 0...0.5)
        t.nonSelectiveEquivalence = uniform(&rng, 0...2)
        t.nonSelectiveEquivalenceDirectional = uniform(&rng, 0...2)
        t.deepAgreement = uniform(&rng, 0...1)
        t.shallowAgreementMax = uniform(&rng, 0...1)
        t.blockingDrop = uniform(&rng, -0.2...1.2)
        t.amplificationFix = uniform(&rng, 0...1)
        t.specificityMaxChange = uniform(&rng, 0...0.5)
        t.specificityMaxChangeDirectional = uniform(&rng, 0...0.5)
        t.significance = uniform(&rng, 0...0.2)
        return t
    }

    /// `t` with a random non-empty subset of its thresholds moved in the direction that makes a claim harder
    /// to hold: ratios, agreement, drop and fix rate up; the bounds on |SI|, the equivalence margin, shallow
    /// agreement, the change of accuracy and the p-value level down.
    static func stricter(_ t: ClaimThresholds, _ rng: inout SeededRNG) -> ClaimThresholds {
        var s = t
        let moves: [(inout ClaimThresholds, Double) -> Void] = [
            { $0.anchorsRatio += 4 * $1 },
            { $0.nonSelectiveSI -= 0.5 * $1 },
            { $0.nonSelectiveSIDirectional -= 0.5 * $1 },
            { $0.nonSelectiveEquivalence -= $1 },
            { $0.nonSelectiveEquivalenceDirectional -= $1 },
            { $0.deepAgreement += $1 },
            { $0.shallowAgreementMax -= $1 },
            { $0.blockingDrop += $1 },
            { $0.amplificationFix += $1 },
            { $0.specificityMaxChange -= 0.5 * $1 },
            { $0.specificityMaxChangeDirectional -= 0.5 * $1 },
            { $0.significance -= 0.2 * $1 },
        ]
        let chosen = moves.indices.filter { _ in Bool.random(using: &rng) }
        for i in chosen.isEmpty ? [Int.random(in: moves.indices, using: &rng)] : chosen {
            moves[i](&s, uniform(&rng, 0...1))
        }
        return s
    }

    /// Claims whose verdict under the stricter thresholds is above the verdict under `t` (none if monotone) or
    /// whose inconclusiveness depends on the thresholds (it must not: inconclusive is decided from the items
    /// alone), the claims whose verdict the stricter thresholds lowered, and the inconclusive ones.
    static func check(seed: Int) -> (violations: [String], lowered: Set<String>, inconclusive: Set<String>) {
        var rng = SeededRNG(seed: UInt64(seed) &* 7919 &+ 1)
        let r = results(seed: UInt64(seed))
        let t = thresholds(&rng), s = stricter(t, &rng)
        let base = ClaimStatistics.evaluate(r, thresholds: t), strict = ClaimStatistics.evaluate(r, thresholds: s)
        let standard = ClaimStatistics.evaluate(r)
        var violations: [String] = [], lowered: Set<String> = [], inconclusive: Set<String> = []
        for ((a, b), c) in zip(zip(base, strict), standard) {
            if b.verdict > a.verdict { violations.append("\(a.id): \(a.verdict.rawValue) → \(b.verdict.rawValue)") }
            if b.verdict < a.verdict { lowered.insert(a.id) }
            let flags = [a, b, c].map { $0.verdict == .inconclusive }
            if Set(flags).count > 1 {
                violations.append("\(a.id): inconclusive depends on the thresholds (\(a.verdict.rawValue) / "
                                  + "\(b.verdict.rawValue) / standard \(c.verdict.rawValue))")
            }
            if flags[0] { inconclusive.insert(a.id) }
        }
        if !violations.isEmpty { violations.append("thresholds \(t) → \(s)") }
        return (violations, lowered, inconclusive)
    }
}

@Suite("Verdicts are monotone in their thresholds (property-based)")
struct ThresholdMonotonicityTests {
    @Test("stricter thresholds never raise a verdict, on random results and thresholds")
    func monotone() async {
        await propertyCheck(count: 2000, input: Gen.int(in: 0...10_000_000)) { seed in
            let violations = SyntheticResults.check(seed: seed).violations
            #expect(violations.isEmpty, "seed \(seed): \(violations)")
        }
    }

    @Test("the synthetic cases reach every claim's thresholds: each threshold-dependent verdict is lowered somewhere")
    func notVacuous() {
        var lowered: Set<String> = [], inconclusive: Set<String> = []
        for seed in 0..<3000 {
            let c = SyntheticResults.check(seed: seed)
            lowered.formUnion(c.lowered)
            inconclusive.formUnion(c.inconclusive)
        }
        // mlp-inertia compares with zero, a fixed null rather than a threshold.
        let expected = Set(Claims.all.map(\.id)).subtracting(["mlp-inertia"])
        #expect(lowered == expected, "lowered: \(lowered.sorted())")
        // The claims that can be inconclusive are, somewhere: the threshold-independence check is not vacuous.
        #expect(inconclusive.isSuperset(of: ["heads-blocking", "heads-amplification", "specificity"]),
                "inconclusive: \(inconclusive.sorted())")
    }
}
