// What `arbiter verify` will cost, before it runs: per analysis stage the passes, the FLOPs of what is really
// recomputed (layers resumed, suffix positions, shared prefixes computed once, attention's query × key
// rectangles, the vision tower once per item) and of the same passes over the whole prompt from layer 0
// ("before"), the predicted time from a calibration of the model's own layer shapes, and the peak memory.
// The passes are the stages' own requests (`InformationFlow.requests`, `Heads.rankingRequests`,
// `Heads.setRequests`, `AnalysisSuite.split`); where a stage depends on earlier results, the plan states the
// assumption it makes (`PlanAssumptions`).
import ArbiterInterventions
import ArbiterModels
import Foundation

/// What the plan assumes about results it cannot know before the run.
public struct PlanAssumptions: Sendable, Codable, Equatable {
    /// Share of conflict items the model gets wrong at baseline: α is chosen on the calibration failures and
    /// amplification runs on the held-out ones (worst case 1: every item fails).
    public var failureRate = 0.5
    /// Known failure counts (e.g. from an earlier run) replace `failureRate`.
    public var calibrationFailed: Int?
    public var heldOutFailed: Int?
    /// First layer of the top head set, where every head-set pass resumes (the random sets match its layers):
    /// 0, the worst case, unless known.
    public var topSetFirstLayer = 0
    /// The top head set itself, when known (e.g. from an earlier run's results: `verify --plan --assume-from`):
    /// the random sets are then drawn exactly as the run draws them, layer for layer; it overrides
    /// `topSetFirstLayer`.
    public var topSet: [HeadIndex]?
    /// Whether the run can generate conflict items to top up amplification's failures (generated data: yes).
    public var canGenerate = true

    public init() {}
}

/// One analysis stage of the plan.
public struct PlanStage: Sendable, Codable, Equatable {
    public var name: String
    /// Forward passes (baselines: one per item; intervened passes: one per request).
    public var passes: Int
    /// Token rows through one decoder layer, summed over layers: what is recomputed.
    public var layerRows: Double
    /// FLOPs of what is computed, and of the same passes each over the whole prompt from layer 0.
    public var flops: Double
    public var flopsBefore: Double
    /// Predicted wall-clock seconds on this machine (all workers).
    public var seconds: Double
    /// What the stage's numbers assume (empty: exact given the items).
    public var assumption: String
    /// Measured / predicted seconds of the stage's pilot passes (`PlanPilot`), by which `seconds` was scaled;
    /// nil without a pilot (a plan from config.json alone).
    public var pilotScale: Double? = nil
}

/// Peak memory of a run, in bytes.
public struct PlanMemory: Sendable, Codable, Equatable {
    /// Weights (memory-mapped, counted once).
    public var weights: Int
    /// What the baselines keep for the whole run (readout rows and their attention mass on image and context,
    /// last-position outputs and per-head results).
    public var baselines: Int
    /// Residual streams entering each layer: every item's, kept for the whole run, or over the budget every
    /// item's layer-0 stream (the embeddings) plus the largest chunk of items whose streams a call runs again.
    public var streams: Int
    /// Keys and values the baselines keep (when over the budget: the largest chunk of items whose keys and values
    /// a stage runs again for its suffix runs, or a last-position head screen's).
    public var keysValues: Int
    /// Activations of the batches running side by side (one per worker).
    public var activations: Int
    public var peak: Int { weights + baselines + streams + keysValues + activations }
}

/// Seconds per unit of work of the model's layer shapes on this machine, with every worker busy (so memory
/// bandwidth is shared as in a run); see `PlanCalibration.measure`.
public struct PlanCalibration: Sendable, Codable, Equatable {
    public var workers: Int
    /// Per token row through one layer (matrix products and elementwise work).
    public var secondsPerRow: Double
    /// Per (query row, key) pair of one layer's attention, all heads.
    public var secondsPerPair: Double
    /// Per run through one layer (hooks, attention calls, copies).
    public var secondsPerRun: Double
    /// Per cached row (a suffix run's prefix, a shared run's rows) of one layer: copied into the run's keys and
    /// values.
    public var secondsPerCachedRow: Double
    /// How long the calibration took.
    public var seconds: Double
    /// The rows of the timed batches (small for big models, to stay within seconds).
    public var rows: Int
    /// The rows of the batch `secondsPerRow` was timed on: `rows`, or for a big model (`rows` below
    /// `AnalysisRunner.rowsPerBatch`) one layer over a full batch, timed apart.
    public var productRows: Int

