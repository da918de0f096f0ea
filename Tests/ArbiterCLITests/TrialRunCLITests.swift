// A trial run — a few generated items to try the whole pipeline on a model (or time it on a 7B) before a real
// run: `--mix`, `--minimum-per-target`, `--top-up`, `--key-value-memory` and `--stream-memory`, their refusals,
// the claims a trial run cannot decide, the plan that honours them, a run whose residual streams and keys and
// values run again, and a sharded trial run merged into the unsharded one.
import Foundation
import Testing

@Suite("arbiter verify: trial runs (--mix, --minimum-per-target, --top-up, --key-value-memory)")
struct TrialRunCLITests {
    static let model = Repository.model("arbiter-main").path
    /// Four conflict items (two per instruction target with the default seed), no top-up, one random set.
    static let trial = ["--count", "4", "--mix", "conflict=1", "--minimum-per-target", "1", "--top-up", "0",
                        "--random-sets", "1"]

    @Test("bad values are refused naming the option, before the model is loaded")
    func refusals() throws {
        let cases: [([String], String)] = [
            (["--mix", "conflict=x"], "--mix 'conflict=x'"),
            (["--mix", "puzzle=1"], "unknown kind 'puzzle'"),
            (["--mix", "conflict=0"], "the weights sum to zero"),
            (["--minimum-per-target", "0"], "--minimum-per-target 0 is out of range"),
            (["--top-up=-1"], "--top-up -1 is out of range"),
            (["--key-value-memory=-1"], "--key-value-memory -1.0 is out of range"),
            (["--key-value-memory", "nan"], "--key-value-memory nan is out of range"),
            (["--stream-memory=-2"], "--stream-memory -2.0 is out of range"),
            (["--stream-memory", "inf"], "--stream-memory inf is out of range"),
            (["--mix", "conflict=1", "--data", "somewhere"], "a --data folder's items are its own"),
        ]
        for (options, fragment) in cases {
            let r = try CLI.refuses(["verify", "--model", Self.model] + options, fragment)
            #expect(!r.stderr.contains("loading"), "\(options): \(r)")
        }
    }

