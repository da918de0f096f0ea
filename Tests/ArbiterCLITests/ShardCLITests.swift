// `verify --shard K/N --partials DIR` and `arbiter merge`: bad options and destinations refused before any work,
// the user's files left alone, and merges that lack a shard refused naming it. (That N shards merged equal the
// unsharded run is ShardingTests.mergeEqualsUnsharded in the library, and `make slurm-verify` on the CLI.)
import Foundation
import Testing

@Suite("CLI sharded verify and merge")
struct ShardCLITests {
    let model = Repository.model("tiny-llava").path

    @Test("--shard and --partials: bad values and contradicting options refused with the reason")
    func options() throws {
        try CLI.refuses(["verify", "--model", model, "--shard", "5/4", "--partials", "p"],
                        "shard 5 of 4 does not exist")
        try CLI.refuses(["verify", "--model", model, "--shard", "two", "--partials", "p"], "is not K/N")
        try CLI.refuses(["verify", "--model", model, "--partials", "p"], "--partials is an option of --shard")
        try CLI.refuses(["verify", "--model", model, "--shard", "1/2"], "--shard needs --partials")
        try CLI.refuses(["verify", "--model", model, "--shard", "1/2", "--partials", "p", "--out", "o"],
                        "--out has nothing to act on")
        try CLI.refuses(["verify", "--model", model, "--model", model, "--shard", "1/2", "--partials", "p"],
                        "--shard runs one --model")
        try CLI.refuses(["merge"], "--partials")
    }

    @Test("--partials refuses the current folder, a folder of the user's and the model's; nothing is written")
    func partialsFolder() throws {
        let home = try TemporaryFolder()
        try home.plant("thesis.tex")
        try home.plant("drafts/notes.txt")
        let before = try home.snapshot()
        for (folder, fragment) in [(".", "is the current folder"), ("drafts", "Arbiter did not write"),
                                   ("thesis.tex", "is a file"), (model, "is an input of this run")] {
            let r = try CLI.refuses(["verify", "--model", model, "--shard", "1/2", "--partials", folder],
                                    in: home.url, fragment)
            #expect(!r.stderr.contains("loading"), "\(folder): \(r)")
        }
        #expect(try home.snapshot() == before)
        // A verify report is not a partials folder either.
        try home.plant("report/.arbiter-output", #"{"entries":[],"kind":"verify-report"}"#)
        try CLI.refuses(["verify", "--model", model, "--shard", "1/2", "--partials", "report"], in: home.url,
                        "is an Arbiter verify-report folder")
    }

    @Test("merge: an empty folder, a missing shard and a malformed partial are refused, naming them")
    func mergeRefusals() throws {
        let home = try TemporaryFolder()
        try home.plant("empty/.keep")
        try CLI.refuses(["merge", "--partials", "empty"], in: home.url, "no partial results")
        try CLI.refuses(["merge", "--partials", "nowhere"], in: home.url, "nowhere", "no such partial")
        try home.plant("p/round-1-shard-1-of-2.json", "{\"format\": 1")
        try CLI.refuses(["merge", "--partials", "p"], in: home.url, "round-1-shard-1-of-2.json", "malformed")
    }
}
