// Runs samples through a model: one cached baseline pass per sample, then intervened passes that resume
// from the cached residual stream at the first layer an intervention touches (so a sweep over layer
// windows recomputes only the layers at and after each window).
import ArbiterInterventions
import ArbiterModels
import ArbiterTensor
import Dispatch
import Foundation

/// What a baseline pass keeps of one sample.
public struct BaselineRun: Sendable {
    public let score: FollowingScore
    /// `blocks.{l}.hook_resid_pre` for every layer, `[T, d]`.
    public let residPre: [Tensor]
    /// `blocks.{l}.hook_resid_post` rows at the readout positions (instruction positions, then last), `[P, d]`.
    public let readout: [Tensor]
    public let readoutPositions: [Int]
    /// Attention patterns `[H, T, T]` per layer (when requested).
    public let patterns: [Tensor]?
    /// Per-layer attention and MLP outputs at the last position `[d]`, and per-head results `[H, d]`.
    public let attnOutLast: [[Float]]
    public let mlpOutLast: [[Float]]
    public let headResultsLast: [Tensor]
    /// Final residual at the last position (before the final norm).
    public let finalResidualLast: [Float]
    /// Logits at the last position.
    public let logitsLast: [Float]
    /// Keys after rotary (`blocks.{l}.attn.hook_rot_k`) and values (`attn.hook_v`) per layer, `[T, KV·D]`,
    /// when kept: they let interventions on late queries recompute only the positions they can change.
    public let keys: [Tensor]?
    public let values: [Tensor]?
}

public final class AnalysisRunner: @unchecked Sendable {
    public let session: ModelSession
    public var decoder: LlamaDecoder { session.model.decoder }
    public var layers: Int { decoder.layerCount }
    public var heads: Int { decoder.configuration.attentionHeads }

    /// The model's hook names, for validating the interventions of every pass.
    let hookNames: Set<String>

    public init(session: ModelSession) {
        self.session = session
        hookNames = Set(session.model.hookNames)
    }

    /// The embeddings (hook_embed) of a sample.
    func embeddings(_ sample: AnalysisSample) throws -> Tensor { try session.embeddings(sample.input) }

    /// A baseline pass with everything the analyses read.
    public func baseline(_ sample: AnalysisSample, keepPatterns: Bool = true, keepKeysValues: Bool = false) throws -> BaselineRun {
        let l = layers
        var patterns = ["blocks.*.hook_resid_pre", "blocks.*.hook_resid_post", "blocks.*.hook_attn_out",
                        "blocks.*.hook_mlp_out", "blocks.*.attn.hook_result"]
        if keepPatterns { patterns.append("blocks.*.attn.hook_pattern") }
        if keepKeysValues { patterns += ["blocks.*.attn.hook_rot_k", "blocks.*.attn.hook_v"] }
        let hooks = HookRun(cache: .patterns(patterns))
        let out = try session.run(sample.input, logits: .last, hooks: hooks)
        let logits = Array(out.logits!.row(0))
        let t = sample.input.ids.count, last = t - 1
        let instruction = (try? sample.input.spans.positions("instruction")) ?? []
        let readoutPositions = instruction + [last]
        func lastRow(_ name: String) -> [Float] { Array(hooks.cache[name]!.row(last)) }
        return BaselineRun(
            score: FollowingScore(logits: logits, instructed: sample.instructed, competitor: sample.competitor),
            residPre: (0..<l).map { hooks.cache["blocks.\($0).hook_resid_pre"]! },
            readout: (0..<l).map { layer in
                let r = hooks.cache["blocks.\(layer).hook_resid_post"]!
                return Tensor(shape: [readoutPositions.count, r.columns], scalars: readoutPositions.flatMap { r.row($0) })
            },
            readoutPositions: readoutPositions,
            patterns: keepPatterns ? (0..<l).map { hooks.cache["blocks.\($0).attn.hook_pattern"]! } : nil,
            attnOutLast: (0..<l).map { lastRow("blocks.\($0).hook_attn_out") },
            mlpOutLast: (0..<l).map { lastRow("blocks.\($0).hook_mlp_out") },
            headResultsLast: (0..<l).map { layer in
                let r = hooks.cache["blocks.\(layer).attn.hook_result"]!
                let h = r.shape[1], d = r.shape[2]
                return Tensor(shape: [h, d], scalars: Array(r.scalars[(last * h * d)..<((last + 1) * h * d)]))
            },
            finalResidualLast: Array(out.residual.row(last)),
            logitsLast: logits,
            keys: keepKeysValues ? (0..<l).map { flatRows(hooks.cache["blocks.\($0).attn.hook_rot_k"]!) } : nil,
            values: keepKeysValues ? (0..<l).map { flatRows(hooks.cache["blocks.\($0).attn.hook_v"]!) } : nil)
    }

