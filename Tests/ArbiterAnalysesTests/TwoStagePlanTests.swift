// The plan of a two-stage head ranking (`AnalysisConfiguration.headRanking`): its screen's and candidates' passes
// are the requests a real run gives `AnalysisRunner.scores`, with C = every head it costs what the exact ranking
// costs, and on a LLaVA-1.5-7B-shaped config it counts the saving.
@testable import ArbiterAnalyses
import ArbiterData
import ArbiterInterventions
import ArbiterModels
import Foundation
import Synchronization
import Testing

@Suite("Verify plan of a two-stage head ranking")
struct TwoStagePlanTests {
    static func isScreen(_ r: ScoreRequest) -> Bool {
        if case .blockHeadsAt = r.interventions.interventions.first { return true }
        return false
    }

    /// The run's calls to `scores` and its plan, on the tiny LLaVA with the raw layout.
    static func runAndPlan(_ method: TwoStageRanking, keyValueBudget: Int = 1 << 30) throws
        -> (results: AnalysisResults, calls: [[ScoreRequest]], plan: VerifyPlan, samples: [AnalysisSample]) {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        let items = try Fixtures.items(perTarget: 6)
        var c = AnalysisTests.configuration()
        c.alphaGrid = [2, 3]
        c.headRanking = method
        let calls = Mutex<[[ScoreRequest]]>([])
        let results = try AnalysisRunner.observingRequests(of: session, { r in calls.withLock { $0.append(r) } }) {
            try AnalysisSuite.run(session: session, items: items, dataset: "fixture", configuration: c,
                                  keyValueBudget: keyValueBudget)
        }
        var a = PlanAssumptions()
        a.calibrationFailed = results.interventions.calibrationFailedCount
        a.heldOutFailed = results.interventions.failedCount
        a.topSetFirstLayer = results.interventions.heads.map(\.layer).min() ?? 0
        a.canGenerate = false
        let samples = try SamplePreparation.prepare(items, session: session).samples
        let plan = try VerifyPlan.make(model: "tiny-llava", shape: VerifyPlanTests.shape(session), samples: samples,
                                       dataset: "fixture", configuration: c, assumptions: a,
                                       calibration: VerifyPlanTests.calibration, keyValueBudget: keyValueBudget)
        return (results, calls.withLock { $0 }, plan, samples)
    }

    static func stage(_ plan: VerifyPlan, _ prefix: String) throws -> PlanStage {
        try #require(plan.stages.first { $0.name.hasPrefix(prefix) }, "no stage \(prefix): \(plan.stages.map(\.name))")
    }

    @Test("the screen's and the candidates' passes are the run's requests (both screens)",
          arguments: HeadScreen.allCases)
    func passesEqualTheRunsRequests(screen: HeadScreen) throws {
        let (results, calls, plan, samples) = try Self.runAndPlan(TwoStageRanking(screen: screen, candidates: 5))
        let record = try #require(results.ranking.twoStage)
        let edges = FlowEdge.paperEdges.count
        let screenCalls = calls.dropFirst(edges).prefix { $0.allSatisfy(Self.isScreen) }
        #expect(screenCalls.count == (screen == .lastPosition ? results.layers : 0))
        let candidateLayers = Set(record.exactHeads.map(\.layer)).count
        let candidateCalls = Array(calls.dropFirst(edges + screenCalls.count).prefix(candidateLayers))
        #expect(candidateCalls.allSatisfy { !$0.contains(where: Self.isScreen) })
        let screened = screenCalls.reduce(0) { $0 + $1.count }, candidates = candidateCalls.reduce(0) { $0 + $1.count }
        #expect(candidates == 5 * results.ranking.calibrationCount)
        if screen == .lastPosition {
            #expect(try Self.stage(plan, "head ranking screen (last-position").passes == screened)
            #expect(screened == results.layers * results.headsPerLayer * results.ranking.calibrationCount)
            // The same requests: sample, start layer, first recomputed position (the last).
            let split = try AnalysisSuite.split(samples, configuration: results.configuration)
            let cal = split.calibration.map { samples[$0] }
            let conflict = cal.indices.filter { cal[$0].kind == "conflict" && cal[$0].target != nil }
            let planned = (0..<results.layers).flatMap {
                Heads.screenRequests(conflict, samples: cal, layer: $0, heads: results.headsPerLayer)
            }
            func key(_ r: ScoreRequest) -> [Int] { [r.sample, r.startLayer, r.unchangedBefore] }
            #expect(planned.map(key) == screenCalls.flatMap { $0 }.map(key))
            #expect(planned.allSatisfy { $0.unchangedBefore == cal[$0.sample].input.ids.count - 1 })
        } else {
            #expect(!plan.stages.contains { $0.name.contains("screen (") })
        }
        #expect(try Self.stage(plan, "head ranking (single-head ablation of 5 candidates").passes == candidates)
        #expect(!plan.stages.contains { $0.name == "head ranking (single-head ablation)" })
        #expect(plan.passes == samples.count + calls.reduce(0) { $0 + $1.count })
    }

