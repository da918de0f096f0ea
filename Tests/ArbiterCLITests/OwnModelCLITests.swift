// The CLI paths a user checking their own model takes: `run --image --ids` pinned to a transformers reference
// run, and `verify`'s exit status, display names and report contents.
import ArbiterFormats
import ArbiterTensor
import Foundation
import Testing

@Suite("CLI on a user's own model")
struct OwnModelCLITests {
    static let tolerance = Tolerance(atol: 1e-4, rtol: 5e-5, nmse: 1e-8,
                                     reason: "the repository's tolerance against transformers (README, golden data)")

    /// `arbiter run --ids (transformers' input ids, image tokens expanded) --image --dump` equals the golden
    /// run of transformers: pixel values, image features and logits (and Qwen-VL's image grid).
    @Test("run --image --ids reproduces a transformers reference run", arguments: [
        ("tiny-llava", "llava-test-47x39.png"), ("tiny-qwen2-vl", "qwen2-vl-test-70x38.png"),
    ])
    func imageWithIDs(model: String, image: String) throws {
        let golden = try GoldenActivations(url: Repository.root
            .appendingPathComponent("GoldenData/activations/\(model)/image-prompt.h5"))
        let folder = try TemporaryFolder()
        let ids = try golden.inputIDs().map(String.init).joined(separator: ",")
        let r = try CLI.run(["run", "--model", Repository.model(model).path, "--ids", ids,
                             "--image", Repository.root.appendingPathComponent("GoldenData/images/\(image)").path,
                             "--dump", "out.h5"], in: folder.url)
        #expect(r.status == 0, "\(r)")
        let dump = try GoldenActivations(url: folder.file("out.h5"))
        #expect(try dump.inputIDs() == golden.inputIDs())
        for name in ["pixel_values", "image_features", "logits"] {
            let reference = try golden.tensor(name)
            let report = compare(try dump.tensor(name), to: reference, tolerance: Self.tolerance, label: "\(model) \(name)")
            #expect(report.passed, "\(report)")
        }
        if golden.integerNames.contains("image_grid_thw") {
            #expect(try dump.integers("image_grid_thw").values == golden.integers("image_grid_thw").values)
        }
    }

    @Test("run --ids --image refuses ids whose image tokens do not match the image")
    func imageTokenCount() throws {
        let folder = try TemporaryFolder()
        let image = Repository.root.appendingPathComponent("GoldenData/images/llava-test-47x39.png").path
        try CLI.refuses(["run", "--model", Repository.model("tiny-llava").path, "--ids", "1,2,3", "--image", image],
                        in: folder.url, "--ids hold 0 image tokens", "expand the image token")
    }

    @Test("verify exits 0 when it completed whatever the verdicts; --require gates; --name names the model")
    func exitStatus() throws {
        let folder = try TemporaryFolder()
        let base = ["verify", "--model", Repository.model("arbiter-main").path, "--count", "48", "--random-sets", "2",
                    "--name", "my model"]
        let done = try CLI.run(base + ["--out", "report"], in: folder.url)
        #expect(done.status == 0, "\(done)")
        #expect(done.stdout.contains("my model (llava"), "\(done.stdout.prefix(400))")
        let markdown = try String(contentsOf: folder.file("report/report.md"), encoding: .utf8)
        #expect(markdown.contains("## my model") && markdown.contains("prompt layout `raw` (fingerprint "))
        // Third answers beside the MFR: in the table, the report (markdown and HTML) and the JSON.
        #expect(done.stdout.contains(", third answers "), "\(done.stdout.prefix(600))")
        #expect(markdown.contains("| follows / n | third answers | 95% CI | third / n |"))
        let html = try String(contentsOf: folder.file("report/report.html"), encoding: .utf8)
        #expect(html.contains("<th>third answers</th>"))
        let json = try String(contentsOf: folder.file("report/results.json"), encoding: .utf8)
        #expect(json.contains("\"thirdAnswers\"") && json.contains("\"thirdCounts\""))
        // The bundled toy does not show the paper's mechanism (README): some claim fails, so --require holds fails.
        let gated = try CLI.run(base + ["--require", "holds"], in: folder.url)
        #expect(gated.status == 1 && !gated.signalled, "\(gated)")
        #expect(gated.stderr.contains("--require holds: not met by my model "), "\(gated)")
        // Two random head sets cannot decide the head claims: inconclusive, with the reason, and no requirement met.
        let blockingLine = done.stdout.split(separator: "\n").first { $0.hasPrefix("heads-blocking: ") } ?? ""
        #expect(blockingLine.hasPrefix("heads-blocking: inconclusive: ")
                && blockingLine.contains("2 random head sets, fewer than 200: the p-value cannot go below 1/3"),
                "\(done.stdout)")
        #expect(gated.stderr.contains("my model heads-blocking: inconclusive"), "\(gated)")
    }

    @Test("eval shows the share of third answers under each MFR, with its CI and counts")
    func evalThirdAnswers() throws {
        let folder = try TemporaryFolder()
        let r = try CLI.run(["eval", "--model", Repository.model("arbiter-main").path, "--count", "24"], in: folder.url)
        #expect(r.status == 0, "\(r)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        for target in ["image", "text", "overall"] {
            let mfr = try #require(lines.firstIndex { $0.hasPrefix("  MFR follow-\(target): ") }, "\(r.stdout)")
            try #require(mfr + 1 < lines.count, "\(r.stdout)")
            let third = lines[mfr + 1]
            #expect(third.hasPrefix("    third answers: "), "\(r.stdout)")
            // k/n with the MFR's n, and the share printed is k/n.
            let n = try #require(lines[mfr].split(separator: "/").last?.dropLast())
            let counts = try #require(third.split(separator: "(").last?.split(separator: " ").first)
            let parts = counts.split(separator: "/").compactMap { Int($0) }
            #expect(parts.count == 2 && String(parts[1]) == n, "\(lines[mfr]) / \(third)")
            let share = third.dropFirst("    third answers: ".count).prefix(5)
            try #require(parts.count == 2, "\(third)")
            #expect(share == String(format: "%.3f", Double(parts[0]) / Double(parts[1])), "\(third)")
        }
    }
}
