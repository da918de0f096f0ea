// `arbiter verify --head-ranking` and `arbiter rank-overlap`: bad values refused naming the option, the plan
// counting the screen and the candidates, and a two-stage run on the bundled model.
import Foundation
import Testing

@Suite("arbiter verify --head-ranking, arbiter rank-overlap")
struct HeadRankingCLITests {
    static let llava = Repository.model("tiny-llava").path

    static let refusals: [([String], String)] = [
        (["verify", "--model", llava, "--head-ranking", "fast"], "--head-ranking 'fast' is not a head ranking"),
        (["verify", "--model", llava, "--head-ranking", ""], "--head-ranking '' is not a head ranking"),
        (["verify", "--model", llava, "--head-ranking", "dla"], "--head-ranking 'dla' is not a head ranking"),
        (["verify", "--model", llava, "--head-ranking", "dla:0"], "--head-ranking 'dla:0': the candidate count"),
        (["verify", "--model", llava, "--head-ranking=dla:-4"], "--head-ranking 'dla:-4': the candidate count"),
        (["verify", "--model", llava, "--head-ranking", "last-position:x"], "--head-ranking 'last-position:x'"),
        (["verify", "--model", llava, "--head-ranking", "last-position:2000000"],
         "--head-ranking 'last-position:2000000': the candidate count 2000000 is out of range: give 1…1048576"),
        (["verify", "--model", llava, "--head-ranking", "dla:9223372036854775808"], "--head-ranking 'dla:922"),
        (["verify", "--plan", "--model", llava, "--head-ranking", "exact:3"], "--head-ranking 'exact:3'"),
        (["rank-overlap", "--model", llava, "--multiples", "0"], "--multiples '0': '0' is not an integer in 1…1024"),
        (["rank-overlap", "--model", llava, "--multiples", "2,,4"], "--multiples '2,,4' has an empty entry"),
        (["rank-overlap", "--model", llava, "--random-sets", "0"], "--random-sets 0 is out of range"),
        (["rank-overlap"], "--model"),
    ]

    @Test("bad --head-ranking and rank-overlap values are refused, naming the option", arguments: refusals)
    func refused(arguments: [String], fragment: String) throws {
        let folder = try TemporaryFolder()
        _ = try CLI.refuses(arguments, in: folder.url, fragment)
        #expect(try folder.snapshot().isEmpty, "\(arguments) wrote something")
    }

    @Test("--plan counts the screen and the candidates, not every head")
    func plan() throws {
        let model = Repository.model("arbiter-main").path
        func stages(_ ranking: String) throws -> [[String: Any]] {
            let r = try CLI.run(["verify", "--plan", "--json", "--model", model, "--count", "60", "--random-sets", "10",
                                 "--head-ranking", ranking], timeout: 600)
            #expect(r.status == 0 && !r.signalled, "\(r)")
            let plans = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
            return try #require(plans.first?["stages"] as? [[String: Any]])
        }
        func ranking(_ stages: [[String: Any]]) -> [String: Int] {
            var out: [String: Int] = [:]
            for s in stages {
                if let n = s["name"] as? String, n.hasPrefix("head ranking") { out[n] = s["passes"] as? Int }
            }
            return out
        }
        let exact = ranking(try stages("exact"))
        let all = try #require(exact["head ranking (single-head ablation)"])
        #expect(exact.count == 1)
        // arbiter-main: 12 layers × 8 heads; 10 candidates.
        let dla = ranking(try stages("dla:10"))
        #expect(dla == ["head ranking (single-head ablation of 10 candidates, DLA screen)": all / 96 * 10], "\(dla)")
        let last = ranking(try stages("last-position:10"))
        #expect(last["head ranking screen (last-position ablation)"] == all, "\(last)")
        #expect(last["head ranking (single-head ablation of 10 candidates, last-position screen)"] == all / 96 * 10)
        let table = try CLI.run(["verify", "--plan", "--model", model, "--count", "60", "--random-sets", "10",
                                 "--head-ranking", "last-position:10"], timeout: 600)
        #expect(table.status == 0 && table.stdout.contains("head ranking screen (last-position ablation)"), "\(table)")
    }
}
