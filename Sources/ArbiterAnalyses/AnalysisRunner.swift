// Runs samples through a model: one cached baseline pass per sample, then intervened passes that resume
// from the cached residual stream at the first layer an intervention touches (so a sweep over layer
// windows recomputes only the layers at and after each window).
import ArbiterFormats
import ArbiterInterventions
import ArbiterModels
import ArbiterTensor
import Dispatch
import Foundation

/// What a baseline pass keeps of one sample.
public struct BaselineRun: Sendable {
    public let score: FollowingScore
    /// `blocks.{l}.hook_resid_pre` for every layer, `[T, d]`; only layer 0's (the embeddings) when the run keeps
    /// no residual streams (a 7B item's are ~0.34 GB: over `AnalysisRunner.streamBudget`), and `scores` computes
    /// a chunk of items' again or runs its passes from layer 0.
    public let residPre: [Tensor]
    /// Whether `residPre` holds every layer's stream (else layer 0's alone).
    public let keepsStreams: Bool
    /// `blocks.{l}.hook_resid_post` rows at the readout positions (instruction positions, then last), `[P, d]`.
    public let readout: [Tensor]
    public let readoutPositions: [Int]
    /// What attention routing reads of the attention patterns (when requested): per layer, for every head and
    /// readout query q (instruction tokens, then last), the attention mass on the image keys and on the context
    /// keys up to q, summed in key order in Double — `[H · P · 2]`, head-major, (image, context) innermost. A
    /// 7B item's `[H, T, T]` patterns are ~50 MB per layer; their readout rows were ~1.3 MB; these ~8 KB.
    public let cueMass: [[Double]]?
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
    /// The rows the pass added to the residual stream after layers (Qwen3-VL's DeepStack), which every pass
    /// resumed from it adds too.
    public var additions: ResidualAdditions? = nil

    /// This baseline with the residual streams and keys and values (`[T, KV·D]` per layer) it did not keep.
    func with(residPre streams: [Tensor]? = nil, keys: [Tensor]?, values: [Tensor]?) -> BaselineRun {
        BaselineRun(score: score, residPre: streams ?? residPre, keepsStreams: streams != nil || keepsStreams,
                    readout: readout, readoutPositions: readoutPositions,
                    cueMass: cueMass, attnOutLast: attnOutLast, mlpOutLast: mlpOutLast,
                    headResultsLast: headResultsLast, finalResidualLast: finalResidualLast, logitsLast: logitsLast,
                    keys: keys, values: values, additions: additions)
    }
}

/// The rows a baseline keeps of the activations it does not keep whole, copied as the pass visits each hook point
/// (the observing edits leave the activations as they are): a 7B item's per-head results alone are ~15 GB over
/// its 32 layers, of which the analyses read one row.
final class KeptRows: @unchecked Sendable {
    private var kept: [String: Tensor] = [:]
    private var masses: [String: [Double]] = [:]

    /// Rows `rows` of `tensor` along its first axis, `[rows.count] + shape[1...]`.
    func keep(_ name: String, _ tensor: Tensor, rows: [Int], sample: String) throws {
        let t = tensor.shape[0], width = tensor.scalars.count / max(t, 1)
        var out = [Float](repeating: 0, count: rows.count * width)
        for (j, r) in rows.enumerated() {
            guard r < t else {
                throw AnalysisError.badSample(id: sample, problem: "\(name) has \(t) rows, no row \(r) to keep")
            }
            for k in 0..<width { out[j * width + k] = tensor.scalars[r * width + k] }
        }
        kept[name] = Tensor(shape: [rows.count] + tensor.shape.dropFirst(), scalars: out)
    }

    /// Of an attention pattern `[H, Tq, Tk]` whose first row is query `queryOffset`: per head and query q of
    /// `queries`, the mass on the keys of each of `spans` up to q (keys ≤ q), summed in key order in Double —
    /// `[H · queries.count · spans.count]`, head-major.
    func keepMass(_ name: String, _ pattern: Tensor, queries: [Int], queryOffset: Int, spans: [[Int]],
                  sample: String) throws {
        let h = pattern.shape[0], tq = pattern.shape[1], tk = pattern.shape[2]
        var out = [Double](repeating: 0, count: h * queries.count * spans.count)
        for (j, q) in queries.enumerated() {
            guard q >= queryOffset && q - queryOffset < tq else {
                throw AnalysisError.badSample(id: sample, problem: "\(name) holds queries \(queryOffset)..<"
                                              + "\(queryOffset + tq), not query \(q)")
            }
            for head in 0..<h {
                let from = (head * tq + q - queryOffset) * tk
                for (s, keys) in spans.enumerated() {
                    var mass = 0.0
                    for k in keys where k <= q {
                        guard k >= 0 && k < tk else {
                            throw AnalysisError.badSample(id: sample, problem: "\(name) has \(tk) keys, no key \(k)")
                        }
                        mass += Double(pattern.scalars[from + k])
                    }
                    out[(head * queries.count + j) * spans.count + s] = mass
                }
            }
        }
        masses[name] = out
    }

