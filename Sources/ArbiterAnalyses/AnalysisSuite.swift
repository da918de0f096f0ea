// Runs every analysis on one model and dataset, with seeded splits, and returns one results value that the
// claims, `arbiter verify` and the report all read.
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation

public struct AnalysisConfiguration: Sendable, Codable, Equatable {
    public var seed: UInt64 = 2602_03677
    /// Fraction of conflict items used for head identification and α selection (the rest is held out).
    public var calibrationFraction: Double = 0.5
    public var headFraction: Double = 0.05
    /// Random head sets of the blocking/amplification controls (the claims need ≥ 200 for a verdict).
    public var randomHeadSets: Int = 200
    public var alphaGrid: [Double] = [1.5, 2, 3, 4, 6]
    /// Knockout window (nil: the default for the model's depth).
    public var window: Int? = nil
    public var minimumPerTarget: Int = 4
    /// Amplification needs this many failed held-out conflict items (the claims' minimum); when the held-out
    /// split has fewer and the run can generate items, more conflict items are generated — batches of
    /// `extraConflictBatch`, at most `extraConflictCap` — and their failures added to the amplification's.
    public var minimumFailed: Int = 30
    public var extraConflictBatch: Int = 200
    public var extraConflictCap: Int = 1000
    /// Head ranking in two stages (a screen, then exact ablation of its first C heads: `TwoStageRanking`); nil:
    /// exact single-head ablation of every head, the default (and then absent from results.json, so results
    /// written before the option read as exact).
    public var headRanking: TwoStageRanking? = nil
    /// Where every head intervention (ranking ablations, blocking, amplification) acts: nil, the default
    /// protocol, at every position; `.afterImage` only at the positions after the image (docs/metrics.md,
    /// "Head interventions after the image"), which lets each pass recompute those positions only. An
    /// approximation of the protocol, off by default (and then absent from results.json).
    public var headPositions: HeadPositions? = nil

    public init() {}
}

/// Positions head interventions act at (`AnalysisConfiguration.headPositions`).
public enum HeadPositions: String, Sendable, Codable, CaseIterable {
    /// Every position: the default protocol.
    case all
    /// The positions after the image's last (the text context, instruction, question, constraint and the
    /// template between them): the image tokens and what comes before them compute as without intervention.
    case afterImage = "after-image"
}

/// Everything measured on one model.
public struct AnalysisResults: Sendable, Codable {
    public var model: String
    public var modelType: String
    public var dataset: String
    /// The prompt layout's name and fingerprint (`PromptLayout.fingerprint`).
    public var layout: String
    public var layoutFingerprint: String
    public var configuration: AnalysisConfiguration
    public var layers: Int
    public var headsPerLayer: Int
    public var calibrationIDs: [String]
    public var heldOutIDs: [String]
    public var skipped: [String]
    public var following: ModalityFollowingResult
    public var flow: InformationFlowResult
    public var routing: AttentionRoutingResult
    public var lens: LogitLensResult
    public var attribution: AttributionResult
    public var ranking: HeadRanking
    public var interventions: HeadInterventionResult
    public var seconds: Double

    /// JSON with sorted keys; NaN/±inf written as strings so the file stays valid JSON.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf",
                                                                      nan: "nan")
        return try encoder.encode(self)
    }

    public static func decode(_ data: Data, file: String) throws -> AnalysisResults {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf",
                                                                        negativeInfinity: "-inf", nan: "nan")
        do { return try decoder.decode(AnalysisResults.self, from: data) } catch let e as DecodingError {
            throw FormatError(.malformed, file: file, JSONFile.describe(e))
        }
    }
}

public enum AnalysisSuite {
    /// Prepares the items (skipping bad ones only when `skipBad`), splits them, and runs analyses 1–7.
    /// `keyValueBudget`: bytes the baselines may spend on cached keys and values (a speed-up only; the
    /// results are the same without it). `streamBudget`: bytes they may keep of the residual streams entering
    /// each layer; over it, none are kept and every stage computes its items' again, a chunk within it at a time
    /// (the same values; memory bounded whatever the item count).
    /// `moreConflictItems(round, count)`: `count` new conflict items (ids unique across rounds), for runs that
    /// can generate them (nil for a fixed dataset): used only when amplification has too few failures.
    public static func run(session: ModelSession, items: [ProbeItem], dataset: String,
                           configuration c: AnalysisConfiguration = AnalysisConfiguration(),
                           policy: ItemPolicy = ItemPolicy(), keyValueBudget: Int = 1 << 30,
                           streamBudget: Int = AnalysisRunner.defaultStreamBudget,
                           moreConflictItems: ((Int, Int) throws -> [ProbeItem])? = nil,
                           sharding: PassSharding? = nil,
                           progress: @escaping (String) -> Void = { _ in }) throws -> AnalysisResults {
        if let method = c.headRanking, method.candidates < 1 {
            throw AnalysisError.invalidParameter("head ranking \(method): the candidate count must be ≥ 1")
        }
        // One BLAS thread throughout (parallelism comes from running samples side by side): OpenBLAS's
        // results depend, in the last bits, on its thread count, so this keeps every number independent of
        // the machine's cores and of other BLAS users in the process.
        return try BLAS.withSingleThread {
            try runSingleThreaded(session: session, items: items, dataset: dataset, configuration: c, policy: policy,
                                  keyValueBudget: keyValueBudget, streamBudget: streamBudget,
                                  moreConflictItems: moreConflictItems, sharding: sharding, progress: progress)
        }
    }

