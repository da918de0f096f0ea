// Two-stage head ranking (issue #23): the option's text form and coding, blocking a head at some positions only
// (`Intervention.blockHeadsAt`, found by `HookPoint.queryOffset`), the ranking's rule, and C = every head giving
// the exact ranking bit for bit.
@testable import ArbiterAnalyses
import ArbiterInterventions
import ArbiterModels
import ArbiterTensor
import Foundation
import Synchronization
import Testing

@Suite("Two-stage head ranking")
struct TwoStageRankingTests {
    @Test("the option's text: exact, dla:C, last-position:C; anything else refused with the value named")
    func parsing() throws {
        #expect(try TwoStageRanking.parse("exact") == nil)
        #expect(try TwoStageRanking.parse("dla:8") == TwoStageRanking(screen: .attribution, candidates: 8))
        #expect(try TwoStageRanking.parse("last-position:3") == TwoStageRanking(screen: .lastPosition, candidates: 3))
        #expect(TwoStageRanking(screen: .lastPosition, candidates: 3).description == "last-position:3")
        for bad in ["", "fast", "dla", "dla:", "dla:0", "dla:-2", "dla:x", "dla:2.5", "DLA:3", "last-position:3:4",
                    "exact:4", "dla:99999999999999999999"] {
            #expect(throws: AnalysisError.self, "\(bad)") { try TwoStageRanking.parse(bad) }
            do { _ = try TwoStageRanking.parse(bad) } catch { #expect("\(error)".contains("'\(bad)'"), "\(error)") }
        }
    }

    @Test("the default configuration and ranking write no two-stage fields; results without them read as exact")
    func coding() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let plain = String(decoding: try encoder.encode(AnalysisConfiguration()), as: UTF8.self)
        #expect(!plain.contains("headRanking"), "\(plain)")
        var c = AnalysisConfiguration()
        c.headRanking = TwoStageRanking(screen: .lastPosition, candidates: 10)
        let data = try encoder.encode(c)
        let field = #""headRanking":{"candidates":10,"screen":"last-position"}"#
        #expect(String(decoding: data, as: UTF8.self).contains(field))
        #expect(try JSONDecoder().decode(AnalysisConfiguration.self, from: data) == c)
        let old = try JSONDecoder().decode(AnalysisConfiguration.self, from: Data(plain.utf8))
        #expect(old == AnalysisConfiguration() && old.headRanking == nil)
        let ranking = HeadRanking(causal: [[1]], attribution: [[2]], causalOrder: [HeadIndex(layer: 0, head: 0)],
                                  attributionOrder: [HeadIndex(layer: 0, head: 0)], calibrationCount: 2)
        let text = String(decoding: try encoder.encode(ranking), as: UTF8.self)
        #expect(!text.contains("twoStage"), "\(text)")
        #expect(try JSONDecoder().decode(HeadRanking.self, from: Data(text.utf8)) == ranking)
    }

    @Test("agreement by hand: top-k overlap, top-n overlap, Spearman's ρ among the exact top n")
    func agreement() {
        let heads = (0..<30).map { HeadIndex(layer: $0 / 10, head: $0 % 10) }
        let same = HeadRankingAgreement(exact: heads, twoStage: heads, setSize: 3)
        #expect(same.setOverlap == 1 && same.topOverlap == 1 && same.topSpearman == 1 && same.topCount == 20)
        // The exact top 20 reversed in the two-stage ranking, then the rest: same sets, ρ = −1.
        let reversed = HeadRankingAgreement(exact: heads, twoStage: heads.prefix(20).reversed() + heads.dropFirst(20),
                                            setSize: 3)
        #expect(reversed.topOverlap == 1 && reversed.topSpearman == -1)
        #expect(reversed.setOverlap == 0, "the reversed top 3 are heads 17–19")
        // Two of the top 3 swapped with heads 25 and 26: 1/3 of the set kept; the top 20 loses 2 of 20.
        var swapped = heads
        swapped.swapAt(1, 25)
        swapped.swapAt(2, 26)
        let s = HeadRankingAgreement(exact: heads, twoStage: swapped, setSize: 3)
        #expect(s.setOverlap == 1.0 / 3 && s.topOverlap == 18.0 / 20)
        // Heads 1 and 2 fall behind the other 18 of the top 20: d = 1 − 18 and 2 − 19 for them, 2 for heads 3–19.
        let d2 = Double(17 * 17 + 17 * 17 + 17 * 2 * 2)
        #expect(abs(s.topSpearman - (1 - 6 * d2 / (20 * 399))) < 1e-12, "\(s.topSpearman)")
    }