    @Test("keys and values over the budget: the screen's items run again, a chunk at a time, as planned")
    func overBudget() throws {
        let (results, calls, plan, _) = try Self.runAndPlan(TwoStageRanking(screen: .lastPosition, candidates: 3),
                                                            keyValueBudget: 1)
        // Over the budget the knockouts of every edge are one call (their items' keys and values run again once).
        let n = results.ranking.calibrationCount, flowCalls = 1
        let knockedEdges = Set(calls[0].map { $0.interventions.description.split(separator: "@")[0] })
        #expect(knockedEdges.count == FlowEdge.paperEdges.count, "\(knockedEdges)")
        let screenCalls = calls.dropFirst(flowCalls).prefix { $0.allSatisfy(Self.isScreen) }
        // One chunk per item: a call per layer of one request per head.
        #expect(screenCalls.count == n * results.layers)
        #expect(screenCalls.allSatisfy { $0.count == results.headsPerLayer })
        #expect(try Self.stage(plan, "head ranking screen: keys and values").passes == n)
        let screened = screenCalls.reduce(0) { $0 + $1.count }
        #expect(try Self.stage(plan, "head ranking screen (last-position").passes == screened)
        #expect(!plan.keepsKeysValues && plan.memory.keysValues > 0, "the screen's chunk is held")
        #expect(plan.passes == plan.items + n + calls.reduce(0) { $0 + $1.count })
    }

    @Test("C = every head costs the exact ranking's passes and FLOPs; fewer cost less; the worst case more")
    func costs() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        let samples = try SamplePreparation.prepare(try Fixtures.items(perTarget: 6), session: session).samples
        func plan(_ method: TwoStageRanking?) throws -> VerifyPlan {
            var c = AnalysisTests.configuration()
            c.headRanking = method
            return try VerifyPlan.make(model: "tiny-llava", shape: VerifyPlanTests.shape(session), samples: samples,
                                       dataset: "fixture", configuration: c, calibration: VerifyPlanTests.calibration)
        }
        let exact = try Self.stage(try plan(nil), "head ranking (single-head ablation)")
        let all = try Self.stage(try plan(TwoStageRanking(screen: .attribution, candidates: 12)),
                                 "head ranking (single-head ablation of 12 candidates")
        #expect(all.passes == exact.passes && all.flops == exact.flops && all.flopsBefore == exact.flopsBefore)
        #expect(all.assumption.isEmpty)
        let few = try plan(TwoStageRanking(screen: .attribution, candidates: 3))
        let fewStage = try Self.stage(few, "head ranking (single-head ablation of 3 candidates")
        #expect(fewStage.passes * 4 == exact.passes && fewStage.flops < exact.flops)
        #expect(fewStage.assumption.contains("spread evenly"))
        #expect(few.worstCaseFLOPs >= few.flops)
        let screened = try plan(TwoStageRanking(screen: .lastPosition, candidates: 3))
        let screen = try Self.stage(screened, "head ranking screen (last-position")
        #expect(screen.passes == exact.passes && screen.flops < exact.flops / 3, "\(screen.flops) vs \(exact.flops)")
    }

    @Test("a LLaVA-1.5-7B-shaped config: the two-stage ranking's FLOPs against the exact ranking's")
    func sevenBillion() throws {
        let fixture = Fixtures.root.appendingPathComponent("Tests/ArbiterCLITests/Fixtures/plan/llava-1.5-7b")
        let shape = try PlanModelShape.shape(of: fixture)
        var g = GeneratorConfiguration()
        g.imageSize = 336
        let set = ConflictSet(source: "generated", items: ConflictGenerator(seed: 2602_03677, configuration: g)
            .generate(count: 240), imageRoot: nil)
        let samples = try VerifyPlan.syntheticSamples(try ProbeItems.make(set), promptTokens: 650, imageTokens: 576)
        func plan(_ method: TwoStageRanking?) throws -> VerifyPlan {
            var c = AnalysisConfiguration()
            c.headRanking = method
            return try VerifyPlan.make(model: "llava-1.5-7b", shape: shape, samples: samples, dataset: "generated",
                                       configuration: c, calibration: VerifyPlanTests.calibration)
        }
        func rankingFLOPs(_ p: VerifyPlan) -> Double {
            p.stages.filter { $0.name.hasPrefix("head ranking") }.reduce(0) { $0 + $1.flops }
        }
        let exact = try plan(nil), k = HeadRanking.setSize(fraction: 0.05, total: 1024)
        #expect(k == 52)
        for screen in HeadScreen.allCases {
            let two = try plan(TwoStageRanking(screen: screen, candidates: 2 * k))
            let saving = rankingFLOPs(exact) / rankingFLOPs(two)
            // 1,024 heads against 104 candidates spread over the layers (+ a screen of one row per pass).
            #expect(saving > 8 && saving < 1024.0 / 104 * 1.05, "\(screen): \(saving)×")
            #expect(two.flops < exact.flops)
            if screen == .lastPosition {
                #expect(!two.keepsKeysValues)
                let again = try Self.stage(two, "head ranking screen: keys and values")
                #expect(again.passes == exact.stages.first { $0.name.hasPrefix("head ranking") }!.passes / 1024)
                // The largest chunk of items run again at once (the screen's or the knockouts'): at least one
                // 650-token item (× 32 layers × k, v of 4096 floats), two never, within the 1 GiB budget
                // (shorter items without the image may join one).
                let perToken = 32 * 2 * 4096 * 4
                #expect(two.memory.keysValues >= 650 * perToken, "\(two.memory.keysValues)")
                #expect(two.memory.keysValues <= 1 << 30 && two.memory.keysValues < 2 * 650 * perToken)
            }
        }
    }
}
