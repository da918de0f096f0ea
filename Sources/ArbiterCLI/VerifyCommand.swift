// `arbiter verify`: run the analyses on one or more models, evaluate the paper's claims, print a table
// (models side by side), and write a report (report.md, report.html, plots, results.json, results.h5).
import ArbiterAnalyses
import ArbiterClaims
import ArbiterData
import ArbiterFormats
import ArbiterModels
import ArgumentParser
import Foundation

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check the claims of Instruction Anchors on models; exit 0 only when every claim holds at least directionally.")

    @Option(name: .long, help: "Model folder (repeat to compare models side by side).") var model: [String]
    @Option(name: .long, help: "Dataset folder (dataset.json + images); default: generated in memory from --seed.") var data: String?
    @Option(name: .long, help: "Items to generate when no --data is given.") var count = 240
    @Option(name: .long, help: "Seed of the generated data and of every random choice in the analyses.") var seed: UInt64 = 2602_03677
    @Option(name: .long, help: "Report folder: new, empty, or an earlier verify report (replaced atomically).")
    var out: String?
    @Flag(name: .long, help: "Print results as JSON instead of a table.") var json = false
    @Flag(name: .long, help: "Skip bad dataset items (and say how many) instead of stopping.") var skipBadItems = false
    @Option(name: .long, help: "Random head sets for the blocking/amplification controls.") var randomSets = 20
    @Option(name: .long, help: "Also store each model's verdicts and statistics as golden claim results in this folder (<model>.h5).")
    var storeGolden: String?

    func validate() throws {
        guard !model.isEmpty else { throw ValidationError("give at least one --model") }
        try CLILimits.check("--count", count, CLILimits.items)
        try CLILimits.check("--random-sets", randomSets, CLILimits.randomSets)
        for m in model { try CLIPaths.checkNotEmpty(["--model": m]) }
        try CLIPaths.checkNotEmpty(["--data": data])
    }

    /// The run's inputs: no output may be one of them or hold one.
    var inputs: [URL] { (model + (data.map { [$0] } ?? [])).map { URL(fileURLWithPath: $0) } }

    func run() throws {
        let progress = Progress()
        // Every destination is checked before any work starts (and again when written).
        if let out { try OutputSafety.checkFolder(out, kind: .verifyReport, option: "--out", inputs: inputs) }
        if let storeGolden {
            for path in model {
                let name = URL(fileURLWithPath: path).lastPathComponent
                try OutputSafety.checkFile(try goldenFile(in: storeGolden, model: name), kind: .goldenClaims,
                                           option: "--store-golden", inputs: inputs, createFolder: true)
            }
        }
        var all: [(AnalysisResults, [ClaimResult])] = []
        var settings = ClaimRunSettings()
        settings.seed = seed; settings.count = count; settings.randomHeadSets = randomSets
        for path in model {
            progress.say("loading \(path)")
            let say: (String) -> Void = { progress.say("\(URL(fileURLWithPath: path).lastPathComponent): \($0)") }
            let results: AnalysisResults
            do {
                if let data {
                    let session = try ModelSession(directory: URL(fileURLWithPath: path))
                    let set = try ConflictDataset.load(directory: URL(fileURLWithPath: data), options: LoadOptions(skipBadItems: skipBadItems))
                    if !set.skipped.isEmpty { progress.say("skipped \(set.skipped.count) bad dataset items") }
                    var c = AnalysisConfiguration()
                    c.seed = seed
                    c.randomHeadSets = randomSets
                    results = try AnalysisSuite.run(session: session, items: try ProbeItems.make(set), dataset: data, configuration: c,
                                                    skipBad: skipBadItems, progress: say)
                } else {
                    results = try ClaimRun.evaluate(modelDirectory: URL(fileURLWithPath: path), settings: settings, progress: say).0
                }
            } catch { throw CLIError("\(path): \(error)") }
            if !results.skipped.isEmpty { progress.say("skipped \(results.skipped.count) items the model cannot score") }
            all.append((results, ClaimStatistics.evaluate(results)))
        }
        progress.finish()
        if let storeGolden {
            for (r, claims) in all {
                let file = try OutputSafety.checkFile(try goldenFile(in: storeGolden, model: r.model), kind: .goldenClaims,
                                                      option: "--store-golden", inputs: inputs, createFolder: true)
                do {
                    try FileManager.default.createDirectory(at: file.deletingLastPathComponent(),
                                                            withIntermediateDirectories: true)
                    try GoldenClaims.write(claims, model: r.model, settings: settings, to: file)
                } catch { throw CLIError("--store-golden \(file.path): \(error)") }
            }
        }
        if json {
            let payload = try VerifyReport.jsonData(all)
            print(String(decoding: payload, as: UTF8.self))
        } else {
            print(VerifyReport.table(all))
        }
        if let out {
            try VerifyReport.write(all, to: out, inputs: inputs)
            if !json { print("report written to \(out)/report.md") }
        }
        let ok = all.allSatisfy { $0.1.allSatisfy { $0.verdict >= .holdsDirectionally } }
        if !ok { throw ExitCode(1) }
    }
}

/// `<folder>/<model>.h5`, the golden claims file of a model.
func goldenFile(in folder: String, model: String) throws -> String {
    guard !folder.isEmpty else { throw OutputError(option: "--store-golden", path: folder, "is empty; give a folder") }
    return (folder.hasSuffix("/") ? folder : folder + "/") + model + ".h5"
}

/// A one-line progress display on standard error (rewritten in place on a terminal).
final class Progress {
    let isTerminal = isatty(2) != 0
    let start = Date()
    func say(_ message: String) {
        let line = String(format: "[%6.1fs] ", Date().timeIntervalSince(start)) + message
        if isTerminal { FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8)) }
        else { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }
    func finish() { if isTerminal { FileHandle.standardError.write(Data("\n".utf8)) } }
}
