// The counting behind `VerifyPlan`: the rows, attention pairs and runs each stage's requests compute once
// `AnalysisRunner.scores` has batched them, their FLOPs, and their time from a `PlanCalibration`.
import ArbiterInterventions
import ArbiterModels
import Foundation

final class PlanCounter {
    let shape: PlanModelShape
    let calibration: PlanCalibration
    /// Whether the baselines keep keys and values (suffix runs need them).
    var keysKept = true
    /// Whether the baselines keep the residual streams entering each layer (else every call runs its items again
    /// for them, `AnalysisRunner.scoresRunningAgain`).
    var streamsKept = true
    /// Times a few of each stage's passes on the model itself, when it can run (`PlanPilot`).
    var pilot: PlanPilot?
    /// Measured / predicted seconds of the pilot's baselines (nil before the pilot ran them, or without one).
    var baselineScale: Double?
    /// Distinct items a stage's pilot may run over: as many as `PlanPilot.baselineBudgetSeconds` of baselines
    /// allow (set when the pilot times the baselines), at least `PlanPilot.itemsPerStage`.
    var pilotItems = PlanPilot.itemsPerStage

    init(shape: PlanModelShape, samples: [AnalysisSample], calibration: PlanCalibration) {
        self.shape = shape
        self.calibration = calibration
    }

    /// FLOP/s of one worker on matrix products (from the per-row calibration: products dominate a row).
    var flopRate: Double { shape.linearFLOPsPerRow / max(calibration.secondsPerRow, 1e-15) }

    /// One run of a batch: `rows` computed after `cached` rows of keys and values (a suffix's prefix or a shared run).
    struct Run { var rows: Int; var cached: Int }

    /// FLOPs and seconds of one batch resuming at `start`.
    func batchCost(_ runs: [Run], start: Int) -> (flops: Double, seconds: Double, layerRows: Double) {
        let c = calibration, s = shape
        let rows = Double(runs.reduce(0) { $0 + $1.rows })
        let pairs = runs.reduce(0.0) { $0 + Double($1.rows) * Double($1.cached + $1.rows) }
        let lastPairs = runs.reduce(0.0) { $0 + Double($1.cached + $1.rows) }
        let n = Double(runs.count), logits = n * s.logitFLOPsPerRow
        let cached = Double(runs.reduce(0) { $0 + $1.cached })
        // A batch of one run goes through the plain forward pass: every layer on every row.
        let full = Double(runs.count > 1 ? s.layers - 1 - start : s.layers - start)
        var flops = full * (rows * s.linearFLOPsPerRow + pairs * s.attentionFLOPsPerPair) + logits
        var seconds = full * (rows * c.secondsPerRow + pairs * c.secondsPerPair + n * c.secondsPerRun
                              + cached * c.secondsPerCachedRow)
            + logits / flopRate
        var layerRows = full * rows
        if runs.count > 1 {
            // The final layer: keys and values of every row, the rest for each run's last row only.
            let kvShare = s.keyValueFLOPsPerRow / s.linearFLOPsPerRow
            flops += rows * s.keyValueFLOPsPerRow + n * s.linearFLOPsPerRow + lastPairs * s.attentionFLOPsPerPair
            seconds += (rows * kvShare + n) * c.secondsPerRow + lastPairs * c.secondsPerPair + n * c.secondsPerRun
                + (cached + rows - n) * c.secondsPerCachedRow
            layerRows += n
        }
        return (flops, seconds, layerRows)
    }

    /// FLOPs of one pass over the whole prompt from layer 0 (no resume, suffix or sharing): the "before".
    func fullPassFLOPs(tokens t: Int) -> Double {
        let t = Double(t)
        return Double(shape.layers) * (t * shape.linearFLOPsPerRow + t * t * shape.attentionFLOPsPerPair)
            + shape.logitFLOPsPerRow
    }