    @Test("keyValueChunks: consecutive items within the budget, at least one each")
    func chunks() {
        #expect(Heads.keyValueChunks([4, 4, 4, 4, 4], budget: 8) == [0..<2, 2..<4, 4..<5])
        #expect(Heads.keyValueChunks([10, 1, 1], budget: 4) == [0..<1, 1..<3])
        #expect(Heads.keyValueChunks([3, 3], budget: 1 << 30) == [0..<2])
        #expect(Heads.keyValueChunks([], budget: 8).isEmpty)
    }
}

@Suite("Blocking heads at some positions only")
struct PositionBlockingTests {
    /// The logits at every position of a full run of `sample` under `interventions`.
    static func logits(_ runner: AnalysisRunner, _ sample: AnalysisSample, _ interventions: InterventionSet,
                       cache: HookFilter = .none) throws -> (logits: [UInt32], hooks: HookRun) {
        let input = sample.input
        let hooks = try interventions.hooks(for: runner.decoder, hookNames: runner.session.model.hookNames,
                                            tokenCount: input.ids.count, spans: input.spans, cache: cache)
        let out = try BLAS.withSingleThread { try runner.session.run(input, logits: .all, hooks: hooks) }
        return (out.logits!.scalars.map(\.bitPattern), hooks)
    }

    @Test("at every position it is blockHeads bit for bit; at none it changes nothing")
    func everyPosition() throws {
        let (runner, samples, _) = try tinyRunner(perTarget: 1)
        let heads = [HeadIndex(layer: 0, head: 1), HeadIndex(layer: 2, head: 3)]
        for sample in samples.prefix(3) {
            let t = sample.input.ids.count
            let every = InterventionSet([.blockHeadsAt(heads, queries: .positions(Array(0..<t)))])
            let all = try Self.logits(runner, sample, every)
            let block = try Self.logits(runner, sample, InterventionSet([.blockHeads(heads, means: nil)]))
            let none = try Self.logits(runner, sample, InterventionSet([.blockHeadsAt(heads, queries: .positions([]))]))
            let plain = try Self.logits(runner, sample, InterventionSet())
            #expect(all.logits == block.logits, "\(sample.id)")
            #expect(none.logits == plain.logits, "\(sample.id)")
            #expect(block.logits != plain.logits, "\(sample.id): blocking changed nothing, the test has no teeth")
        }
    }

    @Test("at the last position: every earlier row computes as without it, the last row does not; resumes there")
    func lastPosition() throws {
        let (runner, samples, _) = try tinyRunner(perTarget: 1)
        let names = Set(runner.decoder.hookNames)
        for sample in samples.prefix(3) {
            let t = sample.input.ids.count
            let head = HeadIndex(layer: 1, head: 2)
            let block = InterventionSet([.blockHeadsAt([head], queries: .span("last"))])
            #expect(try block.firstChangedPosition(tokenCount: t, spans: sample.input.spans) == t - 1)
            let base = try Self.logits(runner, sample, InterventionSet(), cache: .names(names)).hooks
            let blocked = try Self.logits(runner, sample, block, cache: .names(names)).hooks
            for (name, tensor) in base.cache {
                let same = SuffixRunTests.prefixBits(name, blocked.cache[name]!, before: t - 1)
                    == SuffixRunTests.prefixBits(name, tensor, before: t - 1)
                #expect(same, "\(sample.id): \(name) changed before the last position")
            }
            let z = "blocks.1.attn.hook_z", d = runner.decoder.configuration.headDim
            let row = blocked.cache[z]!, h = runner.heads
            let zeroed = (0..<d).allSatisfy { row.scalars[((t - 1) * h + head.head) * d + $0] == 0 }
            #expect(zeroed, "\(sample.id): the head still writes at the last position")
            let post = "blocks.2.hook_resid_post"
            #expect(blocked.cache[post]!.row(t - 1) != base.cache[post]!.row(t - 1))
        }
    }

