// Every writer of the CLI refuses a destination Arbiter did not create — before any work starts — and leaves
// the user's files as they were.
import Foundation
import Testing

@Suite("CLI output safety")
struct OutputSafetyCLITests {
    /// A folder standing for the user's working directory, with a file of theirs in it.
    func workspace() throws -> TemporaryFolder {
        let folder = try TemporaryFolder()
        try folder.plant("thesis.tex")
        try folder.plant("data/notes.txt")
        return folder
    }

    @Test("verify --out refuses the current folder, its parent, the empty string, / and the home folder")
    func verifyForbiddenFolders() throws {
        let home = try workspace()
        let model = Repository.model("tiny-llava").path
        let before = try home.snapshot()
        for (out, fragment) in [(".", "is the current folder"), ("", "is empty"), ("/", "is the root folder"),
                                ("..", "holds the current folder")] {
            let r = try CLI.refuses(["verify", "--model", model, "--out", out], in: home.url, fragment)
            // Checked before any work: the model was never loaded.
            #expect(!r.stderr.contains("loading"), "\(out): \(r)")
        }
        #expect(try home.snapshot() == before)
        try CLI.refuses(["verify", "--model", model, "--out", NSHomeDirectory()], "is the home folder")
    }

    @Test("verify --out refuses the model folder, a folder holding it, and a folder of the user's")
    func verifyInputsAndUserFolders() throws {
        let home = try workspace()
        let models = home.url.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Repository.model("tiny-llava"), to: models.appendingPathComponent("mine"))
        let before = try home.snapshot()
        try CLI.refuses(["verify", "--model", "models/mine", "--out", "models/mine"], in: home.url,
                        "is an input of this run")
        try CLI.refuses(["verify", "--model", "models/mine", "--out", "models"], in: home.url, "holds an input of this run")
        try CLI.refuses(["verify", "--model", "models/mine", "--out", "data"], in: home.url, "did not write")
        try CLI.refuses(["verify", "--model", "models/mine", "--out", "thesis.tex"], in: home.url, "is a file")
        try CLI.refuses(["verify", "--model", "models/mine", "--data", "data", "--out", "data/report/.."], in: home.url,
                        "is an input of this run")
        #expect(try home.snapshot() == before)
    }

    @Test("verify --store-golden refuses to overwrite a file Arbiter did not write")
    func storeGolden() throws {
        let home = try workspace()
        try home.plant("claims/tiny-llava.h5", "a transformers golden, not Arbiter's")
        let before = try home.snapshot()
        try CLI.refuses(["verify", "--model", Repository.model("tiny-llava").path, "--store-golden", "claims"],
                        in: home.url, "--store-golden", "claims/tiny-llava.h5", "not an HDF5 file Arbiter wrote")
        try CLI.refuses(["verify", "--model", Repository.model("tiny-llava").path, "--store-golden", ""],
                        in: home.url, "is empty")
        #expect(try home.snapshot() == before)
    }

    @Test("run --dump refuses an existing file Arbiter did not write, and replaces its own dump")
    func dump() throws {
        let home = try workspace()
        let model = Repository.model("tiny-llama").path
        let before = try home.snapshot()
        try CLI.refuses(["run", "--model", model, "--ids", "1,2,3", "--dump", "thesis.tex"], in: home.url,
                        "--dump thesis.tex", "not an HDF5 file Arbiter wrote")
        try CLI.refuses(["run", "--model", model, "--ids", "1,2,3", "--dump", "data"], in: home.url, "is a folder")
        try CLI.refuses(["run", "--model", model, "--ids", "1,2,3", "--dump", ""], in: home.url, "is empty")
        try CLI.refuses(["run", "--model", model, "--ids", "1,2,3", "--dump", "missing/out.h5"], in: home.url,
                        "does not exist")
        #expect(try home.snapshot() == before)
        for _ in 0..<2 {
            let r = try CLI.run(["run", "--model", model, "--ids", "1,2,3", "--dump", "out.h5"], in: home.url)
            #expect(r.status == 0, "\(r)")
        }
        #expect(try home.snapshot().keys.sorted() == (before.keys + ["out.h5"]).sorted())
    }

    @Test("data generate --out refuses a folder of the user's and replaces its own dataset")
    func dataGenerate() throws {
        let home = try workspace()
        let before = try home.snapshot()
        let generate = ["data", "generate", "--count", "3", "--seed", "1", "--image-size", "16", "--out"]
        try CLI.refuses(generate + ["data"], in: home.url, "--out data", "did not write")
        try CLI.refuses(generate + ["."], in: home.url, "is the current folder")
        try CLI.refuses(generate + [""], in: home.url, "is empty")
        #expect(try home.snapshot() == before)
        for seed in ["1", "2"] {
            var arguments = generate + ["set"]
            arguments[5] = seed
            let r = try CLI.run(arguments, in: home.url)
            #expect(r.status == 0, "\(r)")
        }
        let set = home.url.appendingPathComponent("set")
        #expect(FileManager.default.fileExists(atPath: set.appendingPathComponent(".arbiter-output").path))
        #expect(FileManager.default.fileExists(atPath: set.appendingPathComponent("dataset.json").path))
        // Something of the user's inside the generated folder makes it theirs.
        try home.plant("set/my-edit.json")
        try CLI.refuses(generate + ["set"], in: home.url, "holds 'my-edit.json'")
        #expect(FileManager.default.fileExists(atPath: set.appendingPathComponent("my-edit.json").path))
    }
}
