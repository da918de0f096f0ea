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
    public static func evaluate(_ input: ClaimRunInput,
                                progress: @escaping (String) -> Void = { _ in }) throws -> (AnalysisResults, [ClaimResult]) {
        let session = try ModelSession(directory: input.model, layout: input.layout)
        let settings = input.settings
        let set: ConflictSet
        let dataset: String
        if let data = input.data {
            set = try ConflictDataset.load(directory: data, options: LoadOptions(skipBadItems: input.skipBadItems))
            dataset = data.path
        } else {
            var g = GeneratorConfiguration()
            if let size = session.imageSize { g.imageSize = size }
            set = ConflictSet(source: "generated", items: ConflictGenerator(seed: settings.seed, configuration: g)
                .generate(count: settings.count), imageRoot: nil)
            dataset = "generated: \(settings.count) items, seed \(settings.seed), image \(g.imageSize)px"
        }
        var c = AnalysisConfiguration()
        c.seed = settings.seed
        c.randomHeadSets = settings.randomHeadSets
        var results = try AnalysisSuite.run(session: session, items: try ProbeItems.make(set), dataset: dataset,
                                            configuration: c, policy: input.policy, progress: progress)
        results.model = input.name ?? displayName(of: input.model)
        results.skipped = set.skipped.map { "\($0)" } + results.skipped
        return (results, ClaimStatistics.evaluate(results))
    }

    /// Generates the conflict set (at the model's image size), runs every analysis, evaluates the claims.
    public static func evaluate(modelDirectory: URL, settings: ClaimRunSettings = ClaimRunSettings(),
                                progress: @escaping (String) -> Void = { _ in }) throws -> (AnalysisResults, [ClaimResult]) {
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

/// Stored verdicts and statistics of a bundled model (GoldenData/claims/<model>.h5), for regression tests.
public struct GoldenClaims: Sendable {
    public struct Entry: Sendable, Equatable {
        public let verdict: Verdict
        public let statistic: Double
        public let control: Double
    }

    public let model: String
    public let claimsVersion: Int
    public let settings: String
    public let entries: [String: Entry]

    public static func write(_ claims: [ClaimResult], model: String, settings: ClaimRunSettings, to url: URL) throws {
        let writer = try HDF5Writer(url: url, output: .goldenClaims)
        try writer.setAttribute("model", model)
        try writer.setAttribute("claims_version", Claims.version)
        try writer.setAttribute("settings", "seed \(settings.seed), count \(settings.count), random sets \(settings.randomHeadSets)")
        for c in claims {
            let rank: Float = c.verdict == .holds ? 2 : c.verdict == .holdsDirectionally ? 1 : c.verdict == .fails ? 0 : -1
            try writer.write(c.id, Tensor(shape: [3], scalars: [rank, Float(c.statistic), Float(c.control)]))
            try writer.setAttribute("verdict", c.verdict.rawValue, on: c.id)
        }
        try writer.commit()
    }

    public init(url: URL) throws {
        let reader = try HDF5Reader(url: url)
        model = try reader.stringAttribute("model")
        claimsVersion = try reader.intAttribute("claims_version")
        settings = try reader.stringAttribute("settings")
        var entries: [String: Entry] = [:]
        for name in try reader.datasetNames() {
            let t = try reader.readFloat32(name)
            guard t.count == 3, let verdict = Verdict(rawValue: try reader.stringAttribute("verdict", of: name)) else {
                throw FormatError(.malformed, file: url, "claim '\(name)' is not [verdict rank, statistic, control] with a verdict attribute")
            }
            entries[name] = Entry(verdict: verdict, statistic: Double(t.scalars[1]), control: Double(t.scalars[2]))
        }
        self.entries = entries
    }
}
