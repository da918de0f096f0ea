// The head claims and specificity on doctored analysis results: the empirical p-value, inconclusive with its
// reason when the items cannot decide, equivalence per item kind, and what a broken control or a blocking
// that blocks nothing would do to the verdicts.
@testable import ArbiterAnalyses
import ArbiterClaims
import ArbiterInterventions
import Testing

@Suite("Head claims and specificity on doctored results")
struct HeadClaimTests {
    static func entry(_ kind: String, _ change: Double, low: Double, high: Double, count: Int = 40) -> AbilityChange {
        AbilityChange(kind: kind, count: count, before: 0.7, after: 0.7 + change,
                      change: Estimate(value: change, low: low, high: high, count: count))
    }

    static func ability(_ change: Double, low: Double, high: Double) -> [AbilityChange] {
        Heads.abilityKinds.map { entry($0, change, low: low, high: high) }
    }

    /// Results whose head claims all hold: a large drop and fix rate far above 200 random sets, no change of
    /// ability.
    static func results(randomDrops: [Double]? = nil, randomFixes: [Double]? = nil, drop: Double = 0.7,
                        fix: Double = 0.7, failed: Int = 40, ability: [AbilityChange]? = nil) -> AnalysisResults {
        var r = SyntheticResults.results(seed: 1)
        let drops = randomDrops ?? (0..<200).map { Double($0 % 10) / 100 }
        let fixes = randomFixes ?? (0..<200).map { Double($0 % 10) / 50 }
        r.interventions = HeadInterventionResult(
            fraction: 0.05, heads: [HeadIndex(layer: 1, head: 2)], baselineMFR: 0.8, blockedMFR: 0.8 * (1 - drop),
            relativeDrop: drop, blockedScoreShift: Estimate(value: -1, low: -1.2, high: -0.8, count: 60),
            randomSets: [], randomSetMatching: "doctored", randomRelativeDrops: drops,
            blockingControl: RandomSetControl(observed: drop, random: drops),
            ability: ability ?? Self.ability(0, low: 0, high: 0), alpha: 2, alphaGrid: [2], calibrationFailedCount: 30,
            failedCount: failed, amplifiedFixRate: fix, randomAlphas: fixes.map { _ in 2 }, randomFixRates: fixes,
            amplificationControl: RandomSetControl(observed: fix, random: fixes), heldOutCount: 60, seed: 1)
        return r
    }

    @Test("empirical p-value (1 + #{random ≥ observed}) / (1 + N), its resolution, and NaN without sets")
    func pValue() {
        let c = RandomSetControl(observed: 0.5, random: [0.1, 0.5, 0.7, 0.2])
        #expect(c.pValue == 3.0 / 5 && c.resolution == 1.0 / 5 && c.count == 4 && abs(c.mean - 0.375) < 1e-12)
        #expect(RandomSetControl(observed: 0.9, random: Array(repeating: 0, count: 200)).pValue == 1.0 / 201)
        #expect(RandomSetControl(observed: 0.9, random: []).pValue.isNaN)
        #expect(RandomSetControl(observed: .nan, random: [0.1]).pValue.isNaN)
    }

    @Test("the doctored baseline holds: large effects, p = 1/201, no change of ability")
    func baselineHolds() {
        let r = Self.results()
        #expect(ClaimStatistics.headsBlocking(r).verdict == .holds)
        #expect(ClaimStatistics.headsAmplification(r).verdict == .holds)
        let s = ClaimStatistics.specificity(r)
        #expect(s.verdict == .holds && s.samples == 120, "\(s.summary)")
    }

    @Test("a random control that is the top set (the sampler mutant) gives p = 1: neither head claim holds")
    func controlEqualToTopSet() {
        // Every random set is the top set: its statistic equals the observed one on every draw.
        let r = Self.results(randomDrops: Array(repeating: 0.7, count: 200), randomFixes: Array(repeating: 0.7, count: 200))
        #expect(r.interventions.blockingControl.pValue == 1)
        #expect(ClaimStatistics.headsBlocking(r).verdict == .fails)
        #expect(ClaimStatistics.headsAmplification(r).verdict == .fails)
    }

    @Test("blocking that blocks nothing (no drop, random sets alike) never holds")
    func blockingNothing() {
        let r = Self.results(randomDrops: Array(repeating: 0, count: 200), drop: 0)
        #expect(ClaimStatistics.headsBlocking(r).verdict == .fails)
    }

