// Residual streams run again (`AnalysisRunner.streamBudget`): a baseline that keeps no residual streams (a 7B
// item's are ~0.34 GB, 240 items' ~80 GB) keeps the same other rows; `scores` over such baselines computes a
// chunk of items' streams (and keys and values, when wanted) again and scores what the kept ones score; a whole
// run over the budget gives the results of one within it; the plan counts the passes run again and holds one
// chunk's streams.
@testable import ArbiterAnalyses
import ArbiterInterventions
import ArbiterModels
import ArbiterTensor
import Foundation
import Synchronization
import Testing

@Suite("Residual streams run again")
struct StreamBudgetTests {
    /// Knockouts (suffix runs when keys and values are at hand), single-head ablations at every position and an
    /// amplified head set after the image: the three kinds of pass a run resumes from the streams.
    static func requests(_ samples: [AnalysisSample], layers: Int) throws -> [ScoreRequest] {
        let conflict = samples.indices.filter { samples[$0].kind == "conflict" }
        var requests = try InformationFlow.requests(samples, usable: conflict, edge: FlowEdge("image", "instruction"),
                                                    width: 1, layers: layers)
        requests += Heads.rankingRequests(conflict, layer: 1, heads: 2)
        requests += Heads.setRequests([([HeadIndex(layer: 0, head: 1)],
                                        Heads.amplifying([HeadIndex(layer: 0, head: 1)], factor: 2, at: .afterImage))],
                                      conflict)
        return requests
    }

    @Test("a baseline without streams keeps the same rows otherwise; one score from it equals the kept one's")
    func leanBaseline() throws {
        // On one BLAS thread throughout, as a run computes: OpenBLAS's last bits depend on its thread count, which
        // suites running beside this one change.
        try BLAS.withSingleThread { try leanBaselineOnOneThread() }
    }