    /// The cost of `requests` on `samples` through `scores`; samples at indices ≥ `distinctFrom` have images of
    /// their own (stand-ins for generated items). `keysKept` overrides the run's for a stage that gets keys and
    /// values of its own (the last-position screen).
    /// When the keys and values are not kept, requests that could recompute a suffix still do: `scores` runs
    /// their items' keys and values again, once per call (`AnalysisRunner.scoresRunningAgain`), so the stage's
    /// `calls` calls each add one baseline pass per distinct item of the stage; so do all calls when the
    /// residual streams are not kept.
    func stage(_ name: String, _ requests: [ScoreRequest], _ samples: [AnalysisSample], assumption: String,
               distinctFrom: Int = .max, keysKept: Bool? = nil, calls: Int = 1) -> PlanStage {
        let layers = shape.layers
        let wantSuffix = requests.contains { r in
            let p = r.firstRecomputed(in: samples[r.sample])
            return p > 0 && p < samples[r.sample].input.ids.count
        }
        // Keys and values run again: only where the run has a budget for them (the last-position screen's
        // stage says `keysKept` itself).
        let keysAgain = keysKept == nil && !self.keysKept && wantSuffix
        var streamsAgain = keysKept == nil && !streamsKept
            && requests.contains { $0.startLayer > 0 && $0.startLayer < layers }
        // As the runner: streams wanted alone, and resuming costs more than it saves → every pass from layer 0.
        let fromEmbeddings = streamsAgain && !keysAgain
            && !AnalysisRunner.resumesFromStreams(requests, tokens: { samples[$0].input.ids.count }, layers: layers)
        if fromEmbeddings { streamsAgain = false }
        let again = keysAgain || streamsAgain
        let kept = keysKept ?? (self.keysKept || keysAgain)
        let plans = requests.map { r -> (start: Int, from: Int) in
            let t = samples[r.sample].input.ids.count, p = r.firstRecomputed(in: samples[r.sample])
            let start = r.startLayer < layers && !fromEmbeddings ? r.startLayer : 0
            let suffix = p > 0 && p < t && kept
            return (start, suffix ? p : 0)
        }
        // Rows compared as token ids and images where the runner compares the residual rows they make.
        let order = SampleRowOrder(samples: samples, distinctImagesFrom: distinctFrom)
        let batches = AnalysisRunner.batchPlan(requests, plans: plans,
                                               tokens: { samples[requests[$0].sample].input.ids.count },
                                               order: { order.rank(requests[$0].sample) },
                                               commonRows: { a, b, _, limit in
            order.commonRows(requests[a].sample, requests[b].sample, limit: limit)
        })
        var flops = 0.0, total = 0.0, longest = 0.0, layerRows = 0.0
        for batch in batches {
            let start = plans[batch[0].source].start
            // Each run computes its rows after the rows before them (a suffix's prefix, or its parent runs').
            let runs = batch.map { Run(rows: $0.rows.count, cached: $0.rows.lowerBound) }
            let cost = batchCost(runs, start: start)
            flops += cost.flops
            total += cost.seconds
            longest = max(longest, cost.seconds)
            layerRows += cost.layerRows
        }
        let before = requests.reduce(0.0) { $0 + fullPassFLOPs(tokens: samples[$1.sample].input.ids.count) }
        var seconds = requests.isEmpty ? 0 : max(total / Double(max(calibration.workers, 1)), longest)
        var note = assumption
        if again {
            let distinct = Array(Set(requests.map(\.sample))).sorted().map { samples[$0] }
            let kv = plainBaselineStage(count: calls * distinct.count, like: distinct)
            flops += kv.flops
            seconds += kv.seconds
            layerRows += kv.layerRows
            let what = [streamsAgain ? "residual streams" : nil, keysAgain ? "keys and values" : nil]
                .compactMap { $0 }.joined(separator: " and ")
            note = (note.isEmpty ? "" : note + "; ") + "\(what) over the budget: each call's items run "
                + "again for them (\(kv.passes) passes)"
        }
        if fromEmbeddings {
            note = (note.isEmpty ? "" : note + "; ") + "residual streams over the budget: running them again would "
                + "cost more than resuming saves, so every pass runs from layer 0 (on the kept embeddings)"
        }
        var out = PlanStage(name: name, passes: requests.count, layerRows: layerRows, flops: flops,
                            flopsBefore: before, seconds: seconds, assumption: note)
        if let pilot, !requests.isEmpty {
            // The pilot's requests: enough for about `PlanPilot.secondsPerStage` of predicted time.
            let perRequest = seconds / Double(requests.count)
            let count = max(2 * calibration.workers, Int(PlanPilot.secondsPerStage / max(perRequest, 1e-9)))
            let subset = PlanPilot.subset(requests, count: count, items: pilotItems)
            self.pilot = nil
            let predicted = stage(name, subset, samples, assumption: "", distinctFrom: distinctFrom,
                                  keysKept: keysKept).seconds
            self.pilot = pilot
            // Baselines as the run keeps them (keys and values run again by the pilot's runner, as by the run's).
            let keep = keysKept ?? self.keysKept
            if predicted > 0, let measured = try? pilot.time(subset, samples: samples, keepKeysValues: keep,
                                                             keepStreams: keysKept != nil || streamsKept) {
                out.pilotScale = measured / predicted
                out.seconds *= measured / predicted
            }
        }
        return out
    }

    /// `baselineStage` without the pilot's scale (passes inside another stage, whose pilot times them).
    func plainBaselineStage(count: Int, like: [AnalysisSample]) -> PlanStage {
        let pilot = self.pilot, scale = baselineScale
        self.pilot = nil
        baselineScale = nil
        defer { self.pilot = pilot; baselineScale = scale }
        return baselineStage(count: count, like: like)
    }