    public init(workers: Int, secondsPerRow: Double, secondsPerPair: Double, secondsPerRun: Double,
                secondsPerCachedRow: Double = 0, seconds: Double = 0, rows: Int = 0, productRows: Int? = nil) {
        self.productRows = productRows ?? rows
        self.secondsPerCachedRow = secondsPerCachedRow
        self.workers = workers
        self.secondsPerRow = secondsPerRow
        self.secondsPerPair = secondsPerPair
        self.secondsPerRun = secondsPerRun
        self.seconds = seconds
        self.rows = rows
    }
}

public struct VerifyPlan: Sendable, Codable, Equatable {
    /// The JSON schema's name and version (`docs/verify-plan.md`); bumped on any change of the fields.
    public static let schema = "arbiter-verify-plan/4"
    public var schema = VerifyPlan.schema
    public var model: String
    public var shape: PlanModelShape
    public var dataset: String
    public var items: Int
    /// Mean and largest prompt length (tokens), and image tokens per prompt (mean).
    public var meanTokens: Double
    public var maxTokens: Int
    public var meanImageTokens: Double
    public var keepsKeysValues: Bool
    /// Whether the baselines keep the residual streams (within `--stream-memory`; else run again per call).
    public var keepsStreams: Bool = true
    public var configuration: AnalysisConfiguration
    public var assumptions: PlanAssumptions
    public var calibration: PlanCalibration
    public var stages: [PlanStage]
    public var memory: PlanMemory
    /// Totals over the stages.
    public var passes: Int
    public var flops: Double
    public var flopsBefore: Double
    public var seconds: Double
    /// The same with every assumption at its worst case (every item fails, the top-up's cap spent).
    public var worstCaseFLOPs: Double
    public var worstCaseSeconds: Double
    /// Seconds the pilot spent on the model (nil: no pilot, a plan from config.json alone).
    public var pilotSeconds: Double? = nil

    public var ratio: Double { flops > 0 ? flopsBefore / flops : 0 }

    /// JSON with sorted keys.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return try encoder.encode(self)
    }
}

