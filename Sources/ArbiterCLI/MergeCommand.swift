// `arbiter merge`: the partial results of a sharded `arbiter verify --shard K/N` combined into the run's results,
// exactly those of the unsharded run (results.json equal but for timings), with its table and report.
import ArbiterAnalyses
import ArbiterClaims
import ArbiterFormats
import ArgumentParser
import Foundation

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Combine the partial results of a sharded verify (--shard K/N) into its results and report.",
        discussion: """
        Reads every partial (round-R-shard-K-of-N.json) in the given folders or files; the model, data and options \
        come from the partials, which must all be of one run (same model contents, items, configuration and \
        Arbiter version) and hold every round of every shard once. Then replays the analysis with every \
        intervened pass read from them (the model runs only its baseline passes) and prints and writes what \
        `arbiter verify` would have (docs/slurm.md).
        """)

    @Option(name: .long, help: "A folder of partial results, or one partial (repeat for more).")
    var partials: [String]
    @Option(name: .long, help: "Report folder: new, empty, or an earlier verify report (replaced atomically).")
    var out: String?
    @Flag(name: .long, help: "Print results as JSON instead of a table.") var json = false
    @Option(name: .long, help: "Exit 1 unless every claim reaches this verdict: holds | directional.")
    var require: VerifyCommand.Requirement?
    @Option(name: .long, help: "Also store the verdicts as golden claim results in this folder (<model>.h5).")
    var storeGolden: String?

    func validate() throws {
        guard !partials.isEmpty else { throw ValidationError("give --partials DIR (the folder the shards wrote)") }
        for path in partials { try CLIPaths.checkNotEmpty(["--partials": path]) }
    }

    func run() throws {
        let collected = try ShardPartial.collect(partials.map { URL(fileURLWithPath: $0) })
        guard let first = collected.first else {
            throw CLIError("--partials \(partials.joined(separator: ", ")): no partial results "
                           + "(round-R-shard-K-of-N.json) there")
        }
        let recorded = first.partial.identity.inputs
        func value(_ key: String) throws -> String {
            guard let v = recorded[key] else {
                throw CLIError("\(first.file.path): the partial names no '\(key)' (not written by `arbiter verify "
                               + "--shard`)")
            }
            return v
        }
        var arguments = ["--model", try value("model"), "--name", try value("name"), "--count", try value("count"),
                         "--seed", try value("seed"), "--random-sets", try value("random-sets")]
        if try !value("data").isEmpty { arguments += ["--data", try value("data")] }
        if try !value("layout").isEmpty { arguments += ["--layout", try value("layout")] }
        if try value("keep-going") == "true" { arguments.append("--keep-going") }
        if try value("skip-bad-items") == "true" { arguments.append("--skip-bad-items") }
        // Recorded since these options existed in sharded runs (absent: the defaults).
        if let ranking = recorded["head-ranking"] { arguments += ["--head-ranking", ranking] }
        if let positions = recorded["head-positions"] { arguments += ["--head-positions", positions] }
        if let mix = recorded["mix"], !mix.isEmpty { arguments += ["--mix", mix] }
        for option in ["minimum-per-target", "top-up", "key-value-memory", "stream-memory"] {
            if let value = recorded[option] { arguments += ["--\(option)", value] }
        }
        if let out { arguments += ["--out", out] }
        if json { arguments.append("--json") }
        if let require { arguments += ["--require", require.rawValue] }
        if let storeGolden { arguments += ["--store-golden", storeGolden] }
        let verify: VerifyCommand
        do { verify = try VerifyCommand.parse(arguments) } catch {
            throw CLIError("\(first.file.path): its recorded options do not make a verify run: "
                           + VerifyCommand.message(for: error))
        }
        if let out { try OutputSafety.checkFolder(out, kind: .verifyReport, option: "--out", inputs: verify.inputs) }
        let settings = try verify.claimSettings()
        let model = URL(fileURLWithPath: verify.model[0])
        FileHandle.standardError.write(Data("fingerprinting \(model.path)\n".utf8))
        let identity = ShardRunIdentity(modelFingerprint: try ContentFingerprint.folder(model),
                                        configuration: ClaimRun.configuration(settings),
                                        keyValueBudget: settings.keyValueBudget, streamBudget: settings.streamBudget,
                                        inputs: verify.shardInputs)
        let merging = try PassSharding.merge(collected, identity: identity)
        try verify.run(merging: merging)
    }
}