    @Test("a suffix run from the last position, alone and batched, blocks the head there: equal to the full run")
    func suffixRuns() throws {
        let (runner, samples, _) = try tinyRunner(perTarget: 2)
        let baselines = try samples.map { try runner.baseline($0, keepPatterns: false, keepKeysValues: true) }
        var requests: [ScoreRequest] = []
        for i in samples.indices {
            for l in 0..<runner.layers {
                let block = InterventionSet([.blockHeadsAt([HeadIndex(layer: l, head: (i + l) % runner.heads)],
                                                           queries: .span("last"))])
                requests.append(ScoreRequest(sample: i, interventions: block, startLayer: l,
                                             unchangedBefore: samples[i].input.ids.count - 1))
            }
        }
        let batched = try BLAS.withSingleThread { try runner.scores(requests, samples: samples, baselines: baselines) }
        var moved = 0
        for (r, b) in zip(requests, batched) {
            let sample = samples[r.sample], baseline = baselines[r.sample]
            let full = try BLAS.withSingleThread {
                try runner.score(sample, baseline: baseline, interventions: r.interventions, startLayer: r.startLayer)
            }
            let suffix = try BLAS.withSingleThread {
                try runner.score(sample, baseline: baseline, interventions: r.interventions, startLayer: r.startLayer,
                                 unchangedBefore: r.unchangedBefore)
            }
            // Suffix, batched and full runs multiply matrices of different row counts (SuffixRunTests).
            #expect(abs(suffix.s - full.s) <= 1e-4 * max(1, abs(full.s)),
                    "\(r.interventions): \(suffix.s) vs \(full.s)")
            #expect(abs(b.s - full.s) <= 1e-4 * max(1, abs(full.s)), "\(r.interventions): \(b.s) vs \(full.s)")
            if abs(full.s - baseline.score.s) > 1e-3 { moved += 1 }
        }
        // A suffix run that lost the rows' positions would block nothing and score the baseline.
        #expect(moved > requests.count / 2, "only \(moved) of \(requests.count) blocks moved s")
    }

    @Test("an edit at a hook point that does not say its rows' positions is refused, naming the point")
    func needsOffset() throws {
        let (runner, samples, _) = try tinyRunner(perTarget: 1)
        let t = samples[0].input.ids.count
        let block = InterventionSet([.blockHeadsAt([HeadIndex(layer: 0, head: 0)], queries: .span("last"))])
        let hooks = try block.hooks(for: runner.decoder, hookNames: runner.session.model.hookNames, tokenCount: t,
                                    spans: samples[0].input.spans)
        var z = Tensor(shape: [t, runner.heads, runner.decoder.configuration.headDim],
                       scalars: [Float](repeating: 1, count: t * runner.heads * runner.decoder.configuration.headDim))
        #expect(throws: ModelError.self) {
            try hooks.applyEdits("blocks.0.attn.hook_z", &z, HookPoint(name: "blocks.0.attn.hook_z", layer: 0))
        }
        try hooks.applyEdits("blocks.0.attn.hook_z", &z, HookPoint(name: "blocks.0.attn.hook_z", layer: 0,
                                                                   queryOffset: 0))
        #expect(z.scalars[((t - 1) * runner.heads) * runner.decoder.configuration.headDim] == 0)
        #expect(z.scalars[0] == 1)
        #expect(throws: ModelError.self) {
            _ = try InterventionSet([.blockHeadsAt([HeadIndex(layer: 9, head: 0)], queries: .span("last"))])
                .hooks(for: runner.decoder, hookNames: runner.session.model.hookNames, tokenCount: t,
                       spans: samples[0].input.spans)
        }
    }
}