    /// `body(0) … body(count − 1)` on all cores, one sample per worker with one BLAS thread each: for the small
    /// matrices of one prompt that beats one sample at a time on multithreaded BLAS. Each result is computed
    /// alone, on one BLAS thread whatever the core count, and stored at its index, so the results (and any
    /// reduction over them in index order) depend neither on scheduling nor on the machine's cores. The
    /// first error by index is rethrown.
    public func parallelMap<T>(_ count: Int, _ body: (Int) throws -> T) throws -> [T] {
        try BLAS.withSingleThread {
            guard count > 1, Parallel.workers > 1 else { return try (0..<count).map(body) }
            return try parallelMapOnCores(count, body)
        }
    }

    private func parallelMapOnCores<T>(_ count: Int, _ body: (Int) throws -> T) throws -> [T] {
        let failure = FirstFailure()
        var results = [T?](repeating: nil, count: count)
        results.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let slots = buffer.baseAddress!
            withoutActuallyEscaping(body) { escapable in
                nonisolated(unsafe) let body = escapable
                DispatchQueue.concurrentPerform(iterations: count) { i in
                    guard !failure.happened(before: i) else { return }
                    // The cores are busy with other items: the kernels inside one item run serially.
                    do { slots[i] = try Parallel.serially { try body(i) } } catch { failure.record(error, at: i) }
                }
            }
        }
        if let error = failure.error { throw error }
        return results.map { $0! }
    }

    /// Memory the keys and values of `samples` would take if every baseline kept them.
    public func keyValueBytes(_ samples: [AnalysisSample]) -> Int {
        let c = decoder.configuration
        return samples.reduce(0) { $0 + $1.input.ids.count } * layers * 2 * c.keyValueHeads * c.headDim * MemoryLayout<Float>.size
    }

    /// The following score under `interventions`, resuming from the baseline's residual at `startLayer`
    /// (the first layer any intervention touches). `unchangedBefore` = p promises that the interventions
    /// change nothing at positions < p (e.g. a knockout whose queries are all ≥ p): when the baseline kept
    /// its keys and values, only positions p..<T are recomputed (a suffix run); otherwise all of them.
    public func score(_ sample: AnalysisSample, baseline: BaselineRun, interventions: InterventionSet,
                      startLayer: Int, unchangedBefore: Int = 0) throws -> FollowingScore {
        let hooks = try interventions.hooks(for: decoder, hookNames: hookNames,
                                            tokenCount: sample.input.ids.count, spans: sample.input.spans)
        let start = startLayer < layers ? startLayer : 0
        let residual = baseline.residPre[start]
        let t = residual.rows
        let out: DecoderOutput
        if unchangedBefore > 0, unchangedBefore < t, let keys = baseline.keys, let values = baseline.values {
            let p = unchangedBefore
            out = try decoder.forward(residual: residual.rows(p..<t), positions: sample.input.positions.slice(p..<t),
                                      startLayer: start, logits: .last, hooks: hooks,
                                      prefix: PrefixKeyValues(prefixOf: keys, values: values, count: p))
        } else {
            out = try decoder.forward(residual: residual, positions: sample.input.positions,
                                      startLayer: start, logits: .last, hooks: hooks)
        }
        return FollowingScore(logits: Array(out.logits!.row(0)), instructed: sample.instructed, competitor: sample.competitor)
    }
}

/// One intervened pass for `AnalysisRunner.scores(_:samples:baselines:)`: the interventions on sample
/// `sample`, resumed at `startLayer`, recomputing only positions ≥ `unchangedBefore` when the baseline kept
/// its keys and values (see `score(_:baseline:interventions:startLayer:unchangedBefore:)`).
public struct ScoreRequest: Sendable {
    public var sample: Int
    public var interventions: InterventionSet
    public var startLayer: Int
    public var unchangedBefore: Int

