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
        abstract: "Check the claims of Instruction Anchors on models: a table, and a report with --out.",
        discussion: """
        Exits 0 when the run completed, whatever the verdicts (a claim that fails on a model is a finding, not \
        an error), and nonzero on errors. --require holds|directional exits 1 unless every claim reaches that \
        verdict, for CI gates (an inconclusive claim, one that cannot be decided on the items, meets neither). \
        Runs whose numbers would mean nothing are refused: more than 10% of the items \
        skipped, prompts mostly unknown to the tokenizer, answers starting with the unknown token \
        (--keep-going runs on the readable items and lists the others in the report).
        """)

    enum Requirement: String, ExpressibleByArgument, CaseIterable {
        case holds, directional
        var verdict: Verdict { self == .holds ? .holds : .holdsDirectionally }
    }

    @Option(name: .long, help: "Model folder (repeat to compare models side by side).") var model: [String]
    @Option(name: .long, help: "Display name of each --model, in the same order (default: the folder's name).")
    var name: [String] = []
    @Option(name: .long, help: "Dataset folder (dataset.json + images); default: generated in memory from --seed.")
    var data: String?
    @Option(name: .long,
            help: ArgumentHelp(OptionHelp.layoutWithDefault))
    var layout: String?
    @Option(name: .long, help: "Items to generate when no --data is given.") var count = 240
    @Option(name: .long, help: "Seed of the generated data and of every random choice in the analyses.")
    var seed: UInt64 = 2602_03677
    @Option(name: .long, help: "Report folder: new, empty, or an earlier verify report (replaced atomically).")
    var out: String?
    @Flag(name: .long, help: "Print results as JSON instead of a table.") var json = false
    @Flag(name: .long, help: "Skip bad dataset items (and say how many) instead of stopping.") var skipBadItems = false
    @Flag(name: .long,
          help: "Run on the items the model can read even when others are unreadable or more than 10% are skipped.")
    var keepGoing = false
    @Option(name: .long, help: "Exit 1 unless every claim reaches this verdict on every model: holds | directional.")
    var require: Requirement?
    @Option(name: .long,
            help: ArgumentHelp("Random head sets for the blocking/amplification controls (fewer than 200: those "
                               + "claims are inconclusive)."))
    var randomSets = 200
    @Option(name: .long, help: """
        Head ranking: exact (default: single-head ablation of every head), dla:C or last-position:C (a screen by \
        per-head DLA or by ablation at the last position only, then exact ablation of its first C heads).
        """)
    var headRanking = "exact"
    @Option(name: .long, help: """
        Where head interventions act: all (default: every position) or after-image (only after the image: each \
        pass recomputes those positions alone; an approximation of the protocol, docs/metrics.md).
        """)
    var headPositions = "all"
    @Option(name: .long, help: """
        Kinds of the generated items as kind=weight pairs (default \(KindMix.standard.text)); e.g. conflict=1 \
        for a few-item trial run.
        """)
    var mix: String?
    @Option(name: .long, help: """
        Conflict items per instruction target in each split (calibration, held-out) below which the run is \
        refused. Below 4, a trial run completes but its flow, routing and MLP claims are inconclusive.
        """)
    var minimumPerTarget = 4
    @Option(name: .long, help: """
        Conflict items generated at most when amplification has fewer than 30 failed held-out items (0: none; \
        the amplification claim is then inconclusive on a small run).
        """)
    var topUp = 1000
    @Option(name: .long, help: """
        GiB the baselines may keep of keys and values, which let passes recompute only the positions they can \
        change; over it, those passes compute them again, a chunk of items at a time.
        """)
    var keyValueMemory = 1.0
    @Option(name: .long, help: """
        GiB the baselines may keep of the residual streams entering each layer (a 7B item's: ~0.34 GB), from \
        which every pass resumes; over it, each stage computes them again, a chunk of items within it at a time.
        """)
    var streamMemory = 4.0
    @Option(name: .long,
            help: ArgumentHelp("Also store each model's verdicts and statistics as golden claim results in this folder "
                               + "(<model>.h5)."))
    var storeGolden: String?
    @Flag(name: .long, help: "Print what the run would cost (passes, FLOPs, time, memory per stage); run nothing.")
    var plan = false
    @Option(name: .long, help: """
        With --plan: tokens per prompt (default for a folder without tokenizer.json or weights: one image's \
        tokens + 74).
        """)
    var promptTokens: Int?
    @Option(name: .long, help: "With --plan: share of conflict items assumed to fail at baseline (default 0.5).")
    var failureRate: Double?
    @Option(name: .long, help: """
        With --plan: plan a re-run of an earlier `verify --out` — its failure counts and top head set from its \
        results.json replace the plan's assumptions.
        """)
    var assumeFrom: String?
    @Option(name: .long, help: """
        Run shard K of N of the intervened passes (e.g. 2/4), one round per call (3 rounds), writing a partial \
        result to --partials; `arbiter merge` combines them (docs/slurm.md).
        """)
    var shard: String?
    @Option(name: .long, help: "With --shard: the folder of the run's partial results (new, or one it made).")
    var partials: String?

    func validate() throws {
        guard !model.isEmpty else { throw ValidationError("give at least one --model") }
        guard name.isEmpty || name.count == model.count else {
            throw ValidationError("give one --name per --model (\(model.count) models, \(name.count) names)")
        }
        if let empty = name.first(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw ValidationError("--name '\(empty)' is empty")
        }
        try CLILimits.check("--count", count, CLILimits.items)
        try CLILimits.check("--random-sets", randomSets, CLILimits.randomSets)
        _ = try claimSettings()
        if mix != nil && data != nil {
            throw ValidationError("--mix chooses the kinds of generated items; a --data folder's items are its own")
        }
        for m in model { try CLIPaths.checkNotEmpty(["--model": m]) }
        try CLIPaths.checkNotEmpty(["--data": data])
        try validatePlanOptions()
        try validateShardOptions()
    }

    /// The claim run's settings from the options (every run, plan, shard and merge takes them from here).
    func claimSettings() throws -> ClaimRunSettings {
        var settings = ClaimRunSettings()
        settings.seed = seed; settings.count = count; settings.randomHeadSets = randomSets
        settings.headRanking = try CLILimits.headRanking(headRanking)
        settings.headPositions = try CLILimits.headPositions(headPositions)
        settings.mix = try CLILimits.mix(mix)
        try CLILimits.check("--minimum-per-target", minimumPerTarget, CLILimits.perTarget)
        settings.minimumPerTarget = minimumPerTarget
        try CLILimits.check("--top-up", topUp, CLILimits.topUp)
        settings.topUpCap = topUp
        settings.keyValueBudget = try CLILimits.keyValueBytes(keyValueMemory)
        settings.streamBudget = try CLILimits.keyValueBytes(streamMemory, option: "--stream-memory")
        return settings
    }

    /// --shard needs --partials (and the reverse), one model, and nothing that acts on finished results.
    func validateShardOptions() throws {
        guard shard != nil || partials != nil else { return }
        guard let shard else { throw ValidationError("--partials is an option of --shard; add --shard K/N or drop it") }
        guard partials != nil else { throw ValidationError("--shard needs --partials DIR, the folder of the partials") }
        do { _ = try ShardSpec(parsing: shard) } catch { throw ValidationError("--shard \(shard): \(error)") }
        guard model.count == 1 else { throw ValidationError("--shard runs one --model (give each model its own run)") }
        let contradicting = [("--plan", plan), ("--out", out != nil), ("--store-golden", storeGolden != nil),
                             ("--require", require != nil), ("--json", json)].filter(\.1).map(\.0)
        if let first = contradicting.first {
            throw ValidationError("--shard writes a partial result, so \(first) has nothing to act on; "
                                  + "give it to `arbiter merge` instead")
        }
        try CLIPaths.checkNotEmpty(["--partials": partials])
    }

    /// --plan runs nothing: options that act on a run's results contradict it, and its own options need it.
    func validatePlanOptions() throws {
        if plan {
            let contradicting = [("--out", out != nil), ("--store-golden", storeGolden != nil),
                                 ("--require", require != nil)].filter(\.1).map(\.0)
            if let first = contradicting.first {
                throw ValidationError("--plan runs nothing, so \(first) has no results to act on; drop one of them")
            }
        } else if let option = [("--prompt-tokens", promptTokens != nil), ("--failure-rate", failureRate != nil),
                                ("--assume-from", assumeFrom != nil)].first(where: \.1)?.0 {
            throw ValidationError("\(option) is an option of --plan; add --plan or drop it")
        }
        if let promptTokens { try CLILimits.check("--prompt-tokens", promptTokens, CLILimits.tokens) }
        if let failureRate, !(0...1).contains(failureRate) {
            throw ValidationError("--failure-rate \(failureRate) is out of range: give a share in 0…1")
        }
        if failureRate != nil && assumeFrom != nil {
            throw ValidationError("--assume-from gives the earlier run's failure counts; drop --failure-rate")
        }
    }

    /// The run's inputs: no output may be one of them or hold one.
    var inputs: [URL] {
        (model + (data.map { [$0] } ?? [])
            + (layout.map { $0.contains("/") || $0.hasSuffix(".json") ? [$0] : [] } ?? []))
            .map { URL(fileURLWithPath: $0) }
    }

    /// The display name of model `i`.
    func displayName(_ i: Int) -> String {
        i < name.count ? name[i] : ClaimRun.displayName(of: URL(fileURLWithPath: model[i]))
    }

    func run() throws {
        if plan { return try runPlan() }
        if let shard, let partials { return try runShard(try ShardSpec(parsing: shard), partials: partials) }
        try run(merging: nil)
    }

    /// The run; `merging`: `arbiter merge`'s partial results, which supply every intervened pass.
    func run(merging: PassSharding?) throws {
        let progress = Progress()
        // Every destination is checked before any work starts (and again when written).
        if let out { try OutputSafety.checkFolder(out, kind: .verifyReport, option: "--out", inputs: inputs) }
        if let storeGolden {
            for i in model.indices {
                try OutputSafety.checkFile(try goldenFile(in: storeGolden, model: displayName(i)), kind: .goldenClaims,
                                           option: "--store-golden", inputs: inputs, createFolder: true)
            }
        }
        let promptLayout: PromptLayout?
        do { promptLayout = try layout.map(PromptLayout.named) } catch {
            throw CLIError("--layout \(layout!): \(error)")
        }
        var all: [(AnalysisResults, [ClaimResult])] = []
        let settings = try claimSettings()
        for (i, path) in model.enumerated() {
            progress.say("loading \(path)")
            let shown = displayName(i)
            let say: (String) -> Void = { progress.say("\(shown): \($0)") }
            var input = ClaimRunInput(model: URL(fileURLWithPath: path), data: data.map { URL(fileURLWithPath: $0) },
                                      layout: promptLayout, name: shown, settings: settings,
                                      policy: ItemPolicy(keepGoing: keepGoing), skipBadItems: skipBadItems)
            input.sharding = merging
            let evaluated: (AnalysisResults, [ClaimResult])
            do { evaluated = try ClaimRun.evaluate(input, progress: say) } catch { throw CLIError("\(path): \(error)") }
            if !evaluated.0.skipped.isEmpty {
                progress.say("\(shown): skipped \(evaluated.0.skipped.count) items (listed in the report and JSON)")
            }
            all.append(evaluated)
        }
        progress.finish()
        try emit(all, settings: settings)
    }

    /// Stores goldens (--store-golden), prints the table or JSON, writes the report (--out) and applies --require.
    func emit(_ all: [(AnalysisResults, [ClaimResult])], settings: ClaimRunSettings) throws {
        if let storeGolden {
            for (r, claims) in all {
                let file = try OutputSafety.checkFile(try goldenFile(in: storeGolden, model: r.model),
                                                      kind: .goldenClaims,
                                                      option: "--store-golden", inputs: inputs, createFolder: true)
                do {
                    try FileManager.default.createDirectory(at: file.deletingLastPathComponent(),
                                                            withIntermediateDirectories: true)
                    try GoldenClaims.write(claims, results: r, settings: settings, to: file)
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
        if let require {
            let short = all.flatMap { r, claims in
                claims.filter { $0.verdict < require.verdict }.map { "\(r.model) \($0.id): \($0.verdict.rawValue)" }
            }
            if !short.isEmpty {
                FileHandle.standardError.write(Data(("--require \(require.rawValue): not met by "
                                                     + short.joined(separator: ", ") + "\n").utf8))
                throw ExitCode(1)
            }
        }
    }
}

extension VerifyCommand {
    /// What a merge needs to replay this run, as recorded in every partial (paths absolute).
    var shardInputs: [String: String] {
        func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }
        let layoutText = layout.map { $0.contains("/") || $0.hasSuffix(".json") ? absolute($0) : $0 } ?? ""
        return ["model": absolute(model[0]), "data": data.map(absolute) ?? "", "layout": layoutText,
                "count": "\(count)", "seed": "\(seed)", "random-sets": "\(randomSets)", "name": displayName(0),
                "keep-going": "\(keepGoing)", "skip-bad-items": "\(skipBadItems)", "head-ranking": headRanking,
                "head-positions": headPositions, "mix": mix ?? "", "minimum-per-target": "\(minimumPerTarget)",
                "top-up": "\(topUp)", "key-value-memory": "\(keyValueMemory)",
                "stream-memory": "\(streamMemory)"]
    }

    /// `--shard K/N --partials DIR`: this shard's next round (docs/slurm.md).
    func runShard(_ spec: ShardSpec, partials: String) throws {
        let progress = Progress()
        let folder = try OutputSafety.prepareGrowingFolder(partials, kind: .shardPartials, option: "--partials",
                                                           inputs: inputs) { ShardPartial.parseFileName($0) != nil }
        let settings = try claimSettings()
        progress.say("fingerprinting \(model[0])")
        let identity = ShardRunIdentity(modelFingerprint: try ContentFingerprint.folder(URL(fileURLWithPath: model[0])),
                                        configuration: ClaimRun.configuration(settings),
                                        keyValueBudget: settings.keyValueBudget, streamBudget: settings.streamBudget,
                                        inputs: shardInputs)
        guard let sharding = try PassSharding.shard(spec, folder: folder, identity: identity) else {
            progress.finish()
            print("shard \(spec): all \(ShardPartial.rounds) rounds done in \(folder.path); when every shard's are, "
                  + "run `arbiter merge --partials \(folder.path)`")
            return
        }
        let promptLayout: PromptLayout?
        do { promptLayout = try layout.map(PromptLayout.named) } catch {
            throw CLIError("--layout \(layout!): \(error)")
        }
        var input = ClaimRunInput(model: URL(fileURLWithPath: model[0]), data: data.map { URL(fileURLWithPath: $0) },
                                  layout: promptLayout, name: displayName(0), settings: settings,
                                  policy: ItemPolicy(keepGoing: keepGoing), skipBadItems: skipBadItems)
        input.sharding = sharding
        progress.say("shard \(spec): round \(sharding.round) of \(ShardPartial.rounds)")
        do {
            _ = try ClaimRun.evaluate(input, progress: { progress.say("shard \(spec): \($0)") })
        } catch let written as ShardRoundWritten {
            progress.finish()
            let next = written.round < ShardPartial.rounds
                ? "next: round \(written.round + 1), once every shard has written round \(written.round)"
                : "when every shard has: arbiter merge --partials \(folder.path)"
            print("\(written); \(next)")
            return
        } catch { throw CLIError("\(model[0]): \(error)") }
        throw CLIError("shard \(spec): the run ended without reaching the end of round \(sharding.round) "
                       + "(an Arbiter bug; please report it)")
    }

    /// `--plan`: one plan per model, as a table or (`--json`) a JSON array of plans (docs/verify-plan.md).
    func runPlan() throws {
        let progress = Progress()
        let settings = try claimSettings()
        var assumptions = PlanAssumptions()
        if let failureRate { assumptions.failureRate = failureRate }
        let promptLayout: PromptLayout?
        do { promptLayout = try layout.map(PromptLayout.named) } catch {
            throw CLIError("--layout \(layout!): \(error)")
        }
        var plans: [VerifyPlan] = []
        for (i, path) in model.enumerated() {
            let shown = displayName(i)
            let input = ClaimRunInput(model: URL(fileURLWithPath: path), data: data.map { URL(fileURLWithPath: $0) },
                                      layout: promptLayout, name: shown, settings: settings,
                                      policy: ItemPolicy(keepGoing: keepGoing), skipBadItems: skipBadItems)
            let assumed = try assumeFrom.map { file -> PlanAssumptions in
                // The model's shape, to check the earlier run's top set against (a bad config is the plan's error).
                let shape = (try? PlanModelShape.shape(of: URL(fileURLWithPath: path))).map { s in
                    (s.layers, s.heads, HeadRanking.setSize(fraction: ClaimRun.configuration(settings).headFraction,
                                                            total: s.layers * s.heads))
                }
                return try PlanAssumptionsFile.apply(file, model: shown, to: assumptions, shape: shape)
            } ?? assumptions
            do {
                plans.append(try ClaimRunPlan.make(input, promptTokens: promptTokens, assumptions: assumed,
                                                   progress: { progress.say("\(shown): \($0)") }))
            } catch { throw CLIError("\(path): \(error)") }
        }
        progress.finish()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try encoder.encode(plans), as: UTF8.self))
        } else {
            print(plans.map(PlanTable.text).joined(separator: "\n"))
        }
    }
}

/// `<folder>/<model>.h5`, the golden claims file of a model.
func goldenFile(in folder: String, model: String) throws -> String {
    guard !folder.isEmpty else { throw OutputError(option: "--store-golden", path: folder, "is empty; give a folder") }
    let file = model.replacingOccurrences(of: "/", with: "--")
    return (folder.hasSuffix("/") ? folder : folder + "/") + file + ".h5"
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