@Suite("Two-stage head ranking on the tiny LLaVA")
struct TwoStageRankingRunTests {
    /// The tiny LLaVA's calibration stand-in: items, their baselines and per-head DLA, computed once on one BLAS
    /// thread (tests running side by side change the thread count, and with it the baselines' last bits).
    struct Setup {
        let runner: AnalysisRunner, samples: [AnalysisSample], baselines: [BaselineRun], attribution: [[Double]]

        init(perTarget: Int = 3, keepKeysValues: Bool = true) throws {
            (runner, samples, baselines, attribution) = try BLAS.withSingleThread {
                let (runner, samples, baselines) = try tinyRunner(perTarget: perTarget, keepKeysValues: keepKeysValues)
                let attribution = try Attribution.measure(runner: runner, samples: samples, baselines: baselines,
                                                          seed: 1).heads
                return (runner, samples, baselines, attribution)
            }
        }

        func rank(_ method: TwoStageRanking?, keyValueBudget: Int = 1 << 30) throws -> HeadRanking {
            try BLAS.withSingleThread {
                try Heads.rank(runner: runner, samples: samples, baselines: baselines, attribution: attribution,
                               method: method, keyValueBudget: keyValueBudget)
            }
        }
    }

    static func bits(_ m: [[Double]]) -> [[UInt64]] { m.map { $0.map(\.bitPattern) } }

    @Test("C = every head (or more): the exact ranking bit for bit, for both screens", arguments: HeadScreen.allCases)
    func everyHeadIsExact(screen: HeadScreen) throws {
        let setup = try Setup()
        let exact = try setup.rank(nil)
        #expect(exact.twoStage == nil)
        for c in [12, 50] {
            let two = try setup.rank(TwoStageRanking(screen: screen, candidates: c))
            #expect(Self.bits(two.causal) == Self.bits(exact.causal), "C = \(c)")
            #expect(two.causalOrder == exact.causalOrder && two.attributionOrder == exact.attributionOrder)
            #expect(two.attribution == exact.attribution && two.calibrationCount == exact.calibrationCount)
            let record = try #require(two.twoStage)
            #expect(record.candidates == c && record.screen == screen)
            #expect(record.exactHeads == record.screenOrder && Set(record.screenOrder).count == 12)
        }
    }