    /// The masses kept at `name`; throws when the pass never visited it.
    func mass(_ name: String, sample: String) throws -> [Double] {
        guard let mass = masses[name] else {
            throw AnalysisError.badSample(id: sample, problem: "the baseline pass never visited \(name)")
        }
        return mass
    }

    /// The rows kept at `name`; throws when the pass never visited it.
    func rows(_ name: String, sample: String) throws -> Tensor {
        guard let tensor = kept[name] else {
            throw AnalysisError.badSample(id: sample, problem: "the baseline pass never visited \(name)")
        }
        return tensor
    }
}

public final class AnalysisRunner: @unchecked Sendable {
    public let session: ModelSession
    public var decoder: LlamaDecoder { session.model.decoder }
    public var layers: Int { decoder.layerCount }
    public var heads: Int { decoder.configuration.attentionHeads }

    /// The model's hook names, for validating the interventions of every pass.
    let hookNames: Set<String>

    /// A sharded run's (or its merge's) source of batches (`PassSharding`); nil computes every batch here.
    public var sharding: PassSharding?
    /// Bytes of keys and values `scores` may hold at once when the baselines did not keep theirs (a model too
    /// big to keep them for every item): requests that could recompute a suffix then run a chunk of items at a
    /// time, each chunk's keys and values computed again first (`scoresRunningAgain`). nil: such requests
    /// recompute every position.
    public var keyValueBudget: Int?
    /// Bytes of residual streams `scores` may hold at once when the baselines kept none (`baseline(…,
    /// keepStreams: false)`, the run's items' streams over this budget): every call then runs its items in
    /// chunks within it, each chunk's streams (and keys and values, when wanted) computed again first.
    public var streamBudget = AnalysisRunner.defaultStreamBudget
    /// `streamBudget`'s default: 4 GiB.
    public static let defaultStreamBudget = 4 << 30
    /// Where `scores` reports each chunk of items whose keys and values it runs again (a 7B model's run spends
    /// hours per chunk; nil: silent).
    public var progress: ((String) -> Void)?

    public init(session: ModelSession) {
        self.session = session
        hookNames = Set(session.model.hookNames)
    }

    /// The embeddings (hook_embed) of a sample.
    func embeddings(_ sample: AnalysisSample) throws -> Tensor { try session.embeddings(sample.input) }