    /// Failed conflict items from newly generated ones, until `have` + their count reaches the minimum or the
    /// cap is spent: the samples, their baselines, and how many conflict items were generated.
    static func extraFailures(have: Int, runner: AnalysisRunner, configuration c: AnalysisConfiguration,
                              policy: ItemPolicy, keepStreams: Bool, more: (Int, Int) throws -> [ProbeItem],
                              progress: (String) -> Void) throws
        -> (samples: [AnalysisSample], baselines: [BaselineRun], generated: Int) {
        var samples: [AnalysisSample] = [], baselines: [BaselineRun] = [], generated = 0, round = 0
        while have + samples.count < c.minimumFailed && generated < c.extraConflictCap {
            let count = min(c.extraConflictBatch, c.extraConflictCap - generated)
            let items = try more(round, count)
            round += 1
            guard !items.isEmpty else { break }
            generated += items.count
            progress("amplification: \(have + samples.count) failed held-out items of \(c.minimumFailed) needed; "
                     + "generating \(items.count) more conflict items (\(generated) of at most \(c.extraConflictCap))")
            let prepared = try SamplePreparation.prepare(items, session: runner.session, policy: policy).samples
                .filter { $0.kind == "conflict" && $0.target != nil }
            let runs = try runner.parallelMap(prepared.count) {
                try runner.baseline(prepared[$0], keepPatterns: false, keepStreams: keepStreams)
            }
            for (sample, run) in zip(prepared, runs) where !run.score.follows {
                samples.append(sample)
                baselines.append(run)
            }
        }
        return (samples, baselines, generated)
    }

    /// The seeded split of the conflict items into calibration and held-out (per target, so both splits hold both
    /// targets; other kinds go to held-out), sorted; throws when a target has too few items. Also used by
    /// `VerifyPlan`.
    static func split(_ samples: [AnalysisSample],
                      configuration c: AnalysisConfiguration) throws -> (calibration: [Int], heldOut: [Int]) {
        for target in InstructionTarget.allCases {
            let n = samples.filter { $0.kind == "conflict" && $0.target == target }.count
            guard n >= 2 * c.minimumPerTarget else {
                throw AnalysisError.tooFewSamples(what: "conflict items following the \(target.rawValue)", have: n,
                                                  need: 2 * c.minimumPerTarget)
            }
        }
        // Seeded split of conflict items (per target, so both splits hold both targets); other kinds go to held-out.
        var rng = SeededRNG(seed: c.seed)
        var calibration: [Int] = [], heldOut: [Int] = []
        for target in InstructionTarget.allCases {
            let members = samples.indices.filter { samples[$0].kind == "conflict" && samples[$0].target == target }
                .shuffled(using: &rng)
            let k = Int((Double(members.count) * c.calibrationFraction).rounded())
            calibration += members.prefix(k)
            heldOut += members.dropFirst(k)
        }
        heldOut += samples.indices.filter { samples[$0].kind != "conflict" }
        calibration.sort(); heldOut.sort()
        return (calibration, heldOut)
    }