extension VerifyPlan {
    /// The plan of `AnalysisSuite.run` on `samples` (already prepared, as the run prepares them).
    /// `keyValueBudget`: as the run's (keys and values are kept only within it). `preparationSeconds`: what
    /// loading the model and preparing the items took while planning (the run spends it too, and per generated
    /// item again on a top-up).
    public static func make(model: String, shape: PlanModelShape, samples: [AnalysisSample], dataset: String,
                            configuration c: AnalysisConfiguration = AnalysisConfiguration(),
                            assumptions a: PlanAssumptions = PlanAssumptions(), calibration: PlanCalibration,
                            keyValueBudget: Int = 1 << 30,
                            streamBudget: Int = AnalysisRunner.defaultStreamBudget, preparationSeconds: Double = 0,
                            pilot: PlanPilot? = nil) throws -> VerifyPlan {
        guard !samples.isEmpty else { throw AnalysisError.meaninglessRun("no items to plan (the dataset is empty)") }
        let counter = PlanCounter(shape: shape, samples: samples, calibration: calibration)
        counter.pilot = pilot
        let kvBytes = samples.reduce(0) { $0 + $1.input.ids.count } * shape.layers * 2 * shape.keyValueHeads
            * shape.headDim * MemoryLayout<Float>.size
        let keepKV = kvBytes <= keyValueBudget
        counter.keysKept = keepKV
        // As the run's runner: keys and values run again, in chunks, for passes that recompute a suffix.
        pilot?.runner.keyValueBudget = keepKV ? nil : keyValueBudget
        // Residual streams: kept within their budget, else run again per call, a chunk of items at a time.
        let streamBytes = samples.reduce(0) { $0 + counter.streamBytes($1) }
        let keepStreams = streamBytes <= streamBudget
        counter.streamsKept = keepStreams
        pilot?.runner.streamBudget = streamBudget
        let preparation = PlanStage(name: "model and items (measured while planning)", passes: 0, layerRows: 0,
                                    flops: 0, flopsBefore: 0, seconds: preparationSeconds, assumption: "")
        let perItem = preparationSeconds / Double(samples.count)
        func withPreparation(_ stages: [PlanStage]) -> [PlanStage] {
            [preparation] + stages.map { s in
                var s = s
                if s.name.hasPrefix("item top-up") { s.seconds += Double(s.passes) * perItem }
                return s
            }
        }
        let plan = withPreparation(try stages(counter: counter, samples: samples, configuration: c, assumptions: a))
        var worst = a
        worst.failureRate = 1
        worst.calibrationFailed = nil
        worst.heldOutFailed = nil
        worst.topSetFirstLayer = 0
        worst.topSet = nil
        // The top-up's worst case is its cap spent, which needs failures too few: counted apart below.
        // The worst case reuses the pilot's scales (per stage name) instead of piloting again.
        counter.pilot = nil
        let scales = Dictionary(plan.compactMap { s in s.pilotScale.map { (s.name, $0) } },
                                uniquingKeysWith: { a, _ in a })
        let worstStages = withPreparation(try stages(counter: counter, samples: samples, configuration: c,
                                                     assumptions: worst, candidatesFirst: true))
            .map { s -> PlanStage in
                var s = s
                // Stage names carry no failure rate, so the run's stage and its worst case match by name.
                if let scale = scales[s.name] { s.seconds *= scale; s.pilotScale = scale }
                return s
            }
        let cap = counter.baselineStage(count: a.canGenerate ? c.extraConflictCap : 0, like: samples)
        let topUpCap = cap.flops, topUpCapSeconds = cap.seconds + Double(cap.passes) * perItem

        let tokens = samples.map { $0.input.ids.count }
        let screenKV = try screenKeyValueBytes(samples, shape: shape, configuration: c, budget: keyValueBudget)
        // Not kept: the largest chunk of items whose keys and values a stage runs again holds them at once.
        let perItemKV = samples.map {
            $0.input.ids.count * shape.layers * 2 * shape.keyValueHeads * shape.headDim * MemoryLayout<Float>.size
        }
        let chunkKV = Heads.keyValueChunks(perItemKV, budget: keyValueBudget).map { perItemKV[$0].reduce(0, +) }
            .max() ?? 0
        // Not kept: every baseline keeps layer 0's (the embeddings), and a call holds the streams (and the keys and
        // values, when over their budget too) of a chunk.
        let chunkStreams = keepStreams ? streamBytes
            : streamBytes / max(shape.layers, 1)
                + (Heads.keyValueChunks(samples.indices.map {
                    counter.streamBytes(samples[$0]) + (keepKV ? 0 : perItemKV[$0])
                }, budget: streamBudget + (keepKV ? 0 : keyValueBudget))
                    .map { chunk in chunk.reduce(0) { $0 + counter.streamBytes(samples[$1]) } }.max() ?? 0)
        let imageTokens = samples.map { (try? $0.input.spans.positions("image").count) ?? 0 }
        let memory = PlanMemory(
            weights: shape.weightBytes,
            baselines: samples.reduce(0) { $0 + counter.baselineBytes($1) },
            streams: chunkStreams,
            keysValues: keepKV ? kvBytes : max(screenKV, chunkKV),
            activations: calibration.workers * counter.batchActivationBytes(maxTokens: tokens.max() ?? 0))
        var made = VerifyPlan(
            model: model, shape: shape, dataset: dataset, items: samples.count,
            meanTokens: Double(tokens.reduce(0, +)) / Double(tokens.count), maxTokens: tokens.max() ?? 0,
            meanImageTokens: Double(imageTokens.reduce(0, +)) / Double(samples.count), keepsKeysValues: keepKV,
            keepsStreams: keepStreams,
            configuration: c, assumptions: a, calibration: calibration, stages: plan, memory: memory,
            passes: plan.reduce(0) { $0 + $1.passes }, flops: plan.reduce(0) { $0 + $1.flops },
            flopsBefore: plan.reduce(0) { $0 + $1.flopsBefore }, seconds: plan.reduce(0) { $0 + $1.seconds },
            worstCaseFLOPs: worstStages.reduce(0) { $0 + $1.flops } + topUpCap,
            worstCaseSeconds: worstStages.reduce(0) { $0 + $1.seconds } + topUpCapSeconds)
        made.pilotSeconds = pilot?.seconds
        return made
    }

