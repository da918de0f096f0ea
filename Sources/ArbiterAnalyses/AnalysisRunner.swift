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
    /// layer are stacked, in request order, into batches of about `rowsPerBatch` token rows
    /// (`LlamaDecoder.forward(batch:startLayer:)`), and the batches run side by side on the cores. Inside a
    /// batch, requests whose interventions act alike at every position (`positionIndependentKey`: head
    /// blocking or amplification, MLP scaling) and whose resumed residual streams begin with the same rows
    /// (bit for bit, at the same positions) — the prompt's first tokens and image, for most datasets —
    /// compute those rows once: one run of the shared rows, which each request's run continues
    /// (`DecoderRun.continues`). The batches and their shared prefixes depend only on the requests, so the
    /// results — equal to one `score(…)` per request up to the last bits of the matrix products — are the
    /// same on any machine. Interventions are validated first, in request order: the first invalid
    /// request's error is thrown before anything runs.
    public func scores(_ requests: [ScoreRequest], samples: [AnalysisSample], baselines: [BaselineRun]) throws -> [FollowingScore] {
        Self.requestObserver?(requests)
        let hooks = try requests.map { r in
            try r.interventions.hooks(for: decoder, hookNames: hookNames,
                                      tokenCount: samples[r.sample].input.ids.count, spans: samples[r.sample].input.spans)
        }
        let plans = self.plans(requests, samples: samples, baselines: baselines)
        let batches = batchPlan(requests, plans: plans, samples: samples, baselines: baselines)

        let results = try parallelMap(batches.count) { b -> [FollowingScore] in
            let start = plans[batches[b][0].members[0]].start
            var runs: [DecoderRun] = [], owners: [Int?] = []
            for group in batches[b] {
                if group.members.count == 1 {
                    let i = group.members[0]
                    let sample = samples[requests[i].sample], baseline = baselines[requests[i].sample]
                    let residual = baseline.residPre[start], p = plans[i].from, t = residual.rows
                    owners.append(i)
                    guard p > 0, let keys = baseline.keys, let values = baseline.values else {
                        runs.append(DecoderRun(residual: residual, positions: sample.input.positions, hooks: hooks[i]))
                        continue
                    }
                    runs.append(DecoderRun(residual: residual.rows(p..<t),
                                           positions: sample.input.positions.slice(p..<t), hooks: hooks[i],
                                           prefix: PrefixKeyValues(prefixOf: keys, values: values, count: p)))
                    continue
                }
                // The shared rows, under the first member's hooks (the same edits as every member's).
                let p = group.shared, leader = group.members[0], shared = runs.count
                runs.append(DecoderRun(residual: baselines[requests[leader].sample].residPre[start].rows(0..<p),
                                       positions: samples[requests[leader].sample].input.positions.slice(0..<p),
                                       hooks: hooks[leader]))
                owners.append(nil)
                for i in group.members {
                    let residual = baselines[requests[i].sample].residPre[start], t = residual.rows
                    runs.append(DecoderRun(residual: residual.rows(p..<t),
                                           positions: samples[requests[i].sample].input.positions.slice(p..<t),
                                           hooks: hooks[i], continues: shared))
                    owners.append(i)
                }
            }
            let logits = try decoder.forward(batch: runs, startLayer: start)
            return zip(owners, logits).compactMap { owner, l in
                owner.map { FollowingScore(logits: l, instructed: samples[requests[$0].sample].instructed,
                                           competitor: samples[requests[$0].sample].competitor) }
            }
        }
        var out = [FollowingScore?](repeating: nil, count: requests.count)
        for (batch, scores) in zip(batches, results) {
            for (i, score) in zip(batch.flatMap(\.members), scores) { out[i] = score }
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

    /// Requests computed together: one run, or (several members) a run of their `shared` first rows that each
    /// member's run continues.
    struct RequestGroup {
        var members: [Int]
        var shared: Int
        var tokens: Int
        var rows: Int { members.count == 1 ? tokens : shared + tokens - members.count * shared }
    }

    /// The batches of `scores(…)`: requests sorted by start layer (then request order), cut after about
    /// `rowsPerBatch` computed rows; inside a batch each request joins the group it saves the most rows with
    /// (at least `minimumSharedRows`), or starts its own.
    func batchPlan(_ requests: [ScoreRequest], plans: [(start: Int, from: Int)], samples: [AnalysisSample],
                   baselines: [BaselineRun]) -> [[RequestGroup]] {
        var keyIDs: [PositionIndependentKey: Int] = [:]
        let effect = requests.indices.map { i -> Int? in
            guard plans[i].from == 0, let key = requests[i].interventions.positionIndependentKey else { return nil }
            if let id = keyIDs[key] { return id }
            keyIDs[key] = keyIDs.count
            return keyIDs.count - 1
        }
        func tokens(_ i: Int) -> Int { samples[requests[i].sample].input.ids.count }
        /// How many first rows requests a and b resume with alike (residual bits and position ids), at most `limit`.
        func commonRows(_ a: Int, _ b: Int, limit: Int) -> Int {
            let start = plans[a].start
            let x = baselines[requests[a].sample].residPre[start], y = baselines[requests[b].sample].residPre[start]
            let px = samples[requests[a].sample].input.positions.axes
            let py = samples[requests[b].sample].input.positions.axes
            let width = x.columns * MemoryLayout<Float>.size
            return x.scalars.withUnsafeBytes { xb in
                y.scalars.withUnsafeBytes { yb in
                    var n = 0
                    while n < limit, memcmp(xb.baseAddress! + n * width, yb.baseAddress! + n * width, width) == 0,
                          zip(px, py).allSatisfy({ $0[n] == $1[n] }) { n += 1 }
                    return n
                }
            }
        }
        var batches: [[RequestGroup]] = []
        var current: [RequestGroup] = [], rows = 0
        for i in requests.indices.sorted(by: { (plans[$0].start, $0) < (plans[$1].start, $1) }) {
            if let first = current.first?.members[0], plans[first].start != plans[i].start {
                batches.append(current); current = []; rows = 0
            }
            let alone = tokens(i) - plans[i].from
            var best: (group: Int, joined: RequestGroup, saving: Int)? = nil
            if let id = effect[i] {
                for (g, group) in current.enumerated() where effect[group.members[0]] == id {
                    let leader = group.members[0]
                    let cap = group.members.count == 1 ? tokens(leader) - 1 : group.shared
                    let shared = commonRows(leader, i, limit: min(cap, tokens(i) - 1))
                    guard shared >= Self.minimumSharedRows else { continue }
                    let joined = RequestGroup(members: group.members + [i], shared: shared,
                                              tokens: group.tokens + tokens(i))
                    let saving = group.rows + alone - joined.rows
                    if saving >= Self.minimumSharedRows, saving > best?.saving ?? 0 { best = (g, joined, saving) }
                }
            }
            if let best {
                rows += best.joined.rows - current[best.group].rows
                current[best.group] = best.joined
            } else {
                current.append(RequestGroup(members: [i], shared: 0, tokens: alone))
                rows += alone
            }
            if rows >= Self.rowsPerBatch { batches.append(current); current = []; rows = 0 }
        }
        if !current.isEmpty { batches.append(current) }
        return batches
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