    /// `count` baseline passes over items like `like` (cycled): every layer on every row, the vision tower once.
    func baselineStage(count: Int, like: [AnalysisSample]) -> PlanStage {
        var flops = 0.0, seconds = 0.0, layerRows = 0.0
        for k in 0..<(like.isEmpty ? 0 : count) {
            let sample = like[k % like.count], t = sample.input.ids.count
            let image = (try? sample.input.spans.positions("image").count) ?? 0
            let vision = shape.vision?.flops(imageTokens: image) ?? 0
            let tt = Double(t)
            flops += fullPassFLOPs(tokens: t) + vision
            layerRows += Double(shape.layers) * tt
            seconds += Double(shape.layers) * (tt * calibration.secondsPerRow + tt * tt * calibration.secondsPerPair
                                               + calibration.secondsPerRun)
                + (vision + shape.logitFLOPsPerRow) / flopRate
        }
        var out = PlanStage(name: "baselines (+ vision tower)", passes: like.isEmpty ? 0 : count,
                            layerRows: layerRows, flops: flops, flopsBefore: flops,
                            seconds: seconds / Double(max(calibration.workers, 1)), assumption: "")
        if baselineScale == nil, let pilot, !like.isEmpty, count > 0 {
            // The first items' baselines, timed as the run computes them (all workers), scale the prediction of
            // every baseline stage (the top-up's too).
            let first = Array(like.prefix(PlanPilot.itemsPerStage))
            self.pilot = nil
            let predicted = baselineStage(count: first.count, like: first).seconds
            self.pilot = pilot
            if predicted > 0, let measured = try? pilot.computeBaselines(first, keepKeysValues: keysKept,
                                                                         keepStreams: streamsKept) {
                baselineScale = measured / predicted
                let perItem = measured / Double(max(first.count, 1))
                pilotItems = max(PlanPilot.itemsPerStage,
                                 Int(min(PlanPilot.baselineBudgetSeconds / max(perItem, 1e-9), 1e9)))
            }
        }
        if let baselineScale, count > 0 {
            out.pilotScale = baselineScale
            out.seconds *= baselineScale
        }
        return out
    }

    /// Logit lens (every layer's readout rows unembedded, conflict items, one worker), attribution and routing
    /// (reductions over what the baselines kept: no passes).
    func readoutStage(_ samples: [AnalysisSample]) -> PlanStage {
        var flops = 0.0
        for s in samples where s.kind == "conflict" && s.target != nil {
            let readout = ((try? s.input.spans.positions("instruction").count) ?? 0) + 1
            flops += Double(shape.layers * readout) * shape.logitFLOPsPerRow
        }
        // Attribution: per head and layer a dot product with the answer direction, twice (all and calibration).
        flops += 2 * Double(samples.count * shape.layers * (shape.heads + 2) * shape.hidden * 2)
        return PlanStage(name: "logit lens, attribution, routing", passes: 0, layerRows: 0, flops: flops,
                         flopsBefore: flops, seconds: flops / flopRate, assumption: "")
    }

    /// Bytes a baseline keeps for the whole run (keys and values and residual streams apart): the readout
    /// queries' attention mass on image and context per head (two Doubles) and their residual rows, per-layer
    /// outputs and per-head results at the last position, logits.
    func baselineBytes(_ sample: AnalysisSample) -> Int {
        let s = shape
        let readout = ((try? sample.input.spans.positions("instruction").count) ?? 0) + 1
        let perLayer = s.heads * readout * 4 + readout * s.hidden + 2 * s.hidden + s.heads * s.hidden
        let floats = s.layers * perLayer
            + s.hidden + s.vocabulary
        return floats * MemoryLayout<Float>.size
    }

    /// Bytes of the residual streams entering every layer of a sample.
    func streamBytes(_ sample: AnalysisSample) -> Int {
        sample.input.ids.count * shape.layers * shape.hidden * MemoryLayout<Float>.size
    }

    /// Bytes of one batch's activations: its rows through one layer's products, one run's attention scores, and
    /// a baseline pass's per-head results of one layer (`[T, H, d]`, as computed and as its observer saw them).
    func batchActivationBytes(maxTokens t: Int) -> Int {
        let s = shape, rows = max(AnalysisRunner.rowsPerBatch, t)
        let perRow = 4 * s.hidden + (s.heads + 2 * s.keyValueHeads) * s.headDim + 3 * s.intermediate
        return (rows * perRow + s.heads * t * t + 2 * t * s.heads * s.hidden) * MemoryLayout<Float>.size
    }
}