    @Test("fewer candidates: the screen's first C by their causal score, then the rest in the screen's order",
          arguments: HeadScreen.allCases)
    func rule(screen: HeadScreen) throws {
        let setup = try Setup()
        let exact = try setup.rank(nil)
        let two = try setup.rank(TwoStageRanking(screen: screen, candidates: 5))
        let record = try #require(two.twoStage)
        #expect(record.exactHeads == Array(record.screenOrder.prefix(5)))
        let candidates = Set(record.exactHeads)
        #expect(Set(two.causalOrder.prefix(5)) == candidates)
        #expect(Array(two.causalOrder.dropFirst(5)) == record.screenOrder.filter { !candidates.contains($0) })
        for h in two.causalOrder.dropFirst(5) { #expect(two.causal[h.layer][h.head].isNaN, "\(h) has a score") }
        // The candidates' scores are the exact ablation's (other batches: up to the products' last bits), in
        // decreasing order.
        let scores = two.causalOrder.prefix(5).map { two.causal[$0.layer][$0.head] }
        #expect(scores == scores.sorted(by: >))
        for h in candidates {
            let (a, b) = (two.causal[h.layer][h.head], exact.causal[h.layer][h.head])
            #expect(abs(a - b) <= 1e-4 * max(1, abs(b)), "\(h): \(a) vs \(b)")
        }
        if screen == .attribution {
            #expect(record.screenOrder == exact.attributionOrder && record.screenScores == exact.attribution)
        }
    }

    @Test("the last-position screen is the mean drop of s under one-at-a-time full runs")
    func screenScores() throws {
        let (runner, samples, baselines) = try tinyRunner(perTarget: 2, keepKeysValues: true)
        let conflict = samples.indices.filter { samples[$0].kind == "conflict" && samples[$0].target != nil }
        let screen = try BLAS.withSingleThread {
            try Heads.lastPositionScreen(runner: runner, samples: samples, baselines: baselines, conflict: conflict,
                                         keyValueBudget: 1 << 30, progress: { _ in })
        }
        var differs = false
        for l in 0..<runner.layers {
            for h in 0..<runner.heads {
                let block = InterventionSet([.blockHeadsAt([HeadIndex(layer: l, head: h)], queries: .span("last"))])
                let drops = try conflict.map { i in
                    baselines[i].score.s - (try BLAS.withSingleThread {
                        try runner.score(samples[i], baseline: baselines[i], interventions: block, startLayer: 0)
                    }).s
                }
                let expected = drops.reduce(0, +) / Double(drops.count)
                #expect(abs(screen[l][h] - expected) <= 1e-4 * max(1, abs(expected)), "\(l).\(h)")
                let whole = try conflict.map { i in
                    baselines[i].score.s - (try BLAS.withSingleThread {
                        try runner.score(samples[i], baseline: baselines[i],
                                         interventions: InterventionSet([.blockHeads([HeadIndex(layer: l, head: h)],
                                                                                     means: nil)]), startLayer: 0)
                    }).s
                }.reduce(0, +) / Double(conflict.count)
                if abs(whole - expected) > 1e-3 { differs = true }
            }
        }
        #expect(differs, "blocking at the last position scored like blocking everywhere: the screen has no teeth")
    }

    @Test("without the baselines' keys and values the screen runs its items again, a chunk at a time: same scores")
    func screenWithoutKeys() throws {
        let kept = try Setup().rank(TwoStageRanking(screen: .lastPosition, candidates: 4))
        // One item's keys and values exceed 1 byte: every item is a chunk of its own.
        let setup = try Setup(keepKeysValues: false)
        let runner = setup.runner, samples = setup.samples
        #expect(setup.baselines.allSatisfy { $0.keys == nil })
        let calls = Mutex<[Int]>([])
        let observe: @Sendable ([ScoreRequest]) -> Void = { r in calls.withLock { $0.append(r.count) } }
        let chunked = try AnalysisRunner.observingRequests(of: runner.session, observe) {
            try setup.rank(TwoStageRanking(screen: .lastPosition, candidates: 4), keyValueBudget: 1)
        }
        let conflict = samples.filter { $0.kind == "conflict" && $0.target != nil }.count
        let observed = calls.withLock { $0 }
        // Per item a call per layer of one request per head, then the candidates' calls.
        #expect(Array(observed.prefix(conflict * runner.layers)) == [Int](repeating: runner.heads,
                                                                          count: conflict * runner.layers))
        let a = try #require(kept.twoStage), b = try #require(chunked.twoStage)
        for l in 0..<runner.layers {
            for h in 0..<runner.heads {
                #expect(abs(a.screenScores[l][h] - b.screenScores[l][h]) <= 1e-4 * max(1, abs(a.screenScores[l][h])))
            }
        }
    }

    @Test("a whole run with C = every head: the head interventions of the exact run, bit for bit")
    func wholeRun() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        let items = try Fixtures.items(perTarget: 6)
        let c = AnalysisTests.configuration()
        var two = c
        two.headRanking = TwoStageRanking(screen: .lastPosition, candidates: 12)
        let exact = try AnalysisSuite.run(session: session, items: items, dataset: "fixture", configuration: c)
        let staged = try AnalysisSuite.run(session: session, items: items, dataset: "fixture", configuration: two)
        // Compared as JSON: NaN (no image-only items here) is not equal to itself.
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf",
                                                                      nan: "nan")
        let (a, b) = (try encoder.encode(staged.interventions), try encoder.encode(exact.interventions))
        #expect(a == b, "\(String(decoding: a, as: UTF8.self))\n\(String(decoding: b, as: UTF8.self))")
        #expect(Self.bits(staged.ranking.causal) == Self.bits(exact.ranking.causal))
        #expect(staged.ranking.causalOrder == exact.ranking.causalOrder)
        #expect(staged.configuration.headRanking == two.headRanking && exact.configuration.headRanking == nil)
        var bad = c
        bad.headRanking = TwoStageRanking(screen: .attribution, candidates: 0)
        #expect(throws: AnalysisError.self) {
            try AnalysisSuite.run(session: session, items: items, dataset: "fixture", configuration: bad)
        }
    }
}
