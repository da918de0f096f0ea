// The paper's conflict prompt on each image family added after LLaVA and Qwen-VL, through the CLI a user runs:
// `arbiter run --prompt --image` with the family's default layout (Qwen3-VL's: Qwen3VLCLITests), and `verify` on
// each tiny checkpoint.
import ArbiterFormats
import Foundation
import Testing

@Suite("CLI on the newer families")
struct NewFamilyCLITests {
    static let conflictPrompt = "Text context: The square is red.\nRely on the image.\nWhat color is the square?\n"
        + "The answer is"

    @Test("run --prompt --image on tiny-internvl: the internvl layout, 7 tiles of 4 image tokens")
    func internVLRun() throws {
        let folder = try TemporaryFolder()
        let image = Repository.root.appendingPathComponent("GoldenData/images/internvl-test-45x29.png").path
        let r = try CLI.run(["run", "--model", Repository.model("tiny-internvl").path, "--image", image,
                             "--prompt", Self.conflictPrompt, "--dump", "run.h5"], in: folder.url)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("(layout internvl)"), "\(r.stdout)")
        let span = r.stdout.split(separator: "\n").first { $0.contains("span image: ") }.map(String.init) ?? ""
        let bounds = (span.split(separator: " ").last.map(String.init) ?? "").components(separatedBy: "..<")
            .compactMap { Int($0) }
        #expect(bounds.count == 2 && bounds[1] - bounds[0] == 28, "\(span)")
        let dump = try GoldenActivations(url: folder.file("run.h5"))
        #expect(try dump.tensor("pixel_values").shape == [7, 3, 16, 16])
    }

    @Test("verify runs every claim on each newer family's tiny checkpoint and writes its report",
          arguments: [("tiny-internvl", "internvl, 3 layers × 4 heads"),
                      ("tiny-qwen3-vl", "qwen3_vl, 4 layers × 4 heads")])
    func verify(_ model: String, _ shape: String) throws {
        let folder = try TemporaryFolder()
        let r = try CLI.run(["verify", "--model", Repository.model(model).path, "--count", "40",
                             "--random-sets", "20", "--out", "report"], in: folder.url)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("\(model) (\(shape))"), "\(r.stdout.prefix(400))")
        for claim in ["anchors", "shallow-nonselective", "deep-selective", "mlp-inertia", "heads-blocking",
                      "heads-amplification", "specificity"] {
            #expect(r.stdout.contains("\n\(claim) "), "no verdict row for \(claim)")
        }
        let json = try String(contentsOf: folder.file("report/results.json"), encoding: .utf8)
        #expect(json.contains(model), "results.json does not name the model")
    }
}
