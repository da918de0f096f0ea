// One claim run on one model folder with generated conflict data — shared by `arbiter verify`, the claim
// tests, and the stored golden verdicts — plus reading/writing those golden verdicts (HDF5).
import ArbiterAnalyses
import ArbiterData
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation

public struct ClaimRunSettings: Sendable, Equatable {
    public var seed: UInt64 = 2602_03677
    public var count = 240
    public var randomHeadSets = 200
    /// `AnalysisConfiguration.headRanking` (nil: exact ablation of every head).
    public var headRanking: TwoStageRanking? = nil
    /// `AnalysisConfiguration.headPositions` (nil: every position, the default protocol).
    public var headPositions: HeadPositions? = nil
    /// The kinds of generated items (nil: `KindMix.standard`); a dataset folder's items are what they are.
    public var mix: KindMix? = nil
    /// `AnalysisConfiguration.minimumPerTarget`: conflict items per instruction target in each split, below which
    /// the run is refused. Below the claims' own minimum (`Claims.Threshold.minimumPerTargetSplit`) a run
    /// completes — to time it, or to try the pipeline on a model — but its flow, routing and MLP claims are
    /// inconclusive.
    public var minimumPerTarget = 4
    /// `AnalysisConfiguration.extraConflictCap`: at most this many conflict items generated for amplification's
    /// failures (0: none).
    public var topUpCap = 1000
    /// Bytes the baselines may keep of keys and values (`AnalysisSuite.run`); over it, passes that recompute a
    /// suffix run their items' keys and values again in chunks of this size.
    public var keyValueBudget = 1 << 30
    /// Bytes the baselines may keep of the residual streams entering each layer (`AnalysisSuite.run`); over it,
    /// every stage computes its items' again, a chunk of items within this at a time.
    public var streamBudget = AnalysisRunner.defaultStreamBudget
    public init() {}
}

/// What one claim run reads: a model folder, and a dataset folder or generated items, a layout, a name.
public struct ClaimRunInput: Sendable {
    public var model: URL
    /// A dataset folder (dataset.json + images); nil: `settings.count` items generated in memory at the
    /// model's image size.
    public var data: URL?
    /// The prompt layout; nil: the model folder's `prompt_layout.json` or the model type's default.
    public var layout: PromptLayout?
    /// The name shown in tables and reports; nil: `ClaimRun.displayName(of:)`.
    public var name: String?
    public var settings: ClaimRunSettings
    /// Items the model cannot read or score (`ItemPolicy`).
    public var policy: ItemPolicy
    /// Dataset items that fail validation are skipped (and counted) instead of stopping the run.
    public var skipBadItems: Bool
    /// A sharded run's round or its merge (`PassSharding`); nil: an ordinary run.
    public var sharding: PassSharding?

    public init(model: URL, data: URL? = nil, layout: PromptLayout? = nil, name: String? = nil,
                settings: ClaimRunSettings = ClaimRunSettings(), policy: ItemPolicy = ItemPolicy(),
                skipBadItems: Bool = false) {
        self.model = model
        self.data = data
        self.layout = layout
        self.name = name
        self.settings = settings
        self.policy = policy
        self.skipBadItems = skipBadItems
    }
}

public enum ClaimRun {
    /// Runs every analysis on `input` and evaluates the claims. Dataset items skipped at load time are added
    /// to the results' skipped items (with their reasons).
    public static func evaluate(_ input: ClaimRunInput, progress: @escaping (String) -> Void = { _ in })
        throws -> (AnalysisResults, [ClaimResult]) {
        let session = try ModelSession(directory: input.model, layout: input.layout)
        let settings = input.settings
        let (set, dataset, more) = try items(input, imageSize: session.imageSize)
        var results = try AnalysisSuite.run(session: session, items: try ProbeItems.make(set), dataset: dataset,
                                            configuration: configuration(settings), policy: input.policy,
                                            keyValueBudget: settings.keyValueBudget,
                                            streamBudget: settings.streamBudget, moreConflictItems: more,
                                            sharding: input.sharding,
                                            progress: progress)
        results.model = input.name ?? displayName(of: input.model)
        results.skipped = set.skipped.map { "\($0)" } + results.skipped
        return (results, ClaimStatistics.evaluate(results))
    }

