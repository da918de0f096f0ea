// `arbiter verify --plan`: a plan from a model folder and from a config.json alone (the LLaVA-1.5-7B and
// Qwen2.5-VL-7B hub configs in Fixtures/plan), its JSON, and the refusals of contradictory options and bad input.
import Foundation
import Testing

@Suite("arbiter verify --plan")
struct PlanCLITests {
    static let fixtures = Repository.root.appendingPathComponent("Tests/ArbiterCLITests/Fixtures/plan")

    /// A temporary model folder holding only the config.json of fixture `name` (no weights, no tokenizer).
    static func configAlone(_ name: String) throws -> TemporaryFolder {
        let folder = try TemporaryFolder()
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("\(name)/config.json"),
                                         to: folder.file("config.json"))
        return folder
    }

    /// Decodes the JSON array `--plan --json` prints.
    static func plans(_ r: CLIResult) throws -> [[String: Any]] {
        let value = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
        return try #require(value as? [[String: Any]], "not a JSON array of plans: \(r.stdout.prefix(300))")
    }

    @Test("a 7B-shaped config alone (no weights, no tokenizer) gets a plan: passes, FLOPs before/after, time, memory",
          arguments: ["llava-1.5-7b", "qwen2.5-vl-7b", "internvl3-8b"])
    func configAlone(_ name: String) throws {
        let folder = try Self.configAlone(name)
        let r = try CLI.run(["verify", "--plan", "--json", "--model", folder.url.path, "--count", "48",
                             "--random-sets", "20"], timeout: 600)
        #expect(r.status == 0 && !r.signalled, "\(r)")
        let plan = try #require(try Self.plans(r).first)
        #expect(plan["schema"] as? String == "arbiter-verify-plan/4")
        let shape = try #require(plan["shape"] as? [String: Any])
        #expect(shape["layers"] as? Int == (name.hasPrefix("llava") ? 32 : 28))
        let stages = try #require(plan["stages"] as? [[String: Any]])
        #expect(stages.count == 10)
        for stage in stages where (stage["passes"] as? Int ?? 0) > 0 {
            let flops = try #require(stage["flops"] as? Double), before = try #require(stage["flopsBefore"] as? Double)
            #expect(flops > 0 && before >= flops * 0.999, "\(stage)")
            #expect((stage["seconds"] as? Double ?? 0) > 0, "\(stage)")
        }
        // No weights: no pilot, and the plan says its times come from the calibration alone.
        #expect(plan["pilotSeconds"] == nil && stages.allSatisfy { $0["pilotScale"] == nil })
        let memory = try #require(plan["memory"] as? [String: Any])
        #expect((memory["weights"] as? Int ?? 0) > 10_000_000_000, "7B weights at 2 bytes: \(memory)")
        #expect(try folder.snapshot().keys.sorted() == ["config.json"], "the plan wrote into the model folder")
    }

    @Test("the bundled model's plan counts its real items")
    func bundledModel() throws {
        let r = try CLI.run(["verify", "--plan", "--model", Repository.model("arbiter-main").path, "--count", "60",
                             "--random-sets", "10"], timeout: 600)
        #expect(r.status == 0 && !r.signalled, "\(r)")
        for row in ["baselines", "information flow", "head ranking", "α selection", "total", "peak memory",
                    "pilot:"] {
            #expect(r.stdout.contains(row), "no '\(row)' in:\n\(r.stdout)")
        }
        // The pilot timed every stage with passes on the model itself: each such stage carries its scale.
        let j = try CLI.run(["verify", "--plan", "--json", "--model", Repository.model("arbiter-main").path,
                             "--count", "60", "--random-sets", "10"], timeout: 600)
        let plan = try #require(try Self.plans(j).first)
        #expect((plan["pilotSeconds"] as? Double ?? 0) > 0, "\(plan["pilotSeconds"] ?? "none")")
        let stages = try #require(plan["stages"] as? [[String: Any]])
        for stage in stages where (stage["passes"] as? Int ?? 0) > 0 {
            let scale = stage["pilotScale"] as? Double ?? 0
            #expect(scale > 0 && scale.isFinite, "\(stage)")
        }
    }

    @Test("on a LLaVA-1.5-7B config, heads intervened after the image cut the FLOPs ≥ 10× (issue 23's target)")
    func afterImageCut() throws {
        let folder = try Self.configAlone("llava-1.5-7b")
        let r = try CLI.run(["verify", "--plan", "--json", "--model", folder.url.path, "--count", "240",
                             "--head-positions", "after-image"], timeout: 600)
        #expect(r.status == 0 && !r.signalled, "\(r)")
        let plan = try #require(try Self.plans(r).first)
        let flops = try #require(plan["flops"] as? Double), before = try #require(plan["flopsBefore"] as? Double)
        #expect(before / flops >= 10, "FLOPs cut \(before / flops)×")
        let configuration = try #require(plan["configuration"] as? [String: Any])
        #expect(configuration["headPositions"] as? String == "after-image")
        // A 7B's keys and values are over the budget: the knockouts' items run again for them, once.
        let stages = try #require(plan["stages"] as? [[String: Any]])
        let flow = try #require(stages.first { ($0["name"] as? String ?? "").hasPrefix("information flow") })
        #expect((flow["assumption"] as? String ?? "").contains("run again"), "\(flow)")
        // 240 items' residual streams (~80 GB) are over --stream-memory's 4 GiB: not kept, one chunk's held; the
        // peak was 99.8 GB with every item's streams kept (the rest: weights 14.1 GB, pattern and readout rows).
        #expect(plan["keepsStreams"] as? Bool == false)
        let memory = try #require(plan["memory"] as? [String: Any])
        #expect((memory["streams"] as? Int ?? .max) <= 4 << 30, "\(memory)")
        let peak = ["weights", "baselines", "streams", "keysValues", "activations"].reduce(0) {
            $0 + (memory[$1] as? Int ?? 1 << 40)
        }
        #expect(peak < 40_000_000_000, "\(memory)")
        #expect((flow["assumption"] as? String ?? "").contains("residual streams and keys and values"), "\(flow)")
        try CLI.refuses(["verify", "--plan", "--model", folder.url.path, "--head-positions", "image"],
                        "--head-positions 'image' is not one of: all, after-image")
    }

    /// A results.json as `verify --out` writes it, reduced to the fields `--assume-from` reads.
    static func results(model: String, heads: [(Int, Int)], calibrationFailed: Any = 5, failed: Any = 7,
                        extra: Any = 0) -> [String: Any] {
        ["claimsVersion": 1, "models": [["claims": [], "results": [
            "model": model,
            "interventions": ["heads": heads.map { ["layer": $0.0, "head": $0.1] },
                              "calibrationFailedCount": calibrationFailed, "failedCount": failed,
                              "extraFailedCount": extra]]]]]
    }

    @Test("--assume-from: the earlier run's failures and top head set; bad files refused naming the field")
    func assumeFrom() throws {
        let folder = try Self.configAlone("llava-1.5-7b")
        func write(_ name: String, _ object: [String: Any]) throws -> String {
            try JSONSerialization.data(withJSONObject: object).write(to: folder.file(name))
            return folder.path(name)
        }
        // 5% of the 32 × 32 heads is 52: a top set in layers 20–21, where every head-set pass then resumes.
        let deep = (0..<52).map { (20 + $0 / 32, $0 % 32) }
        let good = try write("results.json", Self.results(model: "llava-1.5-7b", heads: deep))
        // Streams kept (48 items' are ~16 GB): the blocking stage then resumes at the top set's first layer alone,
        // without calls running their items again for them (StreamBudgetTests), which this test is not about.
        let base = ["verify", "--plan", "--json", "--model", folder.url.path, "--count", "48", "--random-sets", "20",
                    "--stream-memory", "64"]
        let r = try CLI.run(base + ["--assume-from", good], timeout: 600)
        #expect(r.status == 0 && !r.signalled, "\(r)")
        let plan = try #require(try Self.plans(r).first)
        let assumptions = try #require(plan["assumptions"] as? [String: Any])
        #expect(assumptions["calibrationFailed"] as? Int == 5 && assumptions["heldOutFailed"] as? Int == 7)
        #expect(assumptions["topSetFirstLayer"] as? Int == 20)
        #expect((assumptions["topSet"] as? [[String: Any]])?.count == 52)
        let d = try CLI.run(base, timeout: 600)
        let plain = try #require(try Self.plans(d).first)
        func blocking(_ p: [String: Any]) throws -> [String: Any] {
            let stages = try #require(p["stages"] as? [[String: Any]])
            return try #require(stages.first { ($0["name"] as? String ?? "").hasPrefix("head blocking") })
        }
        let assumed = try blocking(plan), worst = try blocking(plain)
        #expect(assumed["passes"] as? Int == worst["passes"] as? Int)
        // Resuming at layer 20 of 32 instead of 0: well under half of the FLOPs.
        let ratio = (assumed["flops"] as? Double ?? 0) / (worst["flops"] as? Double ?? 1)
        #expect(ratio > 0.2 && ratio < 0.5, "blocking FLOPs with the top set at layers 20–21 / at layer 0: \(ratio)")
        #expect((assumed["assumption"] as? String ?? "").contains("earlier run"), "\(assumed)")
        #expect(try folder.snapshot().keys.sorted() == ["config.json", "results.json"])

        // Refusals name the file and the field.
        try CLI.refuses(base + ["--assume-from", folder.path("none.json")], "--assume-from", "none.json",
                        "cannot be read")
        try "{".write(to: folder.file("broken.json"), atomically: true, encoding: .utf8)
        try CLI.refuses(base + ["--assume-from", folder.path("broken.json")], "broken.json", "not a JSON object")
        try CLI.refuses(base + ["--assume-from", try write("nofailed.json", Self.results(
            model: "x", heads: deep, failed: "seven"))], "nofailed.json", "results.interventions.failedCount")
        try CLI.refuses(base + ["--assume-from", try write("pair.json", Self.results(
            model: "x", heads: [(-1, 0)]))], "pair.json", "item 0 of 'results.interventions.heads'")
        try CLI.refuses(base + ["--assume-from", try write("extra.json", Self.results(
            model: "x", heads: deep, failed: 2, extra: 3))], "extra.json", "'extraFailedCount' 3 exceeds")
        try CLI.refuses(base + ["--assume-from", try write("small.json", Self.results(
            model: "x", heads: Array(deep.prefix(5))))], "small.json", "holds 5 heads", "is 52 heads")
        try CLI.refuses(base + ["--assume-from", try write("outside.json", Self.results(
            model: "x", heads: Array(deep.dropLast()) + [(40, 0)]))], "outside.json", "names head 40.0", "32 layers")
        try CLI.refuses(base + ["--assume-from", good, "--failure-rate", "0.3"], "drop --failure-rate")
        try CLI.refuses(["verify", "--model", folder.url.path, "--assume-from", good],
                        "--assume-from is an option of --plan")
    }

    @Test("--plan with options that act on a run's results, or plan options without --plan, are refused")
    func contradictoryOptions() throws {
        let model = Repository.model("tiny-llava").path
        let folder = try TemporaryFolder()
        try CLI.refuses(["verify", "--plan", "--model", model, "--out", folder.path("r")], in: folder.url,
                        "--plan runs nothing, so --out")
        try CLI.refuses(["verify", "--plan", "--model", model, "--store-golden", folder.path("g")], in: folder.url,
                        "--store-golden")
        try CLI.refuses(["verify", "--plan", "--model", model, "--require", "holds"], in: folder.url, "--require")
        try CLI.refuses(["verify", "--model", model, "--prompt-tokens", "100"], in: folder.url,
                        "--prompt-tokens is an option of --plan")
        try CLI.refuses(["verify", "--model", model, "--failure-rate", "0.2"], in: folder.url, "--failure-rate")
        try CLI.refuses(["verify", "--plan", "--model", model, "--failure-rate", "1.5"], in: folder.url,
                        "--failure-rate 1.5 is out of range")
        try CLI.refuses(["verify", "--plan", "--model", model, "--prompt-tokens", "0"], in: folder.url,
                        "--prompt-tokens 0 is out of range")
        #expect(try folder.snapshot().isEmpty)
    }

    @Test("a config of an unknown model_type, a bad field, or an unreadable dataset: the error names the file")
    func badInput() throws {
        let folder = try TemporaryFolder()
        try folder.plant("mamba/config.json", #"{"model_type": "mamba", "hidden_size": 64}"#)
        try CLI.refuses(["verify", "--plan", "--model", folder.path("mamba")], in: folder.url,
                        folder.path("mamba/config.json"), "mamba")
        try folder.plant("negative/config.json", #"{"model_type": "llama", "num_hidden_layers": -3}"#)
        try CLI.refuses(["verify", "--plan", "--model", folder.path("negative")], in: folder.url,
                        folder.path("negative/config.json"), "num_hidden_layers")
        try folder.plant("data/dataset.json", "{ not json")
        try CLI.refuses(["verify", "--plan", "--model", Repository.model("tiny-llava").path, "--data",
                         folder.path("data")], in: folder.url, folder.path("data/dataset.json"))
        try CLI.refuses(["verify", "--plan", "--model", folder.path("nowhere")], in: folder.url, folder.path("nowhere"))
        try CLI.refuses(["verify", "--plan", "--model", folder.path("negative"), "--prompt-tokens", "3"],
                        in: folder.url, "num_hidden_layers")
        let llava = Self.fixtures.appendingPathComponent("llava-1.5-7b").path
        try CLI.refuses(["verify", "--plan", "--model", llava, "--prompt-tokens", "580"], in: folder.url,
                        "580 prompt tokens cannot hold the 576 image tokens")
    }
}
