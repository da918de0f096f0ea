// The plan of `arbiter verify` (VerifyPlan): its passes are the requests the stages really build, its batches
// are `AnalysisRunner.scores`' batches, its FLOPs are those counted by hand, and its calibration fit recovers
// known costs. (Its time predictions are compared with measured runs in `make bench-plan`, not here: a timed
// test would fail on a busy machine.)
@testable import ArbiterAnalyses
import ArbiterInterventions
import ArbiterModels
import ArbiterTensor
import Foundation
import Synchronization
import Testing

@Suite("Verify plan")
struct VerifyPlanTests {
    /// A calibration with round numbers (the counting tests do not time anything).
    static let calibration = PlanCalibration(workers: 2, secondsPerRow: 1e-6, secondsPerPair: 1e-9, secondsPerRun: 1e-5)

    static func shape(_ session: ModelSession) -> PlanModelShape {
        PlanModelShape(modelType: session.model.modelType, decoder: session.model.decoder.configuration, vision: nil)
    }

    @Test("every stage's passes are the requests the run gives AnalysisRunner.scores, on the tiny LLaVA")
    func passesEqualTheRunsRequests() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        let items = try Fixtures.items(perTarget: 6)
        var c = AnalysisTests.configuration()
        c.alphaGrid = [2, 3]
        let calls = Mutex<[[ScoreRequest]]>([])
        let results = try AnalysisRunner.observingRequests(of: session, { r in calls.withLock { $0.append(r) } }) {
            try AnalysisSuite.run(session: session, items: items, dataset: "fixture", configuration: c)
        }
        let observed = calls.withLock { $0 }
        let layers = session.model.decoder.layerCount
        var a = PlanAssumptions()
        a.calibrationFailed = results.interventions.calibrationFailedCount
        a.heldOutFailed = results.interventions.failedCount
        a.topSetFirstLayer = results.interventions.heads.map(\.layer).min() ?? 0
        a.canGenerate = false
        let samples = try SamplePreparation.prepare(items, session: session).samples
        let plan = try VerifyPlan.make(model: "tiny-llava", shape: Self.shape(session), samples: samples,
                                       dataset: "fixture", configuration: c, assumptions: a,
                                       calibration: Self.calibration)
        func stage(_ prefix: String) throws -> PlanStage {
            try #require(plan.stages.first { $0.name.hasPrefix(prefix) }, "no stage \(prefix)")
        }
        // The calls in the run's order: one per edge, one per layer, then top set, random sets, ability, α (with
        // calibration failures), amplification (with held-out failures).
        let edges = FlowEdge.paperEdges.count
        let alphaCalls = a.calibrationFailed! > 0 ? 1 : 0, amplificationCalls = a.heldOutFailed! > 0 ? 1 : 0
        try #require(observed.count == edges + layers + 3 + alphaCalls + amplificationCalls,
                     "calls: \(observed.map(\.count))")
        func count(_ range: Range<Int>) -> Int { observed[range].reduce(0) { $0 + $1.count } }
        var next = edges + layers
        #expect(try stage("information flow").passes == count(0..<edges))
        #expect(try stage("head ranking").passes == count(edges..<next))
        #expect(try stage("head blocking").passes == count(next..<(next + 2)))
        #expect(try stage("specificity").passes == observed[next + 2].count)
        next += 3
        #expect(try stage("α selection").passes == count(next..<(next + alphaCalls)))
        next += alphaCalls
        #expect(try stage("amplification").passes == count(next..<(next + amplificationCalls)))
        #expect(try stage("item top-up").passes == 0)
        #expect(try stage("baselines").passes == samples.count)
        #expect(plan.passes == samples.count + observed.reduce(0) { $0 + $1.count })
        // The knockouts' start layers and first recomputed positions are the run's, request for request.
        let flowSamples = try AnalysisSuite.split(samples, configuration: c)
        let order = (flowSamples.heldOut + flowSamples.calibration).map { samples[$0] }
        let counter = PlanCounter(shape: Self.shape(session), samples: samples, calibration: Self.calibration)
        let planned = try FlowEdge.paperEdges.flatMap { edge in
            try InformationFlow.requests(order, usable: InformationFlow.usable(order, order.indices.filter {
                order[$0].kind == "conflict" }, edge: edge), edge: edge,
                width: InformationFlow.defaultWindow(layers: layers), layers: layers)
        }
        let ran = observed[0..<edges].flatMap { $0 }
        func key(_ r: ScoreRequest) -> [Int] { [r.sample, r.startLayer, r.unchangedBefore] }
        #expect(planned.map(key) == ran.map(key))
        // "before" of the knockouts: each pass over its whole prompt from layer 0.
        let before = ran.reduce(0.0) { $0 + counter.fullPassFLOPs(tokens: order[$1.sample].input.ids.count) }
        #expect(try stage("information flow").flopsBefore == before)
        #expect(try stage("information flow").flops < before, "suffix runs and resumes must save FLOPs")
    }

    @Test("the plan's batches and shared prefixes are AnalysisRunner.batchPlan's")
    func batchesEqualTheRunners() throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        let samples = try SamplePreparation.prepare(try Fixtures.items(perTarget: 6), session: session).samples
        let runner = AnalysisRunner(session: session)
        // On one BLAS thread (parallelMap), as a run computes them: the thread count is process-global, and a
        // test beside this one holding `BLAS.withSingleThread` would otherwise switch it between samples, so
        // that the same image's rows differ in their last bits from one sample to the next.
        let baselines = try runner.parallelMap(samples.count) {
            try runner.baseline(samples[$0], keepPatterns: false, keepKeysValues: true)
        }
        let layers = runner.layers, heads = runner.heads
        let conflict = samples.indices.filter { samples[$0].kind == "conflict" }
        let top = [HeadIndex(layer: 1, head: 0), HeadIndex(layer: 1, head: 1)]
        let knockouts = try InformationFlow.requests(samples, usable: conflict, edge: FlowEdge("context", "last"),
                                                     width: 1, layers: layers)
        let lists = [
            (0..<layers).flatMap { Heads.rankingRequests(conflict, layer: $0, heads: heads) },
            Heads.setRequests([(top, .blockHeads(top, means: nil)), (top, .amplifyHeads(top, factor: 2))],
                              Array(samples.indices)),
            knockouts,
        ]
        let order = SampleRowOrder(samples: samples)
        for requests in lists {
            let plans = runner.plans(requests, samples: samples, baselines: baselines)
            let real = runner.batchPlan(requests, plans: plans, samples: samples, baselines: baselines)
            // The plan's view: rows compared as token ids and images, no residual stream.
            let planned = AnalysisRunner.batchPlan(requests, plans: plans,
                                                   tokens: { samples[requests[$0].sample].input.ids.count },
                                                   order: { order.rank(requests[$0].sample) },
                                                   commonRows: { a, b, _, limit in
                order.commonRows(requests[a].sample, requests[b].sample, limit: limit)
            })
            #expect(planned == real)
        }
        // Sharing happens on this data (the image and the prompt's start are common), so the check has teeth.
        let ranking = runner.batchPlan(lists[0], plans: runner.plans(lists[0], samples: samples, baselines: baselines),
                                       samples: samples, baselines: baselines)
        #expect(ranking.contains { $0.contains { $0.owner == nil } })
    }

    @Test("FLOPs of a batch and of a full pass, counted by hand on a 2-layer decoder")
    func flopsByHand() throws {
        let c = DecoderConfiguration(vocabularySize: 10, hiddenSize: 8, intermediateSize: 16, layers: 2,
                                     attentionHeads: 2, keyValueHeads: 1, headDim: 4)
        let shape = PlanModelShape(modelType: "llama", decoder: c, vision: nil)
        // q 8·8, k and v 8·4 each, o 8·8, MLP 3·8·16: 2 FLOPs per multiply-add.
        let linear: Double = 2 * (64 + 32 + 32 + 64) + 2 * 3 * 128   // 1152
        #expect(shape.linearFLOPsPerRow == linear)
        #expect(shape.attentionFLOPsPerPair == 4 * 8)                               // scores + mix, 2 heads × 4
        #expect(shape.logitFLOPsPerRow == 160)
        let counter = PlanCounter(shape: shape, samples: [], calibration: Self.calibration)
        // Whole prompt of 5 tokens from layer 0: 2 layers × (5 rows + 25 pairs) + one row of logits.
        let full: Double = 2 * (5 * 1152 + 25 * 32) + 160
        #expect(counter.fullPassFLOPs(tokens: 5) == full)
        // A batch of a suffix run (3 rows after 2 cached) and a 4-row run, from layer 0: layer 0 on all 7 rows
        // (3·5 + 4·4 = 31 pairs); the final layer's k, v on 7 rows (128 FLOPs each), its rest on the 2 last rows
        // (5 + 4 pairs); 2 rows of logits.
        let cost = counter.batchCost([.init(rows: 3, cached: 2), .init(rows: 4, cached: 0)], start: 0)
        let layer0: Double = 7 * 1152 + 31 * 32, final: Double = 7 * 128 + 2 * 1152 + 9 * 32
        #expect(cost.flops == layer0 + final + 2 * 160)
        #expect(cost.layerRows == 7 + 2)
        // One run alone takes the plain path: both layers on every row.
        let alone = counter.batchCost([.init(rows: 3, cached: 2)], start: 1)
        let one: Double = 3 * 1152 + 15 * 32 + 160
        #expect(alone.flops == one)
    }

    @Test("the 7B hub configs' shapes: sizes, image tokens, and parameters within 1% of the published counts")
    func sevenBillionShapes() throws {
        let fixtures = Fixtures.root.appendingPathComponent("Tests/ArbiterCLITests/Fixtures/plan")
        let llava = try PlanModelShape.shape(of: fixtures.appendingPathComponent("llava-1.5-7b"))
        let llavaSizes: [Int] = [llava.layers, llava.heads, llava.keyValueHeads, llava.hidden, llava.intermediate,
                                 llava.vocabulary]
        #expect(llavaSizes == [32, 32, 32, 4096, 11008, 32064])
        #expect(llava.vision?.imageTokens == 576)
        #expect(llava.vision?.layers == 23, "vision_feature_layer -2: the last of 24 layers is not run")
        // 7,062,902,784 parameters on the hub, less the unused 24th vision layer (12.6 M); float16.
        #expect(abs(llava.parameterCount / (7_062_902_784 - 12_596_224) - 1) < 0.01, "\(llava.parameterCount)")
        #expect(llava.weightBytes == Int(llava.parameterCount) * 2)
        let qwen = try PlanModelShape.shape(of: fixtures.appendingPathComponent("qwen2.5-vl-7b"))
        let qwenSizes: [Int] = [qwen.layers, qwen.heads, qwen.keyValueHeads, qwen.hidden, qwen.intermediate,
                                qwen.vocabulary]
        #expect(qwenSizes == [28, 28, 4, 3584, 18944, 152064])
        #expect(qwen.vision?.layers == 32 && qwen.vision?.width == 1280 && qwen.vision?.mlpMatrices == 3)
        #expect(abs(qwen.parameterCount / 8_292_166_656 - 1) < 0.01, "\(qwen.parameterCount)")
    }

    @Test("the calibration fit recovers known costs and never goes negative")
    func fitRecoversCosts() {
        let rows: [[Double]] = [[512, 512 * 64, 8], [512, 512 * 16, 32], [64, 64 * 65, 64]]
        let truth = [2e-6, 3e-9, 4e-5]
        let times = rows.map { zip($0, truth).reduce(0) { $0 + $1.0 * $1.1 } }
        let fit = PlanCalibration.nonNegativeFit(rows, times)
        for (f, t) in zip(fit, truth) { #expect(abs(f - t) <= 1e-6 * t) }
        // Times a negative per-run cost would fit best get a zero one instead.
        let skewed = PlanCalibration.nonNegativeFit(rows, [1e-3, 1e-3, 0])
        #expect(skewed.allSatisfy { $0 >= 0 })
    }

    @Test("synthetic prompts have the asked length, the image after the lead, and every span")
    func syntheticPrompts() throws {
        let items = try Fixtures.items(perTarget: 2)
        let samples = try VerifyPlan.syntheticSamples(items, promptTokens: 650, imageTokens: 576)
        for s in samples {
            #expect(s.input.ids.count == 650)
            #expect(try s.input.spans.positions("image") == Array(5..<581))
            for name in ["context", "instruction", "question", "constraint", "last"] {
                #expect(try !s.input.spans.positions(name).isEmpty, "\(name)")
            }
        }
        #expect(throws: AnalysisError.self) {
            try VerifyPlan.syntheticSamples(items, promptTokens: 580, imageTokens: 576)
        }
    }
}