    public init(sample: Int, interventions: InterventionSet, startLayer: Int, unchangedBefore: Int = 0) {
        self.sample = sample
        self.interventions = interventions
        self.startLayer = startLayer
        self.unchangedBefore = unchangedBefore
    }
}

extension AnalysisRunner {
    /// Token rows per batch of `scores(_:samples:baselines:)`: enough for the matrix products of a small
    /// model to run near BLAS's peak (measured on this project's bench machine: 66 rows × 128 → 512 runs at
    /// 40 GFLOP/s with weights coming from L3, 512 rows at 68).
    public static let rowsPerBatch = 512

    /// Rows a shared prefix must save at least: below that, the extra run's per-run work (attention calls,
    /// hook visits, its last row through the final layer) costs about what the rows save.
    public static let minimumSharedRows = 4

    /// Sees every request list `scores(…)` is given, before it runs (tests count the passes `VerifyPlan` predicts).
    @TaskLocal static var requestObserver: (@Sendable ([ScoreRequest]) -> Void)?

    /// The following scores of many intervened passes, in request order. Requests resuming at the same
    /// layer are stacked into batches of about `rowsPerBatch` computed token rows
    /// (`LlamaDecoder.forward(batch:startLayer:)`), and the batches run side by side on the cores. Requests whose
    /// interventions act alike at every position (`positionIndependentKey`: head blocking or amplification, MLP
    /// scaling) are put next to each other with their resumed residual streams in lexicographic order, so that
    /// requests beginning with the same rows (bit for bit, at the same positions) — the prompt's first tokens,
    /// the image, the first words of the context, for most datasets — sit in the same batch; there they form a
    /// prefix tree: rows several requests have alike are computed once, in a run that the runs of the rows
    /// after them continue (`DecoderRun.continues`), level by level. The batches and their trees depend only on
    /// the requests, so the results — equal to one `score(…)` per request up to the last bits of the matrix
    /// products — are the same on any machine. Interventions are validated first, in request order: the first
    /// invalid request's error is thrown before anything runs.
    public func scores(_ requests: [ScoreRequest], samples: [AnalysisSample], baselines: [BaselineRun]) throws -> [FollowingScore] {
        Self.requestObserver?(requests)
        let hooks = try requests.map { r in
            try r.interventions.hooks(for: decoder, hookNames: hookNames,
                                      tokenCount: samples[r.sample].input.ids.count, spans: samples[r.sample].input.spans)
        }
        let plans = self.plans(requests, samples: samples, baselines: baselines)
        let batches = batchPlan(requests, plans: plans, samples: samples, baselines: baselines)

        let results = try parallelMap(batches.count) { b -> [FollowingScore] in
            let batch = batches[b], start = plans[batch[0].source].start
            let runs = batch.map { planned -> DecoderRun in
                let i = planned.source, sample = samples[requests[i].sample], baseline = baselines[requests[i].sample]
                let residual = baseline.residPre[start].rows(planned.rows)
                let positions = sample.input.positions.slice(planned.rows)
                let first = planned.rows.lowerBound
                guard planned.continues == nil, first > 0, let keys = baseline.keys, let values = baseline.values else {
                    return DecoderRun(residual: residual, positions: positions, hooks: hooks[i],
                                      continues: planned.continues)
                }
                return DecoderRun(residual: residual, positions: positions, hooks: hooks[i],
                                  prefix: PrefixKeyValues(prefixOf: keys, values: values, count: first))
            }
            let logits = try decoder.forward(batch: runs, startLayer: start)
            return zip(batch, logits).compactMap { planned, l in
                planned.owner.map { FollowingScore(logits: l, instructed: samples[requests[$0].sample].instructed,
                                                   competitor: samples[requests[$0].sample].competitor) }
            }
        }
        var out = [FollowingScore?](repeating: nil, count: requests.count)
        for (batch, scores) in zip(batches, results) {
            for (i, score) in zip(batch.compactMap(\.owner), scores) { out[i] = score }
        }
        return out.map { $0! }
    }

    /// (start layer, first recomputed position) per request.
    func plans(_ requests: [ScoreRequest], samples: [AnalysisSample],
               baselines: [BaselineRun]) -> [(start: Int, from: Int)] {
        requests.map { r in
            let t = samples[r.sample].input.ids.count
            let start = r.startLayer < layers ? r.startLayer : 0
            let suffix = r.unchangedBefore > 0 && r.unchangedBefore < t && baselines[r.sample].keys != nil
            return (start, suffix ? r.unchangedBefore : 0)
        }
    }

