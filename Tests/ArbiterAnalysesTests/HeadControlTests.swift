// The head claims' controls and interventions are what they say: random head sets lie outside the top set and
// match its layers, and blocking changes the scores. Each check is also run against a deliberately broken
// analysis (`Heads.mutation`, a task-local set only here), which it must catch — the issue's mutation tests.
@testable import ArbiterAnalyses
import ArbiterInterventions
import ArbiterModels
import PropertyBased
import Testing

/// What a correct set of random head controls satisfies; each problem named.
enum HeadSetCheck {
    static func problems(top: [HeadIndex], sets: [[HeadIndex]], layers: Int, heads: Int) -> [String] {
        let inTop = Set(top)
        var wanted = [Int](repeating: 0, count: layers)
        for h in top { wanted[h.layer] += 1 }
        // Without a shortfall (every layer has enough heads outside the top set) the layer counts match exactly.
        let exact = (0..<layers).allSatisfy { wanted[$0] <= heads - wanted[$0] }
        var problems: [String] = []
        for (k, set) in sets.enumerated() {
            if Set(set) == inTop { problems.append("set \(k) is the top set") }
            let shared = set.filter(inTop.contains)
            if !shared.isEmpty { problems.append("set \(k) holds top heads \(shared)") }
            if set.count != top.count || Set(set).count != set.count {
                problems.append("set \(k) has \(Set(set).count) distinct heads of \(set.count), not \(top.count)")
            }
            if set.contains(where: { $0.layer < 0 || $0.layer >= layers || $0.head < 0 || $0.head >= heads }) {
                problems.append("set \(k) has a head outside the model")
            }
            var counts = [Int](repeating: 0, count: layers)
            for h in set where h.layer >= 0 && h.layer < layers { counts[h.layer] += 1 }
            if exact && counts != wanted { problems.append("set \(k) has \(counts) heads per layer, the top set \(wanted)") }
        }
        return problems
    }
}

@Suite("Head controls and interventions")
struct HeadControlTests {
    /// A random top set of `k` heads in a `layers × heads` model.
    static func top(_ rng: inout SeededRNG, layers: Int, heads: Int, k: Int) -> [HeadIndex] {
        let all = (0..<layers).flatMap { l in (0..<heads).map { HeadIndex(layer: l, head: $0) } }
        return Array(all.shuffled(using: &rng).prefix(k))
    }

    @Test("random sets lie outside the top set, match its heads per layer, and vary (random top sets and shapes)")
    func randomSetsMatched() async {
        await propertyCheck(count: 300, input: Gen.int(in: 1...12), Gen.int(in: 2...16), Gen.int(in: 0...1_000_000)) {
            layers, heads, seed in
            var rng = SeededRNG(seed: UInt64(seed))
            // The 5% top set, or up to half the heads (forcing fallbacks to other layers).
            let k = Bool.random(using: &rng) ? HeadRanking.setSize(fraction: 0.05, total: layers * heads)
                : Int.random(in: 1...max(1, layers * heads / 2), using: &rng)
            let top = Self.top(&rng, layers: layers, heads: heads, k: k)
            let (sets, matching) = Heads.randomSets(top: top, layers: layers, heads: heads, count: 50, seed: UInt64(seed))
            #expect(sets.count == 50, "\(matching)")
            let problems = HeadSetCheck.problems(top: top, sets: sets, layers: layers, heads: heads)
            #expect(problems.isEmpty, "\(layers)×\(heads), top \(top): \(problems.prefix(3)) (\(matching))")
            // The sets differ whenever some layer draws fewer heads than it has outside the top set.
            let quota = Heads.layerQuotas(top: top, layers: layers, heads: heads)?.quota ?? []
            let free = (0..<layers).map { l in heads - top.filter { $0.layer == l }.count }
            if quota.indices.contains(where: { quota[$0] > 0 && quota[$0] < free[$0] }) {
                #expect(Set(sets).count > 1, "every set is \(sets.first ?? []) (\(matching))")
            }
        }
    }