    /// The stages of `AnalysisSuite.runSingleThreaded`, in its order, with their requests. `candidatesFirst`: a
    /// two-stage ranking's candidates assumed in the first layers (the worst case) instead of spread evenly.
    static func stages(counter: PlanCounter, samples: [AnalysisSample], configuration c: AnalysisConfiguration,
                       assumptions a: PlanAssumptions, candidatesFirst: Bool = false) throws -> [PlanStage] {
        let layers = counter.shape.layers, heads = counter.shape.heads
        let (calibration, heldOut) = try AnalysisSuite.split(samples, configuration: c)
        var out: [PlanStage] = []
        out.append(counter.baselineStage(count: samples.count, like: samples))

        // Information flow: every paper edge over the conflict items (held-out, then calibration).
        let flowSamples = (heldOut + calibration).map { samples[$0] }
        let width = c.window ?? InformationFlow.defaultWindow(layers: layers)
        guard width >= 1 && width <= layers else {
            throw AnalysisError.invalidParameter(
                "knockout window \(width) must be between 1 and the model's \(layers) layers")
        }
        func conflict(_ s: [AnalysisSample]) -> [Int] {
            s.indices.filter { s[$0].kind == "conflict" && s[$0].target != nil }
        }
        let flowConflict = conflict(flowSamples)
        var flow: [ScoreRequest] = []
        for edge in FlowEdge.paperEdges {
            let usable = InformationFlow.usable(flowSamples, flowConflict, edge: edge)
            flow += try InformationFlow.requests(flowSamples, usable: usable, edge: edge, width: width, layers: layers)
        }
        out.append(counter.stage("information flow (knockouts)", flow, flowSamples, assumption: ""))
        out.append(counter.readoutStage(samples))

        // Head ranking: single-head ablations over the calibration conflict items.
        let calSamples = calibration.map { samples[$0] }
        let calConflict = conflict(calSamples)
        if let method = c.headRanking {
            out += twoStageRankingStages(counter: counter, method: method, samples: calSamples, conflict: calConflict,
                                         positions: c.headPositions, candidatesFirst: candidatesFirst)
        } else {
            let ranking = (0..<layers).flatMap {
                Heads.rankingRequests(calConflict, layer: $0, heads: heads, positions: c.headPositions)
            }
            out.append(counter.stage("head ranking (single-head ablation)", ranking, calSamples, assumption: ""))
        }

        // The top set and the random sets: which heads is a result of the ranking; the passes resume at the set's
        // first layer, assumed `topSetFirstLayer`.
        let total = layers * heads
        let size = HeadRanking.setSize(fraction: c.headFraction, total: total)
        var first = min(max(a.topSetFirstLayer, 0), layers - 1)
        var top = (0..<size).map { HeadIndex(layer: min(first + $0 / heads, layers - 1), head: $0 % heads) }
        if let known = a.topSet {
            guard known.count == size, Set(known).count == size else {
                throw AnalysisError.invalidParameter(
                    "the assumed top head set has \(known.count) heads (\(Set(known).count) distinct), but "
                    + "\(c.headFraction) of the model's \(total) heads is \(size): it comes from a run with "
                    + "another --head-fraction or model")
            }
            let inModel = { (h: HeadIndex) in (0..<layers).contains(h.layer) && (0..<heads).contains(h.head) }
            if let outside = known.first(where: { !inModel($0) }) {
                throw AnalysisError.invalidParameter(
                    "the assumed top head set names head \(outside), outside the model's \(layers) layers × "
                    + "\(heads) heads")
            }
            top = known
            first = known.map(\.layer).min() ?? 0
        }
        let sets = [top] + Heads.randomSets(top: top, layers: layers, heads: heads, count: c.randomHeadSets,
                                           seed: c.seed &+ 7).sets
        let heldSamples = heldOut.map { samples[$0] }
        let heldConflict = conflict(heldSamples)
        let layerNote = a.topSet != nil ? "the top set of the earlier run (first layer \(first))"
            : a.topSetFirstLayer == 0 ? "the top set starts at layer 0 (worst case)"
            : "the top set starts at layer \(first)"
        let positions = c.headPositions
        let blocking = Heads.setRequests(sets.map { ($0, Heads.blocking($0, at: positions)) }, heldConflict)
        out.append(counter.stage("head blocking (top + \(sets.count - 1) random sets)", blocking, heldSamples,
                                 assumption: layerNote, calls: 2))
        let ability = Heads.abilityKinds.flatMap { kind in heldSamples.indices.filter { heldSamples[$0].kind == kind } }
        out.append(counter.stage("specificity (ability under blocking)",
                                 ability.isEmpty ? []
                                    : Heads.setRequests([(top, Heads.blocking(top, at: positions))], ability),
                                 heldSamples, assumption: layerNote))

        // α on the calibration failures, amplification on the held-out ones (+ generated ones when too few).
        func failed(_ known: Int?, of members: [Int]) -> [Int] {
            let n = known ?? Int((a.failureRate * Double(members.count)).rounded())
            return Array(members.prefix(min(max(n, 0), members.count)))
        }
        let rateNote = "\(Int((a.failureRate * 100).rounded()))% of conflict items fail at baseline"
        let calFailed = failed(a.calibrationFailed, of: calConflict)
        let grid = c.alphaGrid
        let alpha = calFailed.isEmpty || grid.count < 2 ? []
            : Heads.setRequests(sets.flatMap { s in
                                    grid.map { (s, Heads.amplifying(s, factor: Float($0), at: positions)) }
                                },
                                calFailed)
        out.append(counter.stage("α selection (\(sets.count) sets × \(grid.count) α)", alpha, calSamples,
                                 assumption: a.calibrationFailed == nil ? rateNote + "; " + layerNote : layerNote))
        let heldFailed = failed(a.heldOutFailed, of: heldConflict)
        var topUp = 0
        if heldFailed.count < c.minimumFailed && a.canGenerate {
            // Rounds of `extraConflictBatch` items until enough fail, at most the cap (worst case: the cap).
            let perRound = max(a.failureRate * Double(c.extraConflictBatch), 1e-9)
            let rounds = Int((Double(c.minimumFailed - heldFailed.count) / perRound).rounded(.up))
            topUp = min(c.extraConflictCap, rounds * c.extraConflictBatch)
        }
        let extraFailures = min(Int((a.failureRate * Double(topUp)).rounded()),
                                max(c.minimumFailed - heldFailed.count, 0) + c.extraConflictBatch)
        var topUpStage = counter.baselineStage(count: topUp, like: heldConflict.map { heldSamples[$0] })
        topUpStage.name = "item top-up (generated conflict items)"
        topUpStage.assumption = topUp == 0 ? "" : rateNote + "; worst case: \(c.extraConflictCap) items"
        out.append(topUpStage)
        // Generated failures stand in as copies of held-out conflict items (same lengths, own images).
        let stand = heldConflict.isEmpty ? []
            : (0..<extraFailures).map { heldSamples[heldConflict[$0 % heldConflict.count]] }
        let ampSamples = heldSamples + stand
        let ampFailed = heldFailed + stand.indices.map { heldSamples.count + $0 }
        let amplification = ampFailed.isEmpty ? []
            : Heads.setRequests(sets.map { ($0, Heads.amplifying($0, factor: Float(grid.first ?? 1), at: positions)) },
                                ampFailed)
        out.append(counter.stage("amplification (\(sets.count) sets)", amplification, ampSamples,
                                 assumption: (a.heldOutFailed == nil ? rateNote + "; " : "") + layerNote,
                                 distinctFrom: heldSamples.count))
        return out
    }
}