    /// The analysis configuration of a claim run with `settings`.
    public static func configuration(_ settings: ClaimRunSettings) -> AnalysisConfiguration {
        var c = AnalysisConfiguration()
        c.seed = settings.seed
        c.randomHeadSets = settings.randomHeadSets
        c.headRanking = settings.headRanking
        c.headPositions = settings.headPositions
        c.minimumFailed = Claims.Threshold.minimumFailed
        c.minimumPerTarget = settings.minimumPerTarget
        c.extraConflictCap = settings.topUpCap
        return c
    }

    /// The run's items: the dataset folder's, or `settings.count` generated at `imageSize` (the model's), with the
    /// dataset's description and, for generated runs, the top-up generator of amplification (nil for a dataset).
    public static func items(_ input: ClaimRunInput, imageSize: Int?) throws
        -> (set: ConflictSet, dataset: String, more: ((Int, Int) throws -> [ProbeItem])?) {
        let settings = input.settings
        let set: ConflictSet
        let dataset: String
        // Generated runs can top up amplification's failures with more conflict items (seeded per round, ids
        // prefixed so they never collide with the run's own); a fixed dataset cannot.
        var more: ((Int, Int) throws -> [ProbeItem])? = nil
        if let data = input.data {
            set = try ConflictDataset.load(directory: data, options: LoadOptions(skipBadItems: input.skipBadItems))
            dataset = data.path
        } else {
            var g = GeneratorConfiguration()
            if let imageSize { g.imageSize = imageSize }
            if let mix = settings.mix { g.mix = mix }
            set = ConflictSet(source: "generated", items: ConflictGenerator(seed: settings.seed, configuration: g)
                .generate(count: settings.count), imageRoot: nil)
            dataset = "generated: \(settings.count) items, seed \(settings.seed), image \(g.imageSize)px"
                + (settings.mix.map { ", kinds \($0.text)" } ?? "")
            var conflictOnly = g
            conflictOnly.mix = KindMix([.conflict: 1])
            more = { round, count in
                let seed = settings.seed &+ 0x5eed &+ UInt64(round)
                let items = ConflictGenerator(seed: seed, configuration: conflictOnly)
                    .generate(count: count).map { item -> ConflictItem in
                        var item = item
                        item.id = "extra\(round)-\(item.id)"
                        return item
                    }
                return try ProbeItems.make(ConflictSet(source: "generated (amplification top-up)", items: items,
                                                       imageRoot: nil))
            }
        }
        return (set, dataset, more)
    }

    /// Generates the conflict set (at the model's image size), runs every analysis, evaluates the claims.
    public static func evaluate(modelDirectory: URL, settings: ClaimRunSettings = ClaimRunSettings(),
                                progress: @escaping (String) -> Void = { _ in })
        throws -> (AnalysisResults, [ClaimResult]) {
        try evaluate(ClaimRunInput(model: modelDirectory, settings: settings), progress: progress)
    }

    /// The name a model folder is shown by: the folder's name, or — for a folder named like a generic
    /// checkpoint folder (`model`, `checkpoint-*`, `snapshots/<hash>`, …) — its parent's name joined to it.
    public static func displayName(of folder: URL) -> String {
        let url = folder.standardizedFileURL
        let name = url.lastPathComponent
        let generic = ["model", "models", "checkpoint", "hf", "final", "latest", "main", "weights", "output", "."]
        let isHash = name.count >= 12 && name.allSatisfy(\.isHexDigit)
        guard generic.contains(name.lowercased()) || name.lowercased().hasPrefix("checkpoint-") || isHash else {
            return name
        }
        let parentURL = url.deletingLastPathComponent()
        let parent = parentURL.lastPathComponent
        // A Hugging Face cache snapshot: models--ORG--NAME/snapshots/<commit>.
        if isHash && parent == "snapshots" {
            let repository = parentURL.deletingLastPathComponent().lastPathComponent
            if repository.hasPrefix("models--") {
                return repository.dropFirst("models--".count).replacingOccurrences(of: "--", with: "/")
            }
        }
        return parent.isEmpty || parent == "/" ? name : "\(parent)/\(name)"
    }
}