    @Test("four items are refused by default; with --minimum-per-target 1 the run completes, every claim inconclusive")
    func fourItems() throws {
        try CLI.refuses(["verify", "--model", Self.model, "--count", "4", "--mix", "conflict=1"],
                        "conflict items following the image: 2 samples, at least 8 needed")
        let r = try CLI.run(["verify", "--model", Self.model, "--json"] + Self.trial, timeout: 600)
        #expect(r.status == 0 && !r.signalled, "\(r)")
        let value = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let models = try #require(value?["models"] as? [[String: Any]], "\(r.stdout.prefix(300))")
        let claims = try #require(models.first?["claims"] as? [[String: Any]], "\(models.first?.keys.sorted() ?? [])")
        #expect(claims.count == 7)
        for claim in claims {
            let id = claim["id"] as? String ?? "?", detail = claim["detail"] as? String ?? ""
            #expect(claim["verdict"] as? String == "inconclusive", "\(id): \(detail)")
            if ["anchors", "shallow-nonselective", "deep-selective", "mlp-inertia"].contains(id) {
                #expect(detail.contains("conflict items instructed to follow the image, fewer than 8 (4 per split)"),
                        "\(id): \(detail)")
            }
        }
        let amplification = try #require(claims.first { $0["id"] as? String == "heads-amplification" })
        #expect((amplification["detail"] as? String ?? "").contains("the run's top-up was 0"), "\(amplification)")
        let results = try #require(models.first?["results"] as? [String: Any])
        #expect((results["dataset"] as? String ?? "").contains("kinds conflict=1.0"), "\(results["dataset"] ?? "")")
        let configuration = try #require(results["configuration"] as? [String: Any])
        #expect(configuration["minimumPerTarget"] as? Int == 1 && configuration["extraConflictCap"] as? Int == 0)
    }

    @Test("the plan takes --key-value-memory: a 7B config's four items keep their keys and values with 4 GiB")
    func planKeyValueMemory() throws {
        let folder = try PlanCLITests.configAlone("llava-1.5-7b")
        func plan(_ extra: [String]) throws -> [String: Any] {
            let r = try CLI.run(["verify", "--plan", "--json", "--model", folder.url.path] + Self.trial
                                + ["--head-ranking", "dla:4", "--head-positions", "after-image"] + extra, timeout: 600)
            #expect(r.status == 0 && !r.signalled, "\(r)")
            return try #require(try PlanCLITests.plans(r).first)
        }
        let small = try plan([]), large = try plan(["--key-value-memory", "4"])
        #expect(small["keepsKeysValues"] as? Bool == false && large["keepsKeysValues"] as? Bool == true)
        #expect(small["keepsStreams"] as? Bool == true, "four items' streams (~1.4 GB) fit --stream-memory's 4 GiB")
        let flops = { (p: [String: Any]) in p["flops"] as? Double ?? .nan }
        #expect(flops(large) < flops(small), "kept keys and values spare the passes that ran them again")
        #expect(small["items"] as? Int == 4, "\(small["items"] ?? "")")
    }

    @Test("a sharded trial run with a two-stage ranking merges into exactly the unsharded results")
    func shardedTrial() throws {
        let home = try TemporaryFolder()
        let options = Self.trial + ["--head-ranking", "dla:4"]
        let whole = try CLI.run(["verify", "--model", Self.model, "--json"] + options, timeout: 600)
        #expect(whole.status == 0, "\(whole)")
        for _ in 1...3 {
            for shard in ["1/2", "2/2"] {
                let r = try CLI.run(["verify", "--model", Self.model, "--shard", shard, "--partials",
                                     home.file("partials").path] + options, timeout: 600)
                #expect(r.status == 0, "\(shard): \(r)")
            }
        }
        let merged = try CLI.run(["merge", "--partials", home.file("partials").path, "--json"], timeout: 600)
        #expect(merged.status == 0, "\(merged)")
        #expect(try Self.withoutTimings(merged.stdout) == Self.withoutTimings(whole.stdout))
    }

    @Test("--stream-memory 0 --key-value-memory 0: both run again per stage; the same verdicts and statistics")
    func streamsRunAgain() throws {
        let home = try TemporaryFolder()
        let options = Self.trial + ["--head-positions", "after-image"]
        let kept = try CLI.run(["verify", "--model", Self.model, "--json"] + options, timeout: 600)
        let again = try CLI.run(["verify", "--model", Self.model, "--json", "--stream-memory", "0",
                                 "--key-value-memory", "0", "--out", home.file("report").path] + options, timeout: 600)
        #expect(kept.status == 0 && again.status == 0, "\(kept)\n\(again)")
        #expect(again.stderr.contains("residual streams over --stream-memory"), "\(again.stderr.suffix(2000))")
        #expect(again.stderr.contains("residual streams and keys and values run again: chunk 1/"),
                "\(again.stderr.suffix(2000))")
        func claims(_ text: String) throws -> [[String: Any]] {
            let value = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            let models = try #require(value?["models"] as? [[String: Any]])
            return try #require(models.first?["claims"] as? [[String: Any]])
        }
        let a = try claims(kept.stdout), b = try claims(again.stdout)
        #expect(a.count == 7 && b.count == 7)
        for (x, y) in zip(a, b) {
            #expect(x["id"] as? String == y["id"] as? String && x["verdict"] as? String == y["verdict"] as? String,
                    "\(x)\n\(y)")
            let u = x["statistic"] as? Double ?? .nan, v = y["statistic"] as? Double ?? .nan
            #expect(u == v || (u.isNaN && v.isNaN) || abs(u - v) <= 1e-4 * max(1, abs(u)), "\(x["id"] ?? ""): \(u) vs \(v)")
        }
        // The report says the head interventions acted after the image only.
        let report = try String(contentsOf: home.file("report").appendingPathComponent("report.md"), encoding: .utf8)
        #expect(report.contains("head interventions (ranking, blocking, α, amplification) after the image only "
                                + "(`--head-positions after-image`"), "\(report.prefix(1500))")
    }

    /// The JSON text with every "seconds" field removed, re-serialized with sorted keys.
    static func withoutTimings(_ text: String) throws -> String {
        func strip(_ value: Any) -> Any {
            if let object = value as? [String: Any] {
                return object.filter { $0.key != "seconds" }.mapValues(strip)
            }
            if let array = value as? [Any] { return array.map(strip) }
            return value
        }
        let value = strip(try JSONSerialization.jsonObject(with: Data(text.utf8)))
        return String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]),
                      as: UTF8.self)
    }
}