    /// A baseline pass with everything the analyses read. Only the residual streams entering each layer (and
    /// keys and values, when asked) are kept whole; of the other activations the pass keeps the rows the analyses
    /// read — readout rows of `hook_resid_post`, the readout queries' attention mass on the image and context (of
    /// the patterns; `keepPatterns`), the last row of the attention and MLP outputs and of the per-head results —
    /// so a 7B item holds ~0.35 GB instead of ~18 GB, or ~20 MB without its residual streams beyond layer 0's
    /// (`keepStreams: false`: `scores` computes them again when a call's passes resume from them, or runs its
    /// passes from layer 0).
    public func baseline(_ sample: AnalysisSample, keepPatterns: Bool = true,
                         keepKeysValues: Bool = false, keepStreams: Bool = true) throws -> BaselineRun {
        let l = layers
        let cached = (keepStreams ? [HookName.everyBlock(.residPre)] : [HookName.block(0, .residPre)])
            + (keepKeysValues ? [HookName.everyBlock(.rotK), HookName.everyBlock(.v)] : [])
        let hooks = HookRun(cache: .patterns(cached))
        let t = sample.input.ids.count, last = t - 1, id = sample.id
        let instruction = (try? sample.input.spans.positions("instruction")) ?? []
        let readoutPositions = instruction + [last]
        let cueSpans = ["image", "context"].map { (try? sample.input.spans.positions($0)) ?? [] }
        let kept = KeptRows()
        for layer in 0..<l {
            for (hook, rows) in [(BlockHook.residPost, readoutPositions), (.attnOut, [last]), (.mlpOut, [last]),
                                 (.result, [last])] {
                let name = HookName.block(layer, hook)
                hooks.addEdit(at: name) { tensor, _ in try kept.keep(name, tensor, rows: rows, sample: id) }
            }
            if keepPatterns {
                let name = HookName.block(layer, .pattern)
                hooks.addEdit(at: name) { pattern, point in
                    try kept.keepMass(name, pattern, queries: readoutPositions, queryOffset: point.queryOffset ?? 0,
                                      spans: cueSpans, sample: id)
                }
            }
        }
        let out = try session.run(sample.input, logits: .last, hooks: hooks)
        let logits = Array(out.logits!.row(0))
        func rows(_ layer: Int, _ hook: BlockHook) throws -> Tensor {
            try kept.rows(HookName.block(layer, hook), sample: id)
        }
        return BaselineRun(
            score: FollowingScore(logits: logits, instructed: sample.instructed, competitor: sample.competitor),
            residPre: (0..<(keepStreams ? l : min(l, 1))).map { hooks.cache[HookName.block($0, .residPre)]! },
            keepsStreams: keepStreams,
            readout: try (0..<l).map { try rows($0, .residPost) },
            readoutPositions: readoutPositions,
            cueMass: keepPatterns ? try (0..<l).map { try kept.mass(HookName.block($0, .pattern), sample: id) } : nil,
            attnOutLast: try (0..<l).map { try rows($0, .attnOut).scalars },
            mlpOutLast: try (0..<l).map { try rows($0, .mlpOut).scalars },
            headResultsLast: try (0..<l).map { layer in
                let r = try rows(layer, .result)
                return Tensor(shape: [r.shape[1], r.shape[2]], scalars: r.scalars)
            },
            finalResidualLast: Array(out.residual.row(last)),
            logitsLast: logits,
            keys: keepKeysValues ? (0..<l).map { flatRows(hooks.cache[HookName.block($0, .rotK)]!) } : nil,
            values: keepKeysValues ? (0..<l).map { flatRows(hooks.cache[HookName.block($0, .v)]!) } : nil,
            additions: out.additions)
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

    /// Memory the residual streams entering every layer of `samples` take in their baselines.
    public func streamBytes(_ samples: [AnalysisSample]) -> Int {
        samples.reduce(0) { $0 + $1.input.ids.count } * layers * decoder.configuration.hiddenSize
            * MemoryLayout<Float>.size
    }

    /// Memory the keys and values of `samples` would take if every baseline kept them.
    public func keyValueBytes(_ samples: [AnalysisSample]) -> Int {
        let c = decoder.configuration
        return samples.reduce(0) { $0 + $1.input.ids.count } * layers * 2 * c.keyValueHeads * c.headDim
            * MemoryLayout<Float>.size
    }

    /// The following score under `interventions`, resuming from the baseline's residual at `startLayer`
    /// (the first layer any intervention touches). `unchangedBefore` = p promises that the interventions
    /// change nothing at positions < p (e.g. a knockout whose queries are all ≥ p): when the baseline kept
    /// its keys and values, only positions p..<T are recomputed (a suffix run); otherwise all of them.
    public func score(_ sample: AnalysisSample, baseline: BaselineRun, interventions: InterventionSet,
                      startLayer: Int, unchangedBefore: Int = 0) throws -> FollowingScore {
        let baseline = baseline.keepsStreams || startLayer == 0 || startLayer >= layers ? baseline
            : baseline.with(residPre: try rerun(sample, streams: true, keysValues: false).streams, keys: baseline.keys,
                            values: baseline.values)
        let hooks = try interventions.hooks(for: decoder, hookNames: hookNames,
                                            tokenCount: sample.input.ids.count, spans: sample.input.spans)
        let start = startLayer < layers ? startLayer : 0
        let residual = baseline.residPre[start]
        let t = residual.rows
        let first = DecoderRun.firstRecomputed(unchangedBefore: unchangedBefore, tokens: t,
                                               keysValuesKept: baseline.keys != nil && baseline.values != nil)
        let run = DecoderRun.resumed(rows: first..<t, of: residual, positions: sample.input.positions,
                                     keys: baseline.keys, values: baseline.values, hooks: hooks,
                                     additions: baseline.additions)
        let out = try decoder.forward(run, startLayer: start, logits: .last)
        return FollowingScore(logits: Array(out.logits!.row(0)), instructed: sample.instructed,
                              competitor: sample.competitor)
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

    /// The first position the request must recompute on `sample`: `unchangedBefore` when given, else the
    /// first its interventions can change (`InterventionSet.firstChangedPosition`: a head blocked or amplified
    /// after the image only changes nothing before it), 0 when unknown.
    func firstRecomputed(in sample: AnalysisSample) -> Int {
        if unchangedBefore > 0 { return unchangedBefore }
        let t = sample.input.ids.count
        return ((try? interventions.firstChangedPosition(tokenCount: t, spans: sample.input.spans)) ?? nil) ?? 0
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

    /// Runs `body` with `observer` seeing every request list `scores(…)` is given on runners of `session`, before
    /// it runs (tests count the passes `VerifyPlan` predicts). Keyed by the session, so tests running side by side
    /// do not see each other's requests. (A `@TaskLocal` crashed in `swift_task_localValuePush` in the release
    /// test build, pushed from a synchronous test.)
    static func observingRequests<T>(of session: ModelSession, _ observer: @escaping @Sendable ([ScoreRequest]) -> Void,
                                     _ body: () throws -> T) rethrows -> T {
        let key = ObjectIdentifier(session)
        requestObservers.withLock { $0[key] = observer }
        defer { requestObservers.withLock { $0[key] = nil } }
        return try body()
    }

    private static let requestObservers = LockedObservers()

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
    public func scores(_ requests: [ScoreRequest], samples: [AnalysisSample],
                       baselines: [BaselineRun]) throws -> [FollowingScore] {
        if let observe = Self.requestObservers.withLock({ $0[ObjectIdentifier(session)] }) { observe(requests) }
        if runsAgain(requests, samples: samples, baselines: baselines) {
            return try scoresRunningAgain(requests, samples: samples, baselines: baselines)
        }
        return try computeScores(requests, samples: samples, baselines: baselines)
    }

    /// `scores` of several request lists, in order: one call each (`progress(k)` before call k), or — when the
    /// residual streams or keys and values run again (`streamBudget`, `keyValueBudget`) — one call for all, so
    /// that each item's are computed once rather than once per list (`progress(nil)` before it). The batches
    /// are the same either way (a batch never mixes start layers or samples' kinds across lists that differ in
    /// them).
    func scores(calls: [[ScoreRequest]], samples: [AnalysisSample], baselines: [BaselineRun],
                progress: (Int?) -> Void) throws -> [[FollowingScore]] {
        let all = calls.flatMap { $0 }
        guard runsAgain(all, samples: samples, baselines: baselines) else {
            return try calls.indices.map { k in
                progress(k)
                return try scores(calls[k], samples: samples, baselines: baselines)
            }
        }
        progress(nil)
        let scored = try scores(all, samples: samples, baselines: baselines)
        var out: [[FollowingScore]] = [], at = 0
        for call in calls {
            out.append(Array(scored[at..<(at + call.count)]))
            at += call.count
        }
        return out
    }

    /// Whether a request could recompute a suffix but its baseline kept no keys and values.
    static func wantKeysValues(_ requests: [ScoreRequest], samples: [AnalysisSample],
                               baselines: [BaselineRun]) -> Bool {
        requests.contains { r in
            let t = samples[r.sample].input.ids.count, p = r.firstRecomputed(in: samples[r.sample])
            return p > 0 && p < t && baselines[r.sample].keys == nil
        }
    }

    /// Whether `r` resumes past layer 0 from a baseline that kept only layer 0's stream.
    func wantsStreams(_ r: ScoreRequest, _ baselines: [BaselineRun]) -> Bool {
        !baselines[r.sample].keepsStreams && r.startLayer > 0 && r.startLayer < layers
    }

    /// Whether `scores` must compute some of its items' residual streams (baselines that kept none) or keys and
    /// values (a request that could recompute a suffix, its baseline without them, within a `keyValueBudget`).
    func runsAgain(_ requests: [ScoreRequest], samples: [AnalysisSample], baselines: [BaselineRun]) -> Bool {
        requests.contains { wantsStreams($0, baselines) }
            || (keyValueBudget != nil && Self.wantKeysValues(requests, samples: samples, baselines: baselines))
    }

    /// `scores` over baselines without residual streams or keys and values: the requests' items in chunks whose
    /// streams and keys and values (those that are wanted) fit `streamBudget` plus `keyValueBudget`
    /// (`Heads.keyValueChunks`, at least one item each), in item order; per chunk, the items' are computed again
    /// (one pass each, all workers) and the chunk's requests run as `scores` runs them with kept ones. The
    /// batches are those of each chunk alone (the results equal one `score(…)` per request up to the last bits
    /// of the products, as any batching).
    func scoresRunningAgain(_ requests: [ScoreRequest], samples: [AnalysisSample],
                            baselines: [BaselineRun]) throws -> [FollowingScore] {
        let touched = Array(Set(requests.map(\.sample))).sorted()
        let bySample = Dictionary(grouping: requests.indices, by: { requests[$0].sample })
        let streams = requests.contains { wantsStreams($0, baselines) }
        let keysValues = keyValueBudget != nil && Self.wantKeysValues(requests, samples: samples, baselines: baselines)
        // Streams wanted alone: a call whose resumes would save less than its items' passes run again cost runs
        // every pass from layer 0 instead, on the embeddings its baselines keep (the same scores, bit for bit,
        // as resuming at layer 0; a resume is an optimization).
        if streams && !keysValues
            && !Self.resumesFromStreams(requests, tokens: { samples[$0].input.ids.count }, layers: layers) {
            progress?("\(requests.count) passes from layer 0 (their \(touched.count) items' residual streams not "
                      + "kept; running them again would cost more)")
            return try computeScores(requests.map { r in
                var r = r
                r.startLayer = 0
                return r
            }, samples: samples, baselines: baselines)
        }
        let budget = (streams ? streamBudget : 0) + (keysValues ? keyValueBudget ?? 0 : 0)
        let what = [streams ? "residual streams" : nil, keysValues ? "keys and values" : nil].compactMap { $0 }
            .joined(separator: " and ")
        var out = [FollowingScore?](repeating: nil, count: requests.count)
        let chunks = Heads.keyValueChunks(touched.map { s -> Int in
            (streams ? streamBytes([samples[s]]) : 0) + (keysValues ? keyValueBytes([samples[s]]) : 0)
        }, budget: budget)
        for (c, chunk) in chunks.enumerated() {
            let members = Array(touched[chunk])
            progress?("\(what) run again: chunk \(c + 1)/\(chunks.count) (items \(chunk.lowerBound + 1)–"
                      + "\(chunk.upperBound) of \(touched.count)) and its passes")
            typealias Again = (streams: [Tensor]?, keys: [Tensor]?, values: [Tensor]?)
            let again = try parallelMap(members.count) { k -> Again in
                let b = baselines[members[k]]
                return try rerun(samples[members[k]], streams: !b.keepsStreams, keysValues: keysValues && b.keys == nil)
            }
            let local = Dictionary(uniqueKeysWithValues: members.enumerated().map { ($1, $0) })
            let indices = members.flatMap { bySample[$0] ?? [] }.sorted()
            let chunkRequests = indices.map { i -> ScoreRequest in
                var r = requests[i]
                r.sample = local[r.sample]!
                return r
            }
            let chunkBaselines = members.enumerated().map { k, s in
                baselines[s].with(residPre: again[k].streams, keys: again[k].keys ?? baselines[s].keys,
                                  values: again[k].values ?? baselines[s].values)
            }
            let scored = try computeScores(chunkRequests, samples: members.map { samples[$0] },
                                           baselines: chunkBaselines)
            for (i, score) in zip(indices, scored) { out[i] = score }
        }
        return out.map { $0! }
    }

    /// Whether a call whose baselines kept no residual streams (and wants no keys and values) resumes its passes
    /// from streams computed again — one baseline pass per distinct item — rather than running every pass from
    /// layer 0: when the row·layers the resumes skip exceed those of the passes run again. (A single-head
    /// ablation sweep resumes; a few passes per item from the first layers, such as specificity's, do not.)
    /// `VerifyPlan` decides the same way.
    static func resumesFromStreams(_ requests: [ScoreRequest], tokens: (Int) -> Int, layers: Int) -> Bool {
        var again = 0.0, skipped = 0.0
        for s in Set(requests.map(\.sample)) { again += Double(tokens(s) * layers) }
        for r in requests where r.startLayer < layers { skipped += Double(tokens(r.sample) * r.startLayer) }
        return skipped > again
    }

    /// A sample's baseline pass again for what its baseline did not keep: the residual streams entering every
    /// layer (`[T, d]` each) and/or the keys after rotary and the values of every layer (`[T, KV·D]` each). The
    /// same pass, so the same values (tests compare them).
    func rerun(_ sample: AnalysisSample, streams: Bool, keysValues: Bool)
        throws -> (streams: [Tensor]?, keys: [Tensor]?, values: [Tensor]?) {
        let cached = (streams ? [BlockHook.residPre] : []) + (keysValues ? [BlockHook.rotK, .v] : [])
        guard !cached.isEmpty else { return (nil, nil, nil) }
        let hooks = HookRun(cache: .patterns(cached.map(HookName.everyBlock)))
        _ = try session.run(sample.input, logits: .last, hooks: hooks)
        func all(_ hook: BlockHook) throws -> [Tensor] {
            try (0..<layers).map { layer in
                guard let t = hooks.cache[HookName.block(layer, hook)] else {
                    throw AnalysisError.badSample(id: sample.id,
                                                  problem: "the pass cached no \(HookName.block(layer, hook))")
                }
                return hook == .residPre ? t : flatRows(t)
            }
        }
        return (streams ? try all(.residPre) : nil, keysValues ? try all(.rotK) : nil,
                keysValues ? try all(.v) : nil)
    }

    func computeScores(_ requests: [ScoreRequest], samples: [AnalysisSample],
                       baselines: [BaselineRun]) throws -> [FollowingScore] {
        if let r = requests.first(where: { wantsStreams($0, baselines) }) {
            throw AnalysisError.badSample(id: samples[r.sample].id,
                                          problem: "its baseline kept no residual streams to resume from")
        }
        let hooks = try requests.map { r in
            try r.interventions.hooks(for: decoder, hookNames: hookNames,
                                      tokenCount: samples[r.sample].input.ids.count,
                                      spans: samples[r.sample].input.spans)
        }
        let plans = self.plans(requests, samples: samples, baselines: baselines)
        let batches = batchPlan(requests, plans: plans, samples: samples, baselines: baselines)
        // A sharded run computes its own batches only (the rest stored or, in its round, placeholders).
        let sources = try sharding?.beginCall(fingerprint: Self.fingerprint(requests, batches, samples: samples),
                                              batches: batches.count)

        let results = try parallelMap(batches.count) { b -> [FollowingScore] in
            let batch = batches[b], start = plans[batch[0].source].start
            switch sources?.sources[b] {
            case .stored(let scores)?: return scores
            case .placeholder?:
                let placeholder = FollowingScore(top: -1, pInstructed: 0, pCompetitor: 0, s: 0)
                return batch.compactMap(\.owner).map { _ in placeholder }
            case .compute?, nil: break
            }
            let runs = batch.map { planned -> DecoderRun in
                let i = planned.source, sample = samples[requests[i].sample], baseline = baselines[requests[i].sample]
                return DecoderRun.resumed(rows: planned.rows, of: baseline.residPre[start],
                                          positions: sample.input.positions, keys: baseline.keys,
                                          values: baseline.values, hooks: hooks[i], continues: planned.continues,
                                          additions: baseline.additions)
            }
            let logits = try decoder.forward(batch: runs, startLayer: start)
            return zip(batch, logits).compactMap { planned, l in
                planned.owner.map { FollowingScore(logits: l, instructed: samples[requests[$0].sample].instructed,
                                                   competitor: samples[requests[$0].sample].competitor) }
            }
        }
        if let (call, sources) = sources {
            sharding?.record(call: call, batches: sources.indices.compactMap { b in
                if case .compute = sources[b] { return (b, results[b]) } else { return nil }
            })
        }
        var out = [FollowingScore?](repeating: nil, count: requests.count)
        for (batch, scores) in zip(batches, results) {
            for (i, score) in zip(batch.compactMap(\.owner), scores) { out[i] = score }
        }
        return out.map { $0! }
    }

    /// Checkpoint r of the analysis (`PassSharding`): where a sharded run's round r ends.
    public func checkpoint() throws { try sharding?.checkpoint() }

    /// A fingerprint of a `scores` call: its requests (samples by id, interventions, resumption) and its batches.
    static func fingerprint(_ requests: [ScoreRequest], _ batches: [[PlannedRun]],
                            samples: [AnalysisSample]) -> String {
        var f = ContentFingerprint()
        for r in requests {
            f.add(samples[r.sample].id)
            f.add(r.interventions.description)
            f.add([r.sample, r.startLayer, r.unchangedBefore])
        }
        for batch in batches {
            f.add(batch.count)
            for run in batch {
                f.add([run.source, run.rows.lowerBound, run.rows.upperBound, run.continues ?? -1, run.owner ?? -1])
            }
        }
        return f.hex
    }

    /// A fingerprint of prepared samples: ids, kinds, targets, token ids, positions, pixel values and answers.
    static func fingerprint(_ samples: [AnalysisSample]) -> String {
        var f = ContentFingerprint()
        for s in samples {
            f.add(s.id)
            f.add(s.kind)
            f.add(s.target?.rawValue ?? "-")
            f.add(s.input.ids)
            for axis in s.input.positions.axes { f.add(axis) }
            if let pixels = s.input.pixelValues { f.add(pixels.shape); f.add(pixels.scalars) } else { f.add(-1) }
            f.add(s.instructed)
            f.add(s.competitor)
        }
        return f.hex
    }

    /// (start layer, first recomputed position) per request.
    func plans(_ requests: [ScoreRequest], samples: [AnalysisSample],
               baselines: [BaselineRun]) -> [(start: Int, from: Int)] {
        requests.map { r in
            let t = samples[r.sample].input.ids.count, p = r.firstRecomputed(in: samples[r.sample])
            let start = r.startLayer < layers ? r.startLayer : 0
            return (start, DecoderRun.firstRecomputed(unchangedBefore: p, tokens: t,
                                                      keysValuesKept: baselines[r.sample].keys != nil))
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

    /// The batches of `scores(…)`: `batchPlan(_:plans:tokens:order:commonRows:)` with the samples' rows
    /// compared as the residual streams the requests resume (`SampleRowOrder`, `residualRowsAlike`).
    func batchPlan(_ requests: [ScoreRequest], plans: [(start: Int, from: Int)], samples: [AnalysisSample],
                   baselines: [BaselineRun]) -> [[PlannedRun]] {
        let order = SampleRowOrder(samples: samples)
        return Self.batchPlan(requests, plans: plans, tokens: { samples[requests[$0].sample].input.ids.count },
                              order: { order.rank(requests[$0].sample) }, commonRows: { a, b, start, limit in
            let (x, y) = (requests[a].sample, requests[b].sample)
            return residualRowsAlike(baselines[x].residPre[start], baselines[y].residPre[start],
                                     samples[x].input.positions, samples[y].input.positions, limit: limit)
        })
    }

    /// The batches of `scores(…)`, from the requests alone (also what `VerifyPlan` counts, without a model run).
    /// Requests are ordered by start layer, then by the kind of their interventions (the first request of each
    /// `positionIndependentKey` in request order; a request without one is a kind of its own), then by
    /// `order` (their samples' first rows: `SampleRowOrder`), then by request order; batches are cut after about
    /// `rowsPerBatch` computed rows. `commonRows(a, b, start, limit)`: how many first rows requests a and b
    /// resume with alike at layer `start`, at most `limit`. Inside a batch, the requests of a kind form a prefix
    /// tree (`prefixTree`).
    static func batchPlan(_ requests: [ScoreRequest], plans: [(start: Int, from: Int)], tokens: (Int) -> Int,
                          order: (Int) -> Int, commonRows: (Int, Int, Int, Int) -> Int) -> [[PlannedRun]] {
        // Kinds: requests that may share rows (same start, same position-independent interventions, from 0).
        var kindOf: [PositionIndependentKey: Int] = [:]
        let kind = requests.indices.map { i -> Int in
            guard plans[i].from == 0, let key = requests[i].interventions.positionIndependentKey else { return i }
            if let first = kindOf[key] { return first }
            kindOf[key] = i
            return i
        }
        let rank = requests.indices.map(order)
        let sorted = requests.indices.sorted { a, b in
            (plans[a].start, kind[a], rank[a], a) < (plans[b].start, kind[b], rank[b], b)
        }
        // common[k]: rows sorted[k] shares with sorted[k − 1] (0 across kinds), leaving each a row of its own.
        var common = [Int](repeating: 0, count: sorted.count)
        for k in sorted.indices.dropFirst() {
            let (a, b) = (sorted[k - 1], sorted[k])
            // Requests of one kind with another request are position-independent ones from row 0.
            guard kind[a] == kind[b], plans[a].start == plans[b].start else { continue }
            common[k] = commonRows(a, b, plans[a].start, min(tokens(a), tokens(b)) - 1)
        }
        var batches: [[PlannedRun]] = []
        var lo = 0, rows = 0
        for k in sorted.indices {
            if k > lo, plans[sorted[k]].start != plans[sorted[lo]].start {
                batches.append(prefixTree(sorted[lo..<k], common: common[lo..<k], plans: plans, tokens: tokens))
                lo = k; rows = 0
            }
            rows += tokens(sorted[k]) - plans[sorted[k]].from - (k > lo ? common[k] : 0)
            if rows >= Self.rowsPerBatch {
                batches.append(prefixTree(sorted[lo...k], common: common[lo...k], plans: plans, tokens: tokens))
                lo = k + 1; rows = 0
            }
        }
        if lo < sorted.count {
            batches.append(prefixTree(sorted[lo...], common: common[lo...], plans: plans, tokens: tokens))
        }
        return batches
    }

    /// The runs of one batch: `members` in batch order, `common[k]` the rows member k shares with member k − 1
    /// (0 for the first, and where they cannot share). Where a range of members all share rows d..<L beyond the
    /// rows d their parent run computed, with L − d ≥ `minimumSharedRows`, those rows become one shared run
    /// (under the first member's hooks — the same edits as every member's), which the range's sub-ranges
    /// continue, recursively; each member's own run holds its remaining rows.
    static func prefixTree(_ members: ArraySlice<Int>, common: ArraySlice<Int>, plans: [(start: Int, from: Int)],
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

/// The samples in the lexicographic order of their rows as token ids, an image position standing for its image
/// (images with the same pixel values are one image, numbered in order of first appearance), then position ids:
/// samples whose first rows are alike — and so resume with bit-equal residual streams at every layer — are
/// neighbours, from the inputs alone (the same order with or without a model run, and in every process). A sample
/// whose image span has no pixel values, or at index ≥ `distinctImagesFrom` (a plan's stand-ins for generated
/// items), has an image of its own.
final class SampleRowOrder {
    private let samples: [AnalysisSample]
    private let imagePositions: [Set<Int>]
    /// Per sample, the first sample with the same pixel values (−1 without pixel values).
    private let image: [Int]
    private lazy var ranks: [Int] = {
        var r = [Int](repeating: 0, count: samples.count)
        let sorted = samples.indices.sorted { a, b in
            let (ta, tb) = (samples[a].input.ids.count, samples[b].input.ids.count)
            for n in 0..<min(ta, tb) {
                let c = compareRow(a, b, row: n)
                if c != 0 { return c < 0 }
            }
            return ta != tb ? ta < tb : a < b
        }
        for (rank, s) in sorted.enumerated() { r[s] = rank }
        return r
    }()

    init(samples: [AnalysisSample], distinctImagesFrom: Int = .max) {
        self.samples = samples
        imagePositions = samples.map { Set((try? $0.input.spans.positions("image")) ?? []) }
        // Images grouped by a checksum of their bytes, then compared in full against each group's members.
        var groups: [UInt64: [Int]] = [:], image = [Int](repeating: -1, count: samples.count)
        for (i, sample) in samples.enumerated() {
            guard let pixels = sample.input.pixelValues, i < distinctImagesFrom else {
                if !imagePositions[i].isEmpty { image[i] = i }
                continue
            }
            let sum = checksum(pixels)
            let same = groups[sum, default: []].first { j in
                let other = samples[j].input.pixelValues!
                return other.shape == pixels.shape && pixels.scalars.withUnsafeBytes { x in
                    other.scalars.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 }
                }
            }
            if let same { image[i] = image[same] } else { image[i] = i; groups[sum, default: []].append(i) }
        }
        self.image = image
    }

    func rank(_ sample: Int) -> Int { ranks[sample] }

    /// How many first rows samples a and b have alike (ids, images, positions), at most `limit`.
    func commonRows(_ a: Int, _ b: Int, limit: Int) -> Int {
        var n = 0
        while n < limit, compareRow(a, b, row: n) == 0 { n += 1 }
        return n
    }

    /// Row `row` of samples a and b: token id, then (at image positions) the image, then the position ids.
    func compareRow(_ a: Int, _ b: Int, row: Int) -> Int {
        let x = samples[a].input, y = samples[b].input
        if x.ids[row] != y.ids[row] { return x.ids[row] < y.ids[row] ? -1 : 1 }
        let (ia, ib) = (imagePositions[a].contains(row), imagePositions[b].contains(row))
        if ia != ib { return ia ? 1 : -1 }
        if ia, image[a] != image[b] { return image[a] < image[b] ? -1 : 1 }
        for (px, py) in zip(x.positions.axes, y.positions.axes) where px[row] != py[row] {
            return px[row] < py[row] ? -1 : 1
        }
        return 0
    }
}

/// A checksum of a tensor's bits (a 64-bit multiply-xorshift over its floats; not a hash table's seeded hash).
private func checksum(_ t: Tensor) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(t.count)
    for v in t.scalars {
        h = (h ^ UInt64(v.bitPattern)) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 31
    }
    return h
}

/// How many first rows two resumed residual streams have alike, bit for bit and at the same positions, at most
/// `limit`.
func residualRowsAlike(_ x: Tensor, _ y: Tensor, _ px: PositionIDs, _ py: PositionIDs, limit: Int) -> Int {
    let width = x.columns * MemoryLayout<Float>.size
    return x.scalars.withUnsafeBytes { xb in
        y.scalars.withUnsafeBytes { yb in
            var n = 0
            while n < limit, memcmp(xb.baseAddress! + n * width, yb.baseAddress! + n * width, width) == 0,
                  zip(px.axes, py.axes).allSatisfy({ $0[n] == $1[n] }) { n += 1 }
            return n
        }
    }
}

/// `[T, KV, D]` → `[T, KV·D]`.
private func flatRows(_ t: Tensor) -> Tensor { t.reshaped([t.shape[0], t.count / max(t.shape[0], 1)]) }

/// The request observers of `AnalysisRunner.observingRequests`, behind a lock.
private final class LockedObservers: @unchecked Sendable {
    private let lock = NSLock()
    private var observers: [ObjectIdentifier: @Sendable ([ScoreRequest]) -> Void] = [:]
    func withLock<T>(_ body: (inout [ObjectIdentifier: @Sendable ([ScoreRequest]) -> Void]) -> T) -> T {
        lock.withLock { body(&observers) }
    }
}

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