    func leanBaselineOnOneThread() throws {
        let (session, samples) = try HeadPositionsTests.samples()
        let runner = AnalysisRunner(session: session)
        let sample = samples[0]
        let full = try runner.baseline(sample), lean = try runner.baseline(sample, keepStreams: false)
        #expect(full.keepsStreams && full.residPre.count == runner.layers)
        #expect(!lean.keepsStreams && lean.residPre.map(\.scalars) == [full.residPre[0].scalars],
                "without streams a baseline keeps layer 0's, the embeddings")
        #expect(lean.score == full.score && lean.logitsLast == full.logitsLast)
        #expect(lean.readout.map(\.scalars) == full.readout.map(\.scalars))
        #expect(lean.cueMass == full.cueMass && full.cueMass?.count == runner.layers)
        #expect(lean.headResultsLast.map(\.scalars) == full.headResultsLast.map(\.scalars))
        // The pass run again gives the streams the baseline kept, bit for bit.
        let again = try runner.rerun(sample, streams: true, keysValues: false)
        #expect(again.streams?.map(\.scalars) == full.residPre.map(\.scalars))
        let block = InterventionSet([Heads.blocking([HeadIndex(layer: 1, head: 0)])])
        let a = try runner.score(sample, baseline: full, interventions: block, startLayer: 1)
        let b = try runner.score(sample, baseline: lean, interventions: block, startLayer: 1)
        #expect(a == b)
    }

    @Test("the cue masses a baseline keeps are the readout queries' pattern rows summed over image and context keys")
    func cueMasses() throws {
        try BLAS.withSingleThread { try cueMassesOnOneThread() }  // as leanBaseline
    }

    func cueMassesOnOneThread() throws {
        let (session, samples) = try HeadPositionsTests.samples()
        let runner = AnalysisRunner(session: session)
        let sample = try #require(samples.first { $0.kind == "conflict" })
        let baseline = try runner.baseline(sample)
        let hooks = HookRun(cache: .patterns([HookName.everyBlock(.pattern)]))
        _ = try session.run(sample.input, logits: .last, hooks: hooks)
        let image = try sample.input.spans.positions("image"), context = try sample.input.spans.positions("context")
        #expect(!image.isEmpty && !context.isEmpty)
        let queries = baseline.readoutPositions, masses = try #require(baseline.cueMass)
        for layer in 0..<runner.layers {
            let pattern = try #require(hooks.cache[HookName.block(layer, .pattern)])
            let h = pattern.shape[0], t = pattern.shape[2]
            #expect(masses[layer].count == h * queries.count * 2)
            for head in 0..<h {
                for (j, q) in queries.enumerated() {
                    let row = (head * pattern.shape[1] + q) * t
                    var m = (0.0, 0.0)
                    for k in image where k <= q { m.0 += Double(pattern.scalars[row + k]) }
                    for k in context where k <= q { m.1 += Double(pattern.scalars[row + k]) }
                    let at = (head * queries.count + j) * 2
                    #expect(masses[layer][at] == m.0 && masses[layer][at + 1] == m.1, "layer \(layer) head \(head) q \(q)")
                }
            }
        }
    }

    @Test("scores over baselines without streams, in chunks, equal the kept ones; one chunk of all, bit for bit")
    func chunkedStreams() throws {
        let (session, samples) = try HeadPositionsTests.samples()
        let kept = AnalysisRunner(session: session)
        // On one BLAS thread each, as a run computes them (OpenBLAS's last bits depend on its thread count).
        let full = try kept.parallelMap(samples.count) { try kept.baseline(samples[$0]) }
        let lean = try kept.parallelMap(samples.count) { try kept.baseline(samples[$0], keepStreams: false) }
        let requests = try Self.requests(samples, layers: kept.layers)
        #expect(AnalysisRunner.resumesFromStreams(requests, tokens: { samples[$0].input.ids.count },
                                                  layers: kept.layers), "these passes resume from streams run again")
        let a = try kept.scores(requests, samples: samples, baselines: full)

        // A budget of one byte: one item per chunk, each reported; all of it one call of `scores`.
        let chunked = AnalysisRunner(session: session)
        chunked.streamBudget = 1
        let calls = Mutex(0), lines = Mutex<[String]>([])
        chunked.progress = { line in lines.withLock { $0.append(line) } }
        let b = try AnalysisRunner.observingRequests(of: session, { _ in calls.withLock { $0 += 1 } }) {
            try chunked.scores(requests, samples: samples, baselines: lean)
        }
        #expect(calls.withLock { $0 } == 1)
        let touched = Set(requests.map(\.sample)).count
        #expect(lines.withLock { $0 }.count == touched)
        #expect(lines.withLock { $0 }.last == "residual streams run again: chunk \(touched)/\(touched) (items "
                + "\(touched)–\(touched) of \(touched)) and its passes")
        for (x, y) in zip(a, b) {
            #expect(abs(x.s - y.s) <= 1e-5 * max(1, abs(x.s)) && x.top == y.top, "\(x) vs \(y)")
        }
        // A budget that holds every item: one chunk, the same batches as the kept streams, the same bits.
        let whole = AnalysisRunner(session: session)
        whole.streamBudget = 1 << 40
        #expect(try whole.scores(requests, samples: samples, baselines: lean) == a)

        // Keys and values over their budget too: both run again in one pass per item, the suffix runs kept.
        let both = AnalysisRunner(session: session)
        both.streamBudget = 1
        both.keyValueBudget = 1
        let bothLines = Mutex<[String]>([])
        both.progress = { line in bothLines.withLock { $0.append(line) } }
        let withKV = try samples.map { try kept.baseline($0, keepKeysValues: true) }
        let c = try both.scores(requests, samples: samples, baselines: lean)
        let reference = try kept.scores(requests, samples: samples, baselines: withKV)
        #expect(bothLines.withLock { $0 }.first?.hasPrefix("residual streams and keys and values run again: chunk 1/")
                == true, "\(bothLines.withLock { $0 })")
        for (x, y) in zip(reference, c) {
            #expect(abs(x.s - y.s) <= 1e-5 * max(1, abs(x.s)) && x.top == y.top, "\(x) vs \(y)")
        }
    }

    @Test("a call that saves less by resuming than running the streams again costs runs from layer 0: same scores")
    func fromLayerZero() throws {
        let (session, samples) = try HeadPositionsTests.samples()
        let kept = AnalysisRunner(session: session), lean = AnalysisRunner(session: session)
        lean.streamBudget = 1
        let lines = Mutex<[String]>([])
        lean.progress = { line in lines.withLock { $0.append(line) } }
        let full = try samples.map { try kept.baseline($0) }
        let without = try samples.map { try kept.baseline($0, keepStreams: false) }
        // One blocked head set from layer 1, one pass per item (as specificity): resuming saves one layer of
        // each pass, running the streams again costs every layer.
        let head = HeadIndex(layer: 1, head: 0)
        let requests = Heads.setRequests([([head], Heads.blocking([head]))], Array(samples.indices))
        #expect(!AnalysisRunner.resumesFromStreams(requests, tokens: { samples[$0].input.ids.count },
                                                   layers: kept.layers))
        let a = try kept.scores(requests, samples: samples, baselines: full)
        let b = try lean.scores(requests, samples: samples, baselines: without)
        #expect(lines.withLock { $0 } == ["\(requests.count) passes from layer 0 (their \(samples.count) items' "
                                          + "residual streams not kept; running them again would cost more)"])
        for (x, y) in zip(a, b) {
            #expect(abs(x.s - y.s) <= 1e-5 * max(1, abs(x.s)) && x.top == y.top, "\(x) vs \(y)")
        }
    }

    @Test("a run over the stream budget gives the verdict inputs of a run within it")
    func suiteOverBudget() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        let items = try Fixtures.items(perTarget: 6)
        let c = AnalysisTests.configuration()
        let lines = Mutex<[String]>([])
        let a = try AnalysisSuite.run(session: session, items: items, dataset: "fixture", configuration: c)
        let b = try AnalysisSuite.run(session: session, items: items, dataset: "fixture", configuration: c,
                                      streamBudget: 1, progress: { line in lines.withLock { $0.append(line) } })
        #expect(lines.withLock { $0 }.contains { $0.hasPrefix("residual streams over --stream-memory") })
        #expect(a.interventions.heads == b.interventions.heads)
        #expect(a.following.ratio["overall"]?.value == b.following.ratio["overall"]?.value)
        func close(_ x: Double, _ y: Double) -> Bool { x == y || (x.isNaN && y.isNaN) || abs(x - y) <= 1e-4 * max(1, abs(x)) }
        #expect(close(a.interventions.blockedMFR, b.interventions.blockedMFR))
        #expect(zip(a.interventions.randomRelativeDrops, b.interventions.randomRelativeDrops).allSatisfy(close))
        #expect(close(a.interventions.amplifiedFixRate, b.interventions.amplifiedFixRate))
        for (l, layer) in a.ranking.causal.enumerated() {
            for (h, value) in layer.enumerated() {
                #expect(close(value, b.ranking.causal[l][h]), "head \(l).\(h): \(value) vs \(b.ranking.causal[l][h])")
            }
        }
        for (edge, byTarget) in a.flow.shift {
            for (target, estimates) in byTarget {
                for (x, y) in zip(estimates, b.flow.shift[edge]![target]!) {
                    #expect(close(x.value, y.value), "\(edge) \(target): \(x) vs \(y)")
                }
            }
        }
    }

    @Test("the plan over the stream budget: calls run their items again or from layer 0; one chunk in memory")
    func planCountsStreams() throws {
        let (session, samples) = try HeadPositionsTests.samples()
        let shape = VerifyPlanTests.shape(session)
        func plan(_ budget: Int) throws -> VerifyPlan {
            try VerifyPlan.make(model: "tiny-llava", shape: shape, samples: samples, dataset: "fixture",
                                configuration: AnalysisTests.configuration(), calibration: VerifyPlanTests.calibration,
                                streamBudget: budget)
        }
        let kept = try plan(1 << 40), again = try plan(1)
        #expect(kept.keepsStreams && !again.keepsStreams)
        let streams = samples.reduce(0) { $0 + $1.input.ids.count } * shape.layers * shape.hidden * 4
        #expect(kept.memory.streams == streams)
        let largest = samples.map { $0.input.ids.count * shape.layers * shape.hidden * 4 }.max() ?? 0
        #expect(again.memory.streams == streams / shape.layers + largest,
                "every item's layer 0, and one item per chunk at a budget of one byte")
        #expect(again.memory.baselines == kept.memory.baselines)
        // Each stage of passes (the baselines and the item top-up are baseline passes themselves): resumed from
        // streams run again (more FLOPs, said), run from layer 0 (no fewer, said), or from layer 0 anyway.
        var resumed = 0
        for (k, r) in zip(kept.stages, again.stages)
            where k.passes > 0 && !k.name.hasPrefix("baselines") && !k.name.hasPrefix("item top-up") {
            #expect(r.passes == k.passes)
            if r.assumption.contains("residual streams over the budget: each call's items run again") {
                resumed += 1
                #expect(r.flops > k.flops, "\(r.name): \(r)")
            } else if r.assumption.contains("every pass runs from layer 0") {
                #expect(r.flops >= k.flops, "\(r.name): \(r)")
            } else {
                #expect(r.flops == k.flops, "\(r.name): \(r)")
            }
        }
        #expect(resumed >= 2, "the knockouts and the ranking resume")
        // The ranking is one call: its calibration conflict items run again once.
        let calibration = try AnalysisSuite.split(samples, configuration: AnalysisTests.configuration()).calibration
        let conflict = calibration.filter { samples[$0].kind == "conflict" && samples[$0].target != nil }.count
        let r = try #require(again.stages.first { $0.name.hasPrefix("head ranking") })
        #expect(r.assumption.contains("(\(conflict) passes)"), "\(r.assumption)")
    }
}
