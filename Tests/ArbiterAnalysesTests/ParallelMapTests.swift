// AnalysisRunner.parallelMap: results in index order equal to a serial map, the lowest-index error rethrown,
// and the same analysis numbers as one-at-a-time evaluation.
@testable import ArbiterAnalyses
import ArbiterInterventions
import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

/// The tiny LLaVA's runner with `perTarget` items per instruction target and their baselines.
func tinyRunner(perTarget: Int, keepKeysValues: Bool = false) throws -> (runner: AnalysisRunner, samples: [AnalysisSample], baselines: [BaselineRun]) {
    let session = try ModelSession(directory: Fixtures.tinyLlava)
    let runner = AnalysisRunner(session: session)
    let samples = try Fixtures.items(perTarget: perTarget).map { try AnalysisSample($0, session: session) }
    let baselines = try samples.map { try runner.baseline($0, keepPatterns: false, keepKeysValues: keepKeysValues) }
    return (runner, samples, baselines)
}

@Suite("Parallel evaluation of samples")
struct ParallelMapTests {
    struct Failure: Error, Equatable { let index: Int }

    @Test("results come back in index order, equal to a serial map")
    func order() throws {
        let runner = AnalysisRunner(session: try ModelSession(directory: Fixtures.tinyLlava))
        let values = try runner.parallelMap(1000) { i in i * i + 1 }
        #expect(values == (0..<1000).map { $0 * $0 + 1 })
        #expect(try runner.parallelMap(0) { $0 }.isEmpty)
    }

    @Test("the error of the lowest failing index is rethrown, whatever the scheduling")
    func lowestError() throws {
        let runner = AnalysisRunner(session: try ModelSession(directory: Fixtures.tinyLlava))
        for _ in 0..<20 {
            #expect(throws: Failure(index: 37)) {
                _ = try runner.parallelMap(500) { i -> Int in
                    if i == 37 || i == 38 || i == 400 { throw Failure(index: i) }
                    return i
                }
            }
        }
    }

    @Test("scores under interventions equal one-at-a-time scores bit for bit")
    func scoresMatchSerial() throws {
        let (runner, samples, baselines) = try tinyRunner(perTarget: 3)
        let block = InterventionSet([.blockHeads([HeadIndex(layer: 1, head: 0)], means: nil)])
        let parallel = try runner.parallelMap(samples.count) {
            try runner.score(samples[$0], baseline: baselines[$0], interventions: block, startLayer: 1).s
        }
        // parallelMap runs every item on one BLAS thread; so does this serial reference.
        let serial = try BLAS.withSingleThread {
            try samples.indices.map { try runner.score(samples[$0], baseline: baselines[$0], interventions: block, startLayer: 1).s }
        }
        #expect(parallel == serial)
        // Inside a scope (even a nested one, or while other scopes come and go) OpenBLAS runs on one thread.
        let inner = BLAS.withSingleThread { BLAS.withSingleThread { BLAS.threadCount } + BLAS.threadCount }
        #expect(inner == 2)
    }
}

@Suite("Batched scoring of intervened passes")
struct BatchedScoresTests {
    @Test("scores(_:) equals one score(…) per request, in request order, suffix runs included")
    func scoresEqualSingleRuns() throws {
        let (runner, samples, baselines) = try tinyRunner(perTarget: 3, keepKeysValues: true)
        var requests: [ScoreRequest] = []
        for (i, sample) in samples.enumerated() {
            let last = sample.input.ids.count - 1
            for layer in 0..<runner.layers {
                requests.append(ScoreRequest(sample: i, interventions: InterventionSet([.blockHeads([HeadIndex(layer: layer, head: i % runner.heads)], means: nil)]),
                                             startLayer: layer))
                requests.append(ScoreRequest(sample: i, interventions: InterventionSet([.knockout(keys: .span("image"), queries: .span("last"), layers: [layer], heads: nil)]),
                                             startLayer: layer, unchangedBefore: last))
            }
        }
        try Self.expectScoresAsAlone(requests, runner: runner, samples: samples, baselines: baselines)
    }

    /// `scores(…)` of `requests` equals one `score(…)` per request up to the last bits the matrix products'
    /// row counts change (see BatchedForwardTests), and a second evaluation is bit-identical (the batches
    /// depend only on the requests).
    static func expectScoresAsAlone(_ requests: [ScoreRequest], runner: AnalysisRunner, samples: [AnalysisSample],
                                    baselines: [BaselineRun]) throws {
        let batched = try runner.scores(requests, samples: samples, baselines: baselines)
        #expect(batched.count == requests.count)
        for (r, score) in zip(requests, batched) {
            let alone = try runner.score(samples[r.sample], baseline: baselines[r.sample], interventions: r.interventions,
                                         startLayer: r.startLayer, unchangedBefore: r.unchangedBefore)
            let close = abs(alone.s - score.s) <= 1e-4 * max(1, abs(alone.s))
            #expect(close, "sample \(r.sample), \(r.interventions), start \(r.startLayer): batched s = \(score.s), alone \(alone.s)")
        }
        #expect(try runner.scores(requests, samples: samples, baselines: baselines).map(\.s) == batched.map(\.s))
    }

