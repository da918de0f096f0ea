// `arbiter rank-overlap`: how close the two-stage head rankings of `verify --head-ranking` come to the exact one
// (issue #23) — per model, verify's analyses once with the exact ranking and once per screen (DLA, last position)
// and candidate count C = m·k (k: the top set's size), the overlap of their top sets and top 20, the ranking's
// passes, and every claim whose verdict changed. Prints a Markdown table (docs/metrics.md shows one) or JSON.
import ArbiterAnalyses
import ArbiterClaims
import ArgumentParser
import Foundation

struct RankOverlapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rank-overlap",
        abstract: "Compare two-stage head rankings (verify --head-ranking dla:C, last-position:C) with the exact one.",
        discussion: """
        Runs verify's analyses on each model with the exact ranking, then once per screen and C = m·k for each \
        --multiples m (k: the top set's size), and prints per run the share of the exact top set the two-stage \
        top set holds, the overlap and Spearman's ρ of the top 20, the ranking's passes against the exact \
        ranking's, and the claims whose verdict changed.
        """)

    @Option(name: .long, help: "Model folder (repeat for several).") var model: [String]
    @Option(name: .long, help: "Dataset folder (dataset.json + images); default: generated in memory from --seed.")
    var data: String?
    @Option(name: .long, help: "Items to generate when no --data is given.") var count = 240
    @Option(name: .long, help: "Seed of the generated data and of every random choice in the analyses.")
    var seed: UInt64 = 2602_03677
    @Option(name: .long, help: "Random head sets of the blocking/amplification controls.") var randomSets = 200
    @Option(name: .long, help: "Candidate counts C as multiples of the top set's size k, comma-separated.")
    var multiples = "2,4"
    @Flag(name: .long, help: "Print the rows as JSON instead of a table.") var json = false

    /// One two-stage run against the exact one.
    struct Row: Codable {
        var model: String
        var heads: Int
        var method: String
        var agreement: HeadRankingAgreement
        /// Single-head ablation passes of the ranking (screen and candidates), and of the exact ranking.
        var rankingPasses: Int
        var exactRankingPasses: Int
        /// "claim: exact verdict → two-stage verdict", for every claim that changed.
        var changedVerdicts: [String]
        var seconds: Double
        var exactSeconds: Double
    }

    func validate() throws {
        guard !model.isEmpty else { throw ValidationError("give at least one --model") }
        for m in model { try CLIPaths.checkNotEmpty(["--model": m]) }
        try CLIPaths.checkNotEmpty(["--data": data])
        try CLILimits.check("--count", count, CLILimits.items)
        try CLILimits.check("--random-sets", randomSets, CLILimits.randomSets)
        _ = try parsedMultiples()
    }

    func parsedMultiples() throws -> [Int] {
        try CLIPaths.checkList("--multiples", multiples)
        return try multiples.split(separator: ",").map { part in
            guard let m = Int(part.trimmingCharacters(in: .whitespaces)), (1...1024).contains(m) else {
                throw ValidationError("--multiples '\(multiples)': '\(part)' is not an integer in 1…1024")
            }
            return m
        }
    }

    func run() throws {
        let progress = Progress()
        var settings = ClaimRunSettings()
        settings.seed = seed; settings.count = count; settings.randomHeadSets = randomSets
        var rows: [Row] = []
        // The table row by row as the runs finish (a long comparison keeps what it measured if stopped).
        func emit(_ lines: [String]) {
            guard !json else { return }
            for line in lines { print(line) }
            fflush(nil)  // every output stream: stdout is a pipe when redirected
        }
        emit(Self.header)
        for path in model {
            let name = ClaimRun.displayName(of: URL(fileURLWithPath: path))
            func evaluate(_ method: TwoStageRanking?) throws -> (AnalysisResults, [ClaimResult]) {
                var s = settings
                s.headRanking = method
                let input = ClaimRunInput(model: URL(fileURLWithPath: path),
                                          data: data.map { URL(fileURLWithPath: $0) }, settings: s)
                let label = method.map(\.description) ?? "exact"
                do {
                    return try ClaimRun.evaluate(input, progress: { progress.say("\(name) \(label): \($0)") })
                } catch { throw CLIError("\(path): \(error)") }
            }
            let (exact, exactClaims) = try evaluate(nil)
            let heads = exact.layers * exact.headsPerLayer, n = exact.ranking.calibrationCount
            let k = HeadRanking.setSize(fraction: exact.configuration.headFraction, total: heads)
            for screen in HeadScreen.allCases {
                for m in try parsedMultiples() {
                    let method = TwoStageRanking(screen: screen, candidates: m * k)
                    let (two, claims) = try evaluate(method)
                    let changed = zip(exactClaims, claims).filter { $0.verdict != $1.verdict }
                        .map { "\($0.id): \($0.verdict.rawValue) → \($1.verdict.rawValue)" }
                    let screened = screen == .lastPosition ? heads * n : 0
                    rows.append(Row(model: name, heads: heads, method: method.description,
                                    agreement: HeadRankingAgreement(exact: exact.ranking.causalOrder,
                                                                    twoStage: two.ranking.causalOrder, setSize: k),
                                    rankingPasses: screened + min(m * k, heads) * n, exactRankingPasses: heads * n,
                                    changedVerdicts: changed, seconds: two.seconds, exactSeconds: exact.seconds))
                    emit([Self.line(rows[rows.count - 1])])
                }
            }
        }
        progress.finish()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf",
                                                                          negativeInfinity: "-inf", nan: "nan")
            print(String(decoding: try encoder.encode(rows), as: UTF8.self))
        }
    }

    /// The Markdown table's header lines.
    static let header = ["| model | heads | ranking | k | top-k ∩ / k | top-20 ∩ / 20 | Spearman ρ (top 20) "
                         + "| ranking passes (exact) | run s (exact) | verdicts changed |",
                         "|---|---|---|---|---|---|---|---|---|---|"]

    /// One row of the Markdown table.
    static func line(_ r: Row) -> String {
        func f(_ x: Double) -> String { x.isNaN ? "–" : String(format: "%.2f", x) }
        let a = r.agreement
        return "| \(r.model) | \(r.heads) | \(r.method) | \(a.setSize) | \(f(a.setOverlap)) "
            + "| \(f(a.topOverlap)) | \(f(a.topSpearman)) | \(r.rankingPasses) (\(r.exactRankingPasses)) "
            + "| \(String(format: "%.0f", r.seconds)) (\(String(format: "%.0f", r.exactSeconds))) "
            + "| \(r.changedVerdicts.isEmpty ? "none" : r.changedVerdicts.joined(separator: "; ")) |"
    }
}