extension VerifyPlan {
    /// Text tokens of a default-data prompt assumed when no tokenizer can count them (a LLaVA-1.5 prompt of the
    /// generated items is about 74 text tokens with Llama's tokenizer: 576 image tokens + 74 = 650).
    public static let defaultTextTokens = 74
    /// Tokens of the layout's text before the image (LLaVA-1.5's "USER: ").
    static let syntheticLead = 5

    /// Samples of `promptTokens` tokens each (image tokens included, for items with an image) for plans made from
    /// a config alone: after `syntheticLead` tokens the image, then the text split into context (40%),
    /// instruction (20%), question (20%), constraint (the rest) and the last position. Every item's text and image
    /// differ (only the lead is shared, as in generated data).
    public static func syntheticSamples(_ items: [ProbeItem], promptTokens: Int,
                                        imageTokens: Int) throws -> [AnalysisSample] {
        try items.enumerated().map { k, item in
            let image = item.image == nil ? 0 : imageTokens
            let t = max(promptTokens - (item.image == nil ? imageTokens : 0), syntheticLead + 6)
            let text = t - syntheticLead - image
            guard text >= 5 else {
                throw AnalysisError.invalidParameter("\(promptTokens) prompt tokens cannot hold the \(imageTokens) "
                                                     + "image tokens and the prompt's 5 text spans")
            }
            let context = text * 2 / 5, instruction = max(text / 5, 1), question = max(text / 5, 1)
            var at = syntheticLead + image
            var spans: [String: [Range<Int>]] = [:]
            if image > 0 { spans["image"] = [syntheticLead..<at] }
            for (name, n) in [("context", context), ("instruction", instruction), ("question", question),
                              ("constraint", t - 1 - at - context - instruction - question)] where n > 0 {
                spans[name] = [at..<(at + n)]
                at += n
            }
            // Ids: the shared lead, a placeholder per image position, then text ids of this item.
            let ids = (0..<t).map { p in p < syntheticLead ? p : p < syntheticLead + image ? -1 : 1000 + k * t + p }
            let input = PreparedInput(ids: ids, spans: try TokenSpans(tokenCount: t, spans: spans), image: nil,
                                      text: "")
            return AnalysisSample(id: item.id, kind: item.kind, target: item.target, input: input)
        }
    }
}
