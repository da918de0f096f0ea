// Head interventions after the image only (`AnalysisConfiguration.headPositions = .afterImage`) and keys and
// values run again in chunks (`AnalysisRunner.keyValueBudget`): a suffix run from the first position after the
// image computes what the full run computes, amplifying at every position is `amplifyHeads`, the chunked path
// scores what the kept keys and values score, and the plan counts the suffix runs and the passes run again.
@testable import ArbiterAnalyses
import ArbiterInterventions
import ArbiterModels
import ArbiterTensor
import Foundation
import Synchronization
import Testing

@Suite("Head positions and keys and values run again")
struct HeadPositionsTests {
    static func samples() throws -> (ModelSession, [AnalysisSample]) {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        let items = try Fixtures.items(perTarget: 4)
        return (session, try SamplePreparation.prepare(items, session: session).samples)
    }

    @Test("'after-image' spans the positions after the image's last, or every position without an image")
    func afterImageSpan() throws {
        let spans = try TokenSpans(tokenCount: 10, spans: ["image": [2..<6], "context": [6..<8]])
        #expect(try spans.positions("after-image") == [6, 7, 8, 9])
        let textOnly = try TokenSpans(tokenCount: 4, spans: ["context": [0..<2]])
        #expect(try textOnly.positions("after-image") == [0, 1, 2, 3])
    }