    @Test("requests with a position-independent intervention share their common first rows, scoring as alone")
    func sharedPrefixes() throws {
        let (runner, samples, baselines) = try tinyRunner(perTarget: 3, keepKeysValues: true)
        var requests: [ScoreRequest] = []
        for layer in 0..<runner.layers {
            let head = HeadIndex(layer: layer, head: layer % runner.heads)
            for intervention in [Intervention.blockHeads([head], means: nil), .amplifyHeads([head], factor: 2.5),
                                 .scaleMLP(layers: [layer], factor: 0.5)] {
                requests += samples.indices.map {
                    ScoreRequest(sample: $0, interventions: InterventionSet([intervention]), startLayer: layer)
                }
            }
            // Knockouts depend on positions: never shared.
            requests += samples.indices.map { i in
                let knockout = Intervention.knockout(keys: .span("image"), queries: .span("last"), layers: [layer],
                                                     heads: nil)
                return ScoreRequest(sample: i, interventions: InterventionSet([knockout]), startLayer: layer,
                                    unchangedBefore: samples[i].input.ids.count - 1)
            }
        }
        // The items share their image and first words: shared runs form, and each holds rows alike in every
        // request below it.
        let plans = runner.plans(requests, samples: samples, baselines: baselines)
        let batches = runner.batchPlan(requests, plans: plans, samples: samples, baselines: baselines)
        #expect(batches.flatMap { $0.compactMap(\.owner) }.sorted() == Array(requests.indices),
                "every request scored by exactly one run")
        var sharedRuns = 0
        for batch in batches {
            let start = plans[batch[0].source].start
            for (index, run) in batch.enumerated() {
                let r = requests[run.source]
                #expect(plans[run.source].start == start, "one start layer per batch")
                if let owner = run.owner {
                    #expect(owner == run.source && run.rows.upperBound == samples[r.sample].input.ids.count,
                            "a request's own run ends at its last token")
                }
                guard let parent = run.continues else {
                    #expect(run.rows.lowerBound == plans[run.source].from, "a root run starts where its request does")
                    continue
                }
                #expect(parent < index && batch[parent].owner == nil, "a run continues an earlier shared run")
                #expect(batch[parent].rows.upperBound == run.rows.lowerBound, "it goes on where its parent ends")
            }
            // Every request below a shared run begins with that run's rows, bit for bit, and acts alike.
            for (index, run) in batch.enumerated() where run.owner == nil {
                sharedRuns += 1
                #expect(run.rows.count >= AnalysisRunner.minimumSharedRows)
                let leader = requests[run.source]
                let rows = baselines[leader.sample].residPre[start].rows(0..<run.rows.upperBound)
                var below = Set([index]), members = 0
                for (k, other) in batch.enumerated() where other.continues.map(below.contains) == true {
                    below.insert(k)
                    guard other.owner != nil else { continue }
                    members += 1
                    let o = requests[other.source]
                    #expect(o.interventions.positionIndependentKey == leader.interventions.positionIndependentKey)
                    #expect(plans[other.source].from == 0)
                    let own = baselines[o.sample].residPre[start].rows(0..<run.rows.upperBound)
                    #expect(own.scalars.map(\.bitPattern) == rows.scalars.map(\.bitPattern),
                            "request \(other.source): shared rows differ")
                }
                #expect(members >= 2, "a shared run serves at least two requests")
            }
        }
        #expect(sharedRuns >= runner.layers * 3, "\(sharedRuns) shared runs")
        try Self.expectScoresAsAlone(requests, runner: runner, samples: samples, baselines: baselines)
    }

    @Test("an invalid request is reported before anything runs, the first one in request order")
    func invalidRequest() throws {
        let (runner, samples, baselines) = try tinyRunner(perTarget: 1)
        let good = ScoreRequest(sample: 0, interventions: InterventionSet([.blockHeads([HeadIndex(layer: 0, head: 0)], means: nil)]), startLayer: 0)
        let badLayer = ScoreRequest(sample: 0, interventions: InterventionSet([.blockHeads([HeadIndex(layer: 99, head: 0)], means: nil)]), startLayer: 0)
        let badSpan = ScoreRequest(sample: 0, interventions: InterventionSet([.knockout(keys: .span("nonexistent"), queries: .span("last"), layers: [0], heads: nil)]),
                                   startLayer: 0)
        do {
            _ = try runner.scores([good, badLayer, badSpan], samples: samples, baselines: baselines)
            Issue.record("invalid requests were accepted")
        } catch {
            #expect("\(error)".contains("head 99.0 outside"), "\(error)")
        }
    }
}

@Suite("Suffix runs from cached keys and values")
struct SuffixRunTests {
    /// Edges whose queries start after position 0 in the tiny LLaVA's prompts (its layout has no instruction
    /// span; image→text includes the BOS token at 0, so it always runs in full).
    static let suffixEdges = FlowEdge.paperEdges.filter { ["last", "context"].contains($0.queries) && $0.keys != "instruction" }