/// Stored verdicts and every sub-statistic of a bundled model (GoldenData/claims/<model>.h5), for regression
/// tests. Layout: per claim a dataset `<id>` = [verdict rank, statistic, low, high, threshold, control, n] with
/// the attributes `verdict` and `detail`, one dataset `<id>:<measure>` per `ClaimMeasure` (attribute `kind`),
/// and the whole `AnalysisResults` as JSON in the uint8 dataset `analysis_results` (so that the claim
/// statistics can be re-evaluated without running the model).
public struct GoldenClaims: Sendable {
    public struct Entry: Sendable, Equatable {
        public let verdict: Verdict
        public let statistic: Double
        public let low: Double
        public let high: Double
        public let threshold: Double
        public let control: Double
        public let samples: Int
        public let detail: String
        public let measures: [String: ClaimMeasure]
    }

    public static let format = 2
    static let resultsName = "analysis_results"

    public let model: String
    public let claimsVersion: Int
    public let settings: String
    public let entries: [String: Entry]
    /// The analysis results the claims were evaluated from.
    public let results: AnalysisResults

    public static func write(_ claims: [ClaimResult], results: AnalysisResults, settings: ClaimRunSettings,
                             to url: URL) throws {
        let writer = try HDF5Writer(url: url, output: .goldenClaims)
        try writer.setAttribute("model", results.model)
        try writer.setAttribute("claims_version", Claims.version)
        try writer.setAttribute("golden_format", format)
        let ranking = (settings.headRanking.map { ", head ranking \($0)" } ?? "")
            + (settings.headPositions.map { ", head positions \($0.rawValue)" } ?? "")
        try writer.setAttribute("settings", "seed \(settings.seed), count \(settings.count), random sets "
                                + "\(settings.randomHeadSets)" + ranking)
        for c in claims {
            let row = [Double(c.verdict.rank), c.statistic, c.low, c.high, c.threshold, c.control, Double(c.samples)]
            try writer.write(c.id, Tensor(shape: [row.count], scalars: row.map(Float.init)))
            try writer.setAttribute("verdict", c.verdict.rawValue, on: c.id)
            try writer.setAttribute("detail", c.detail, on: c.id)
            for m in c.measures {
                let name = "\(c.id):\(m.name)"
                try writer.write(name, Tensor(shape: [m.values.count], scalars: m.values.map(Float.init)))
                try writer.setAttribute("kind", m.kind.rawValue, on: name)
            }
        }
        try writer.write(resultsName, bytes: Array(try results.jsonData()))
        try writer.commit()
    }