    static func runSingleThreaded(session: ModelSession, items: [ProbeItem], dataset: String,
                                  configuration c: AnalysisConfiguration, policy: ItemPolicy, keyValueBudget: Int,
                                  streamBudget: Int = AnalysisRunner.defaultStreamBudget,
                                  moreConflictItems: ((Int, Int) throws -> [ProbeItem])?,
                                  sharding: PassSharding? = nil,
                                  progress: @escaping (String) -> Void) throws -> AnalysisResults {
        let start = Date()
        let (samples, skippedItems) = try SamplePreparation.prepare(items, session: session, policy: policy)
        let skipped = skippedItems.map(\.description)
        let (calibration, heldOut) = try split(samples, configuration: c)

        let runner = AnalysisRunner(session: session)
        if let sharding {
            // The last-position screen's candidates decide which exact ablations run: one more dependency than
            // the three rounds cut (a DLA screen reads the baselines only, and shards as the exact ranking does).
            if c.headRanking?.screen == .lastPosition {
                throw ShardError.invalid("a two-stage ranking with the last-position screen cannot be sharded yet "
                                         + "(its exact ablations depend on the screen); use dla:C, or run unsharded")
            }
            try sharding.checkData(AnalysisRunner.fingerprint(samples))
            runner.sharding = sharding
            progress(sharding.round > ShardPartial.rounds
                     ? "merging the partial results of \(sharding.shards) shards"
                     : "sharded run: round \(sharding.round) of \(ShardPartial.rounds)")
        }
        progress("baseline passes over \(samples.count) samples")
        // Keys and values let the knockout sweep recompute only the positions a knockout can change; kept
        // when they fit the budget (a 7B model's are too large for hundreds of samples: then full resumes).
        let keepKeysValues = runner.keyValueBytes(samples) <= keyValueBudget
        // Otherwise passes that could recompute a suffix run their items' keys and values again, in chunks.
        runner.keyValueBudget = keepKeysValues ? nil : keyValueBudget
        // The residual streams every pass resumes from: kept when they fit their budget (a 7B item's are ~0.34 GB,
        // 240 items' ~80 GB); otherwise each stage computes them again, a chunk of items at a time.
        let keepStreams = runner.streamBytes(samples) <= streamBudget
        runner.streamBudget = streamBudget
        if !keepStreams {
            let gib = String(format: "%.2f GiB", Double(runner.streamBytes(samples)) / Double(1 << 30))
            progress("residual streams over --stream-memory (\(gib) for "
                     + "\(samples.count) items): each stage runs them again, a chunk of items at a time")
        }
        runner.progress = progress
        let baselines = try runner.parallelMap(samples.count) {
            try runner.baseline(samples[$0], keepKeysValues: keepKeysValues, keepStreams: keepStreams)
        }
        let following = ModalityFollowing.measure(samples, scores: baselines.map(\.score), seed: c.seed &+ 1)
        let flowIdx = heldOut + calibration
        let flow = try InformationFlow.measure(runner: runner, samples: flowIdx.map { samples[$0] },
                                               baselines: flowIdx.map { baselines[$0] }, window: c.window,
                                               calibration: Set(heldOut.count..<flowIdx.count), seed: c.seed &+ 2,
                                               progress: progress)
        progress("attention routing")
        let routing = try AttentionRouting.measure(samples: samples, baselines: baselines, seed: c.seed &+ 3)
        progress("logit lens")
        let lens = try LogitLens.measure(runner: runner, samples: samples, baselines: baselines, seed: c.seed &+ 4)
        progress("direct logit attribution")
        let attribution = try Attribution.measure(runner: runner, samples: samples, baselines: baselines,
                                                  seed: c.seed &+ 5)
        let calAttribution = try Attribution.measure(runner: runner, samples: calibration.map { samples[$0] },
                                                     baselines: calibration.map { baselines[$0] }, seed: c.seed &+ 6)
        let ranking = try Heads.rank(runner: runner, samples: calibration.map { samples[$0] },
                                     baselines: calibration.map { baselines[$0] },
                                     attribution: calAttribution.heads, method: c.headRanking,
                                     positions: c.headPositions, keyValueBudget: keyValueBudget,
                                     progress: progress)
        // Sharded runs: round 1 (knockouts, single-head ablations) ends here; the rest depends on the ranking.
        try runner.checkpoint()
        // Amplification's failures: the held-out conflict items the model gets wrong, topped up from generated
        // items when there are too few (never used for calibration, so held out by construction).
        let heldOutFailed = heldOut.filter { samples[$0].kind == "conflict" && samples[$0].target != nil
            && !baselines[$0].score.follows }.count
        var extra: (samples: [AnalysisSample], baselines: [BaselineRun], generated: Int) = ([], [], 0)
        if heldOutFailed < c.minimumFailed, let more = moreConflictItems {
            extra = try extraFailures(have: heldOutFailed, runner: runner, configuration: c, policy: policy,
                                      keepStreams: keepStreams, more: more, progress: progress)
        }
        var interventions = try Heads.intervene(
            runner: runner, ranking: ranking,
            calibration: (calibration.map { samples[$0] }, calibration.map { baselines[$0] }),
            heldOut: (heldOut.map { samples[$0] }, heldOut.map { baselines[$0] }),
            extraFailed: (extra.samples, extra.baselines),
            fraction: c.headFraction, randomSets: c.randomHeadSets, alphaGrid: c.alphaGrid,
            positions: c.headPositions, seed: c.seed &+ 7, progress: progress)
        interventions.extraConflictItems = extra.generated
        interventions.extraConflictCap = moreConflictItems == nil ? 0 : c.extraConflictCap
        return AnalysisResults(
            model: session.model.identifier, modelType: session.model.modelType, dataset: dataset,
            layout: session.layout.name, layoutFingerprint: session.layout.fingerprint, configuration: c,
            layers: runner.layers, headsPerLayer: runner.heads,
            calibrationIDs: calibration.map { samples[$0].id }, heldOutIDs: heldOut.map { samples[$0].id },
            skipped: skipped,
            following: following, flow: flow, routing: routing, lens: lens, attribution: attribution, ranking: ranking,
            interventions: interventions, seconds: Date().timeIntervalSince(start))
    }
}