    /// One run of a batch of `scores(…)`: rows `rows` of request `source`'s resumed residual stream, under its
    /// hooks, continuing the batch's run `continues` (the rows before `rows`) or, with no parent and rows from
    /// p > 0 on, a suffix run over the baseline's keys and values; scored for request `owner`, or (nil) a
    /// shared run that other runs continue.
    struct PlannedRun: Equatable {
        var source: Int
        var rows: Range<Int>
        var continues: Int?
        var owner: Int?
    }

    /// The batches of `scores(…)`. Requests are ordered by start layer, then by the kind of their interventions
    /// (the first request of each `positionIndependentKey` in request order; a request without one is a kind
    /// of its own), then by their resumed residual streams in lexicographic order (rows, then position ids),
    /// then by request order; batches are cut after about `rowsPerBatch` computed rows. Inside a batch, the
    /// requests of a kind form a prefix tree (`prefixTree`).
    func batchPlan(_ requests: [ScoreRequest], plans: [(start: Int, from: Int)], samples: [AnalysisSample],
                   baselines: [BaselineRun]) -> [[PlannedRun]] {
        // Kinds: requests that may share rows (same start, same position-independent interventions, from 0).
        var kindOf: [PositionIndependentKey: Int] = [:]
        let kind = requests.indices.map { i -> Int in
            guard plans[i].from == 0, let key = requests[i].interventions.positionIndependentKey else { return i }
            if let first = kindOf[key] { return first }
            kindOf[key] = i
            return i
        }
        func tokens(_ i: Int) -> Int { samples[requests[i].sample].input.ids.count }
        let rowOrder = SampleRowOrder(samples: samples, baselines: baselines)
        let order = requests.indices.sorted { a, b in
            let (pa, pb) = (plans[a].start, plans[b].start)
            if pa != pb { return pa < pb }
            if kind[a] != kind[b] { return kind[a] < kind[b] }
            let (ra, rb) = (rowOrder.rank(requests[a].sample, at: pa), rowOrder.rank(requests[b].sample, at: pa))
            return ra != rb ? ra < rb : a < b
        }
        // common[k]: rows order[k] shares with order[k − 1] (0 across kinds), leaving each a row of its own.
        var common = [Int](repeating: 0, count: order.count)
        for k in order.indices.dropFirst() {
            let (a, b) = (order[k - 1], order[k])
            // Requests of one kind with another request are position-independent ones from row 0.
            guard kind[a] == kind[b], plans[a].start == plans[b].start else { continue }
            common[k] = rowOrder.commonRows(requests[a].sample, requests[b].sample, start: plans[a].start,
                                            limit: min(tokens(a), tokens(b)) - 1)
        }
        var batches: [[PlannedRun]] = []
        var lo = 0, rows = 0
        for k in order.indices {
            if k > lo, plans[order[k]].start != plans[order[lo]].start {
                batches.append(prefixTree(order[lo..<k], common: common[lo..<k], plans: plans, tokens: tokens))
                lo = k; rows = 0
            }
            rows += tokens(order[k]) - plans[order[k]].from - (k > lo ? common[k] : 0)
            if rows >= Self.rowsPerBatch {
                batches.append(prefixTree(order[lo...k], common: common[lo...k], plans: plans, tokens: tokens))
                lo = k + 1; rows = 0
            }
        }
        if lo < order.count {
            batches.append(prefixTree(order[lo...], common: common[lo...], plans: plans, tokens: tokens))
        }
        return batches
    }