    public init(url: URL) throws {
        let reader = try HDF5Reader(url: url)
        model = try reader.stringAttribute("model")
        claimsVersion = try reader.intAttribute("claims_version")
        settings = try reader.stringAttribute("settings")
        let stored = reader.hasAttribute("golden_format") ? try reader.intAttribute("golden_format") : 1
        guard stored == Self.format else {
            throw FormatError(.unsupported, file: url, "golden claims format \(stored), this Arbiter reads format "
                              + "\(Self.format): re-store with `arbiter verify --store-golden`")
        }
        // Files stored since Arbiter 0.13 record content digests: a changed byte is refused, naming what changed.
        // Earlier stores (format 2 without them) still read; the tests compare them with a fresh run anyway.
        _ = try reader.checkContentDigests()
        let names = try reader.datasetNames()
        guard names.contains(Self.resultsName) else {
            throw FormatError(.malformed, file: url, "no dataset '\(Self.resultsName)' (the analysis results)")
        }
        var bytes: [UInt8] = []
        for value in try reader.readInt64(Self.resultsName).values {
            guard let byte = UInt8(exactly: value) else {
                throw FormatError(.malformed, file: url, "dataset '\(Self.resultsName)' holds \(value), not a byte")
            }
            bytes.append(byte)
        }
        results = try AnalysisResults.decode(Data(bytes), file: "\(url.path) (dataset \(Self.resultsName))")
        var measures: [String: [String: ClaimMeasure]] = [:]
        for name in names where name.contains(":") {
            let parts = name.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2,
                  let kind = ClaimMeasure.Kind(rawValue: try reader.stringAttribute("kind", of: name)) else {
                throw FormatError(.malformed, file: url,
                                  "measure '\(name)' has no valid kind attribute (continuous, exact)")
            }
            let values = try reader.readFloat32(name).scalars.map(Double.init)
            measures[parts[0], default: [:]][parts[1]] = ClaimMeasure(parts[1], kind, values)
        }
        var entries: [String: Entry] = [:]
        for name in names where !name.contains(":") && name != Self.resultsName {
            let t = try reader.readFloat32(name)
            guard t.count == 7, let verdict = Verdict(rawValue: try reader.stringAttribute("verdict", of: name)),
                  Float(verdict.rank) == t.scalars[0] else {
                throw FormatError(.malformed, file: url, "claim '\(name)' is not [verdict rank, statistic, low, high, "
                                  + "threshold, control, n] with a matching verdict attribute")
            }
            let v = t.scalars.map(Double.init)
            entries[name] = Entry(verdict: verdict, statistic: v[1], low: v[2], high: v[3], threshold: v[4],
                                  control: v[5], samples: Int(v[6]),
                                  detail: try reader.stringAttribute("detail", of: name),
                                  measures: measures[name] ?? [:])
        }
        for claim in measures.keys where entries[claim] == nil {
            throw FormatError(.malformed, file: url, "measures of claim '\(claim)' without its dataset '\(claim)'")
        }
        self.entries = entries
    }

    /// How `claims` (recomputed) differ from the stored entries: one line per disagreement, naming the claim and
    /// the field or measure with both values; empty when every verdict, headline number and measure agrees
    /// within its tolerance (`ClaimMeasure.Kind`).
    public func differences(_ claims: [ClaimResult]) -> [String] {
        var out: [String] = []
        func close(_ a: Double, _ b: Double) -> Bool {
            ClaimMeasure("", .continuous, [a]).agrees(with: ClaimMeasure("", .continuous, [b]))
        }
        for claim in claims {
            guard let g = entries[claim.id] else { out.append("\(claim.id): not stored"); continue }
            if claim.verdict != g.verdict {
                out.append("\(claim.id): verdict \(claim.verdict.rawValue), stored \(g.verdict.rawValue)")
            }
            for (field, a, b) in [("statistic", claim.statistic, g.statistic), ("low", claim.low, g.low),
                                  ("high", claim.high, g.high), ("threshold", claim.threshold, g.threshold),
                                  ("control", claim.control, g.control),
                                  ("n", Double(claim.samples), Double(g.samples))]
            where !close(a, b) {
                out.append("\(claim.id): \(field) \(a), stored \(b)")
            }
            let names = Set(claim.measures.map(\.name)).union(g.measures.keys)
            for name in names.sorted() {
                guard let m = claim.measures.first(where: { $0.name == name }) else {
                    out.append("\(claim.id): measure \(name) stored but not computed"); continue
                }
                guard let s = g.measures[name] else { out.append("\(claim.id): measure \(name) not stored"); continue }
                if !m.agrees(with: s) {
                    let worst = zip(m.values, s.values).enumerated().max { abs($0.1.0 - $0.1.1) < abs($1.1.0 - $1.1.1) }
                    out.append("\(claim.id): measure \(name) (\(m.kind.rawValue), \(m.values.count) values, stored "
                               + "\(s.values.count)) differs"
                               + (worst.map { " most at [\($0.offset)]: \($0.element.0) vs stored \($0.element.1)" }
                                  ?? ""))
                }
            }
        }
        return out
    }
}