    @Test("a knockout scored from the first query position on equals the full resumed run", arguments: suffixEdges)
    func knockoutSuffixMatchesFull(edge: FlowEdge) throws {
        let session = try ModelSession(directory: Fixtures.tinyLlava)
        let runner = AnalysisRunner(session: session)
        let samples = try Fixtures.items(perTarget: 2).map { try AnalysisSample($0, session: session) }
        // Suffix and full runs multiply matrices of different row counts; each element keeps its summation
        // order in OpenBLAS, so the bound only allows for a kernel that blocks rows differently.
        let tolerance = 1e-4
        var compared = 0
        for sample in samples {
            let baseline = try runner.baseline(sample, keepPatterns: false, keepKeysValues: true)
            let queries = try sample.input.spans.positions(edge.queries)
            guard let first = queries.min(), first > 0,
                  !(try sample.input.spans.positions(edge.keys)).isEmpty else { continue }
            for window in [[0], [1, 2], Array(0..<runner.layers)] {
                let ko = InterventionSet([.knockout(keys: .span(edge.keys), queries: .span(edge.queries), layers: window, heads: nil)])
                let full = try runner.score(sample, baseline: baseline, interventions: ko, startLayer: window[0])
                let suffix = try runner.score(sample, baseline: baseline, interventions: ko, startLayer: window[0], unchangedBefore: first)
                let close = abs(full.s - suffix.s) <= tolerance * max(1, abs(full.s))
                #expect(close, "\(edge) layers \(window): s = \(suffix.s) from position \(first) on, \(full.s) in full")
                compared += 1
            }
        }
        #expect(compared > 0, "\(edge): no sample has this edge")
    }

    /// Bit patterns of the rows before `p` of a decoder activation: query rows of `[H, T, T]` scores and
    /// patterns, token rows of everything else.
    static func prefixBits(_ name: String, _ t: Tensor, before p: Int) -> [UInt32] {
        guard name.hasSuffix("hook_attn_scores") || name.hasSuffix("hook_pattern") else {
            let width = t.count / max(t.shape[0], 1)
            return t.scalars[0..<(p * width)].map(\.bitPattern)
        }
        let queries = t.shape[1], keys = t.shape[2]
        return (0..<t.shape[0]).flatMap { h in
            t.scalars[(h * queries * keys)..<((h * queries + p) * keys)].map(\.bitPattern)
        }
    }

    @Test("every span pair (instruction edges too): the prefix is bit-identical, the suffix run equals the full run")
    func everySpanPair() throws {
        // The raw layout gives the tiny LLaVA's prompts every span: image, context, instruction, question,
        // constraint, last.
        let session = try ModelSession(directory: Fixtures.tinyLlava, layout: try .builtin("raw"))
        let runner = AnalysisRunner(session: session)
        let samples = try Fixtures.items(perTarget: 1).filter { $0.kind == "conflict" }
            .map { try AnalysisSample($0, session: session) }
        var edges: Set<String> = []
        for sample in samples {
            let input = sample.input, t = input.ids.count
            let baseline = try runner.baseline(sample, keepPatterns: false, keepKeysValues: true)
            let base = HookRun(cache: .names(Set(runner.decoder.hookNames)))
            _ = try BLAS.withSingleThread { try session.run(input, logits: .all, hooks: base) }
            for keys in TokenSpans.standardNames {
                for queries in TokenSpans.standardNames + ["text"] {
                    guard try !input.spans.positions(keys).isEmpty, try !input.spans.positions(queries).isEmpty else {
                        continue
                    }
                    let ko = InterventionSet([.knockout(keys: .span(keys), queries: .span(queries), layers: [1, 2],
                                                        heads: nil)])
                    let p = try ko.firstChangedPosition(tokenCount: t, spans: input.spans) ?? t
                    let hooks = try ko.hooks(for: runner.decoder, hookNames: session.model.hookNames, tokenCount: t,
                                             spans: input.spans, cache: .names(Set(runner.decoder.hookNames)))
                    _ = try BLAS.withSingleThread { try session.run(input, logits: .all, hooks: hooks) }
                    #expect(hooks.cache.count == base.cache.count)
                    for (name, tensor) in base.cache {
                        let same = Self.prefixBits(name, hooks.cache[name]!, before: p)
                            == Self.prefixBits(name, tensor, before: p)
                        #expect(same, "\(keys)->\(queries) on \(sample.id): \(name) changed before position \(p)")
                    }
                    guard p > 0, p < t else { continue }
                    let full = try runner.score(sample, baseline: baseline, interventions: ko, startLayer: 1)
                    let suffix = try runner.score(sample, baseline: baseline, interventions: ko, startLayer: 1,
                                                  unchangedBefore: p)
                    let close = abs(full.s - suffix.s) <= 1e-4 * max(1, abs(full.s))
                    #expect(close, "\(keys)->\(queries) on \(sample.id): s = \(suffix.s) from \(p), \(full.s) in full")
                    edges.insert("\(keys)->\(queries)")
                }
            }
        }
        for edge in ["instruction->last", "context->instruction", "image->instruction", "question->constraint",
                     "instruction->question", "image->text", "constraint->last"] {
            #expect(edges.contains(edge), "\(edge) was never compared from a suffix")
        }
    }
}
