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
    public var randomHeadSets = 20
    public init() {}
}

public enum ClaimRun {
    /// Generates the conflict set (at the model's image size), runs every analysis, evaluates the claims.
    public static func evaluate(modelDirectory: URL, settings: ClaimRunSettings = ClaimRunSettings(),
                                progress: @escaping (String) -> Void = { _ in }) throws -> (AnalysisResults, [ClaimResult]) {
        let session = try ModelSession(directory: modelDirectory)
        var g = GeneratorConfiguration()
        if let size = session.imageSize { g.imageSize = size }
        let items = ConflictGenerator(seed: settings.seed, configuration: g).generate(count: settings.count)
        let set = ConflictSet(source: "generated", items: items, imageRoot: nil)
        var c = AnalysisConfiguration()
        c.seed = settings.seed
        c.randomHeadSets = settings.randomHeadSets
        let results = try AnalysisSuite.run(session: session, items: try ProbeItems.make(set),
                                            dataset: "generated: \(settings.count) items, seed \(settings.seed), image \(g.imageSize)px",
                                            configuration: c, skipBad: true, progress: progress)
        return (results, ClaimStatistics.evaluate(results))
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
            let rank: Float = c.verdict == .holds ? 2 : c.verdict == .holdsDirectionally ? 1 : 0
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