    @Test("amplifying after the image: the suffix run equals the full run; at every position it is amplifyHeads")
    func amplifyAtSuffix() throws {
        let (session, samples) = try Self.samples()
        let runner = AnalysisRunner(session: session)
        let sample = try #require(samples.first { (try? $0.input.spans.positions("image").isEmpty) == false })
        let baseline = try runner.baseline(sample, keepKeysValues: true)
        let heads = [HeadIndex(layer: 1, head: 0), HeadIndex(layer: 2, head: 1)]
        let after = InterventionSet([.amplifyHeadsAt(heads, factor: 3, queries: .span("after-image"))])
        let p = try #require(try after.firstChangedPosition(tokenCount: sample.input.ids.count,
                                                            spans: sample.input.spans))
        #expect(p == (try sample.input.spans.positions("image").last!) + 1)
        let suffix = try runner.score(sample, baseline: baseline, interventions: after, startLayer: 1,
                                      unchangedBefore: p)
        let full = try runner.score(sample, baseline: baseline, interventions: after, startLayer: 1)
        #expect(abs(suffix.s - full.s) <= 1e-5 * max(1, abs(full.s)), "suffix \(suffix.s), full \(full.s)")
        #expect(suffix.top == full.top)
        // At every position: the same edits as amplifyHeads, bit for bit — so both on one BLAS thread (OpenBLAS's
        // last bits follow its process-wide thread count, which tests running beside this one change).
        let t = sample.input.ids.count
        let (every, plain) = try BLAS.withSingleThread {
            (try runner.score(sample, baseline: baseline, interventions: InterventionSet([
                .amplifyHeadsAt(heads, factor: 3, queries: .positions(Array(0..<t)))]), startLayer: 1),
             try runner.score(sample, baseline: baseline,
                              interventions: InterventionSet([.amplifyHeads(heads, factor: 3)]), startLayer: 1))
        }
        #expect(every.s == plain.s)
        // And it changes the answer's score (the edit is not a no-op).
        #expect(full.s != baseline.score.s)
        #expect(throws: Error.self) {
            _ = try InterventionSet([.amplifyHeadsAt(heads, factor: .nan, queries: .span("after-image"))])
                .hooks(for: session.model.decoder, hookNames: Set(session.model.hookNames),
                       tokenCount: t, spans: sample.input.spans)
        }
    }

    @Test("scores over baselines without keys and values, in chunks of a tiny budget, equal the kept ones")
    func chunkedKeysValues() throws {
        let (session, samples) = try Self.samples()
        let kept = AnalysisRunner(session: session), chunked = AnalysisRunner(session: session)
        chunked.keyValueBudget = 1  // one item per chunk
        let withKV = try samples.map { try kept.baseline($0, keepKeysValues: true) }
        let without = try samples.map { try kept.baseline($0) }
        let conflict = samples.indices.filter { samples[$0].kind == "conflict" }
        var requests = try InformationFlow.requests(samples, usable: conflict, edge: FlowEdge("image", "instruction"),
                                                    width: 1, layers: kept.layers)
        requests += Heads.rankingRequests(conflict, layer: 1, heads: 2, positions: .afterImage)
        requests += Heads.setRequests([([HeadIndex(layer: 0, head: 1)],
                                        Heads.amplifying([HeadIndex(layer: 0, head: 1)], factor: 2, at: .afterImage))],
                                      conflict)
        #expect(AnalysisRunner.wantKeysValues(requests, samples: samples, baselines: without))
        let calls = Mutex(0), lines = Mutex<[String]>([])
        chunked.progress = { line in lines.withLock { $0.append(line) } }
        let a = try kept.scores(requests, samples: samples, baselines: withKV)
        let b = try AnalysisRunner.observingRequests(of: session, { _ in calls.withLock { $0 += 1 } }) {
            try chunked.scores(requests, samples: samples, baselines: without)
        }
        #expect(calls.withLock { $0 } == 1, "the chunks are one call of scores, not one per chunk")
        // One item per chunk at a budget of one byte, each reported.
        let touched = Set(requests.map(\.sample)).count
        #expect(lines.withLock { $0 }.count == touched)
        #expect(lines.withLock { $0 }.last == "keys and values run again: chunk \(touched)/\(touched) (items "
                + "\(touched)–\(touched) of \(touched)) and its passes")
        for (x, y) in zip(a, b) {
            #expect(abs(x.s - y.s) <= 1e-5 * max(1, abs(x.s)) && x.top == y.top, "\(x) vs \(y)")
        }
        // Without a budget the same requests recompute every position: also the same scores.
        let full = try kept.scores(requests, samples: samples, baselines: without)
        for (x, y) in zip(a, full) { #expect(abs(x.s - y.s) <= 1e-5 * max(1, abs(x.s)), "\(x) vs \(y)") }
    }

    @Test("a run over budget (keys and values run again) gives the verdict inputs of a run that keeps them")
    func suiteOverBudget() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        let items = try Fixtures.items(perTarget: 6)
        var c = AnalysisTests.configuration()
        c.headPositions = .afterImage
        let a = try AnalysisSuite.run(session: session, items: items, dataset: "fixture", configuration: c)
        let b = try AnalysisSuite.run(session: session, items: items, dataset: "fixture", configuration: c,
                                      keyValueBudget: 1)
        #expect(a.interventions.heads == b.interventions.heads)
        #expect(a.interventions.blockedMFR == b.interventions.blockedMFR)
        #expect(a.interventions.randomRelativeDrops == b.interventions.randomRelativeDrops)
        #expect(a.interventions.amplifiedFixRate == b.interventions.amplifiedFixRate
                    || (a.interventions.amplifiedFixRate.isNaN && b.interventions.amplifiedFixRate.isNaN))
        for (edge, byTarget) in a.flow.shift {
            for (target, estimates) in byTarget {
                for (x, y) in zip(estimates, b.flow.shift[edge]![target]!) {
                    #expect(abs(x.value - y.value) <= 1e-4 * max(1, abs(x.value)), "\(edge) \(target): \(x) vs \(y)")
                }
            }
        }
        // And the protocol's positions matter: blocking after the image is not blocking everywhere.
        let every = try AnalysisSuite.run(session: session, items: items, dataset: "fixture",
                                          configuration: AnalysisTests.configuration())
        #expect(every.ranking.causal != a.ranking.causal)
    }

    @Test("the plan of a run over budget counts suffix runs plus the items' keys and values run again")
    func planCountsRunningAgain() throws {
        let (session, samples) = try Self.samples()
        var c = AnalysisTests.configuration()
        c.headPositions = .afterImage
        let shape = VerifyPlanTests.shape(session)
        func plan(_ budget: Int) throws -> VerifyPlan {
            try VerifyPlan.make(model: "tiny-llava", shape: shape, samples: samples, dataset: "fixture",
                                configuration: c, calibration: VerifyPlanTests.calibration, keyValueBudget: budget)
        }
        let kept = try plan(1 << 30), again = try plan(1)
        #expect(kept.keepsKeysValues && !again.keepsKeysValues)
        for name in ["information flow", "head ranking", "head blocking", "α selection"] {
            let k = try #require(kept.stages.first { $0.name.hasPrefix(name) })
            let r = try #require(again.stages.first { $0.name.hasPrefix(name) })
            guard k.passes > 0 else { continue }
            #expect(r.passes == k.passes)
            #expect(r.flops > k.flops && r.assumption.contains("run again"), "\(name): \(r)")
            // (Whether the suffixes save more than the passes run again cost depends on the prompts: on this
            // tiny model's short ones they may not; on a 7B's they do, ≥ 10×: PlanCLITests.afterImageCut.)
        }
    }
}