    @Test("a significant drop below 0.6 holds directionally; an insignificant large one fails")
    func significance() {
        #expect(ClaimStatistics.headsBlocking(Self.results(drop: 0.3)).verdict == .holdsDirectionally)
        // 20 of 200 random drops at or above 0.7: p = 21/201 > 0.05.
        let drops = (0..<200).map { $0 < 20 ? 0.8 : 0.0 }
        let r = Self.results(randomDrops: drops)
        #expect(ClaimStatistics.headsBlocking(r).verdict == .fails, "\(ClaimStatistics.headsBlocking(r).summary)")
    }

    @Test("inconclusive, with the reason: too few failures, no failures, NaN, too few random sets, too few items")
    func inconclusive() {
        func check(_ c: ClaimResult, _ reason: String) {
            #expect(c.verdict == .inconclusive && c.detail.hasPrefix("inconclusive: ") && c.detail.contains(reason),
                    "\(c.summary)")
        }
        check(ClaimStatistics.headsAmplification(Self.results(failed: 9)),
              "9 failed held-out conflict items, fewer than \(Claims.Threshold.minimumFailed)")
        check(ClaimStatistics.headsAmplification(Self.results(fix: .nan, failed: 0)),
              "no failed held-out conflict items to fix (the model follows every instruction; no more could be "
                + "generated: the items are a fixed dataset, or the run's top-up was 0)")
        // A generated run that topped up its failures to the cap and is still short says so.
        var topped = Self.results(failed: 12)
        topped.interventions.extraConflictItems = 1000
        topped.interventions.extraFailedCount = 5
        topped.interventions.extraConflictCap = 1000
        check(ClaimStatistics.headsAmplification(topped),
              "12 failed held-out conflict items, fewer than 30 (after generating 1000 more conflict items (cap 1000))")
        check(ClaimStatistics.headsAmplification(Self.results(fix: .nan)), "NaN statistic")
        let few = Self.results(randomDrops: Array(repeating: 0, count: 20), randomFixes: Array(repeating: 0, count: 20))
        check(ClaimStatistics.headsBlocking(few), "20 random head sets, fewer than 200: the p-value cannot go below 1/21")
        check(ClaimStatistics.headsAmplification(few), "20 random head sets, fewer than 200")
        check(ClaimStatistics.headsBlocking(Self.results(drop: .nan)), "NaN statistic")
        var noFollow = Self.results()
        noFollow.interventions.baselineMFR = 0
        check(ClaimStatistics.headsBlocking(noFollow), "the model follows none of the held-out conflict items")
        var ability = Self.ability(0, low: 0, high: 0)
        ability[1].count = 6
        check(ClaimStatistics.specificity(Self.results(ability: ability)),
              "6 held-out image_only items, fewer than \(Claims.Threshold.minimumAbilityItems)")
        ability = Self.ability(0, low: 0, high: 0)
        ability[2].change = Estimate(value: .nan, low: .nan, high: .nan, count: 40)
        check(ClaimStatistics.specificity(Self.results(ability: ability)), "NaN accuracy change")
    }

    @Test("specificity is a two-sided equivalence per kind: a CI reaching past the margin or a gain fails, reported")
    func equivalence() {
        // A point change inside the margin whose CI is not: not shown equivalent at 0.05, but at 0.10.
        var ability = Self.ability(0, low: 0, high: 0)
        ability[0] = Self.entry("consistent", -0.025, low: -0.075, high: 0)
        #expect(ClaimStatistics.specificity(Self.results(ability: ability)).verdict == .holdsDirectionally)
        // A loss hidden from consistent items: only image_only accuracy drops.
        ability = Self.ability(0, low: 0, high: 0)
        ability[1] = Self.entry("image_only", -0.3, low: -0.45, high: -0.15)
        let loss = ClaimStatistics.specificity(Self.results(ability: ability))
        #expect(loss.verdict == .fails && loss.statistic == -0.3 && loss.detail.contains("a loss beyond"), "\(loss.summary)")
        // A gain beyond the margin is no equivalence, and says it is a gain.
        ability = Self.ability(0, low: 0, high: 0)
        ability[2] = Self.entry("text_only", 0.2, low: 0.1, high: 0.3)
        let gain = ClaimStatistics.specificity(Self.results(ability: ability))
        #expect(gain.verdict == .fails && gain.detail.contains("text_only 0.700 → 0.900, change 0.200 [0.100, 0.300] (n=40), a gain beyond the ±0.050 margin"),
                "\(gain.summary)")
    }
}