    @Test("a layer with too few heads outside the top set borrows from the nearest layers, and says so")
    func fallback() {
        // The top set holds all of layer 1 and one head of layer 0: layer 0 gives its 2 remaining heads and
        // layer 2 (as near) the other 2.
        let top = (0..<4).map { HeadIndex(layer: 1, head: $0) } + [HeadIndex(layer: 0, head: 3)]
        let quotas = Heads.layerQuotas(top: top, layers: 4, heads: 4)
        #expect(quotas?.quota == [3, 0, 2, 0], "\(String(describing: quotas))")
        #expect(quotas?.matching.contains("layer 1 has 0 heads outside the top set for 4: 2 from layer 0, 2 from layer 2")
                == true, "\(quotas?.matching ?? "nil")")
        let (sets, _) = Heads.randomSets(top: top, layers: 4, heads: 4, count: 20, seed: 7)
        #expect(HeadSetCheck.problems(top: top, sets: sets, layers: 4, heads: 4).isEmpty)
        #expect(sets.allSatisfy { s in s.filter { $0.layer == 0 }.count == 3 && s.filter { $0.layer == 2 }.count == 2 })
    }

    @Test("too few heads outside the top set: no random sets, and the reason")
    func tooFewHeads() {
        let top = [HeadIndex(layer: 0, head: 0), HeadIndex(layer: 0, head: 1)]
        let (sets, matching) = Heads.randomSets(top: top, layers: 1, heads: 3, count: 10, seed: 1)
        #expect(sets.isEmpty)
        #expect(matching.contains("only 1 heads lie outside the top set of 2"), "\(matching)")
    }

    @Test("mutation: a sampler that returns the top set is caught by the random-set check")
    func samplerMutantCaught() {
        var rng = SeededRNG(seed: 3)
        let top = Self.top(&rng, layers: 6, heads: 8, k: 3)
        let (sets, _) = Heads.$mutation.withValue(.randomSetsAreTopSet) {
            Heads.randomSets(top: top, layers: 6, heads: 8, count: 20, seed: 3)
        }
        let problems = HeadSetCheck.problems(top: top, sets: sets, layers: 6, heads: 8)
        #expect(problems.contains("set 0 is the top set"), "\(problems.prefix(3))")
    }

    /// What blocking heads must do on a real model: single-head ablations move the calibration scores, and
    /// blocking the top set moves the held-out ones. Each problem named.
    /// "Unchanged" allows for the last bits batched passes differ by from the baseline (BatchedScoresTests).
    static func blockingProblems(_ r: AnalysisResults) -> [String] {
        let noise = 1e-4
        var problems: [String] = []
        let largest = r.ranking.causal.joined().map(abs).max() ?? 0
        if largest <= noise {
            problems.append("every single-head ablation left the calibration scores unchanged (largest |effect| \(largest))")
        }
        let shift = r.interventions.blockedScoreShift
        if max(abs(shift.low), abs(shift.high)) <= noise {
            problems.append("blocking the top set left the held-out scores unchanged (shift \(shift))")
        }
        return problems
    }

    @Test("blocking heads changes the scores on the tiny LLaVA; the run's random sets pass the set check")
    func blockingBlocks() throws {
        let r = try Self.run()
        #expect(Self.blockingProblems(r).isEmpty, "\(Self.blockingProblems(r))")
        let i = r.interventions
        #expect(HeadSetCheck.problems(top: i.heads, sets: i.randomSets, layers: r.layers, heads: r.headsPerLayer).isEmpty)
        #expect(i.blockingControl.count == i.randomSets.count && i.randomAlphas.count == i.randomSets.count)
        #expect(i.ability.map(\.kind) == Heads.abilityKinds && i.ability[0].count == 4)
    }

    @Test("mutation: blocking that blocks nothing is caught by the blocking check")
    func blockingMutantCaught() throws {
        let r = try Heads.$mutation.withValue(.blockingBlocksNothing) { try Self.run() }
        let problems = Self.blockingProblems(r)
        #expect(problems.count == 2, "\(problems)")
    }

    static func run() throws -> AnalysisResults {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        return try AnalysisSuite.run(session: session, items: try Fixtures.items(perTarget: 6), dataset: "fixture",
                                     configuration: AnalysisTests.configuration())
    }
}