    /// The runs of one batch: `members` in batch order, `common[k]` the rows member k shares with member k − 1
    /// (0 for the first, and where they cannot share). Where a range of members all share rows d..<L beyond the
    /// rows d their parent run computed, with L − d ≥ `minimumSharedRows`, those rows become one shared run
    /// (under the first member's hooks — the same edits as every member's), which the range's sub-ranges
    /// continue, recursively; each member's own run holds its remaining rows.
    func prefixTree(_ members: ArraySlice<Int>, common: ArraySlice<Int>, plans: [(start: Int, from: Int)],
                    tokens: (Int) -> Int) -> [PlannedRun] {
        let members = Array(members), common = Array(common)
        var runs: [PlannedRun] = []
        func build(_ range: Range<Int>, depth: Int, parent: Int?) {
            if range.count == 1 {
                let i = members[range.lowerBound], first = parent == nil ? plans[i].from : depth
                runs.append(PlannedRun(source: i, rows: first..<tokens(i), continues: parent, owner: i))
                return
            }
            let inner = (range.lowerBound + 1)..<range.upperBound
            let shared = inner.map { common[$0] }.min()!
            var depth = depth, parent = parent
            if shared - depth >= Self.minimumSharedRows {
                runs.append(PlannedRun(source: members[range.lowerBound], rows: depth..<shared, continues: parent,
                                       owner: nil))
                depth = shared
                parent = runs.count - 1
            }
            // Sub-ranges split where neighbours share no more than `shared` rows.
            var lo = range.lowerBound
            for k in inner where common[k] == shared {
                build(lo..<k, depth: depth, parent: parent)
                lo = k
            }
            build(lo..<range.upperBound, depth: depth, parent: parent)
        }
        build(0..<members.count, depth: 0, parent: nil)
        return runs
    }
}

/// The samples' resumed residual streams in lexicographic order, per start layer (rows compared as bytes, then
/// their position ids), and the rows two samples begin with alike.
private final class SampleRowOrder {
    let samples: [AnalysisSample], baselines: [BaselineRun]
    private var ranks: [Int: [Int]] = [:]

    init(samples: [AnalysisSample], baselines: [BaselineRun]) {
        self.samples = samples
        self.baselines = baselines
    }

    func rank(_ sample: Int, at start: Int) -> Int {
        if let r = ranks[start] { return r[sample] }
        let sorted = samples.indices.sorted { a, b in
            let n = min(samples[a].input.ids.count, samples[b].input.ids.count)
            let shared = commonRows(a, b, start: start, limit: n)
            guard shared < n else {
                let (ta, tb) = (samples[a].input.ids.count, samples[b].input.ids.count)
                return ta != tb ? ta < tb : a < b
            }
            let c = compareRow(a, b, row: shared, start: start)
            return c != 0 ? c < 0 : a < b
        }
        var r = [Int](repeating: 0, count: samples.count)
        for (rank, s) in sorted.enumerated() { r[s] = rank }
        ranks[start] = r
        return r[sample]
    }

    /// How many first rows samples a and b resume with alike at `start` (residual bits and position ids), at
    /// most `limit`.
    func commonRows(_ a: Int, _ b: Int, start: Int, limit: Int) -> Int {
        if a == b { return limit }
        var n = 0
        while n < limit, compareRow(a, b, row: n, start: start) == 0 { n += 1 }
        return n
    }

    /// memcmp of row `row` of the two residual streams, then of its position ids.
    private func compareRow(_ a: Int, _ b: Int, row: Int, start: Int) -> Int {
        let x = baselines[a].residPre[start], y = baselines[b].residPre[start]
        let width = x.columns * MemoryLayout<Float>.size
        let bytes = x.scalars.withUnsafeBytes { xb in
            y.scalars.withUnsafeBytes { yb in
                memcmp(xb.baseAddress! + row * width, yb.baseAddress! + row * width, width)
            }
        }
        if bytes != 0 { return Int(bytes) }
        for (px, py) in zip(samples[a].input.positions.axes, samples[b].input.positions.axes) where px[row] != py[row] {
            return px[row] < py[row] ? -1 : 1
        }
        return 0
    }
}

/// `[T, KV, D]` → `[T, KV·D]`.
private func flatRows(_ t: Tensor) -> Tensor { t.reshaped([t.shape[0], t.count / max(t.shape[0], 1)]) }

/// The lowest-index error of a parallel map. Items after a recorded failure are skipped, items before it
/// still run, so the error thrown is the lowest-index one whatever the scheduling.
private final class FirstFailure: @unchecked Sendable {
    private let lock = NSLock()
    private var first: (index: Int, error: Error)?
    func happened(before index: Int) -> Bool { lock.withLock { first.map { $0.index < index } ?? false } }
    var error: Error? { lock.withLock { first?.error } }
    func record(_ error: Error, at index: Int) {
        lock.withLock { if first == nil || index < first!.index { first = (index, error) } }
    }
}
