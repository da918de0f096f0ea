// The valid inputs every fuzz case starts from: the small bundled models and files of GoldenData, copied into
// the case's folder (only what a case may mutate is copied; the rest is read in place).
import Foundation

enum FuzzBases {
    static let question = "What color is the circle?"
    static let models = "GoldenData/models"

    /// tiny-llama on token ids.
    static let llama = Base(id: "llama") { ws in
        ["run", "--model", try ws.copy("\(models)/tiny-llama", to: "model"), "--ids", "1,2,3,4,5,6,7,8"]
    }

    /// tiny-llava on a prompt and a PNG (its default layout, llava-1.5).
    static let llava = Base(id: "llava") { ws in
        [
            "run", "--model", try ws.copy("\(models)/tiny-llava", to: "model"), "--prompt", question,
            "--image", try ws.copy("GoldenData/images/llava-test-47x39.png", to: "image.png"),
        ]
    }

    /// tiny-qwen2-vl on a prompt and a PNG (its default layout, qwen2-vl).
    static let qwen = Base(id: "qwen2vl") { ws in
        [
            "run", "--model", try ws.copy("\(models)/tiny-qwen2-vl", to: "model"), "--prompt", question,
            "--image", try ws.copy("GoldenData/images/qwen2-vl-test-70x38.png", to: "image.png"),
        ]
    }

    /// tiny-llava with a PNG only (the model read in place): the image is what cases mutate.
    static let llavaImage = Base(id: "llava") { ws in
        [
            "run", "--model", Repository.model("tiny-llava").path, "--prompt", question,
            "--image", try ws.copy("GoldenData/images/llava-test-47x39.png", to: "image.png"),
        ]
    }

    static let qwenImage = Base(id: "qwen2vl") { ws in
        [
            "run", "--model", Repository.model("tiny-qwen2-vl").path, "--prompt", question,
            "--image", try ws.copy("GoldenData/images/qwen2-vl-test-70x38.png", to: "image.png"),
        ]
    }

    /// tiny-llava with `--layout layout.json`, a copy of the built-in llava-1.5 layout.
    static let layout = Base(id: "llava") { ws in
        [
            "run", "--model", Repository.model("tiny-llava").path, "--prompt", question,
            "--image", Repository.root.appendingPathComponent("GoldenData/images/llava-test-47x39.png").path,
            "--layout", try ws.copy("Sources/ArbiterModels/Prompt/Layouts/llava-1.5.json", to: "layout.json"),
        ]
    }

    /// Eight held-out items (every kind, both targets) with their images, as `data/`.
    static func dataset(_ ws: Workspace) throws -> String {
        let heldout = Repository.root.appendingPathComponent("GoldenData/heldout")
        let all = try FuzzJSON.read(heldout.appendingPathComponent("dataset.json"))
        var want = [
            "conflict/image": 2, "conflict/text": 2, "consistent/image": 1, "no_instruction/": 1,
            "image_only/": 1, "text_only/": 1,
        ]
        var chosen: [FuzzJSON] = []
        for item in all["items"]?.elements ?? [] {
            let key = "\(item["kind"]?.stringValue ?? "")/\(item["target"]?.stringValue ?? "")"
            guard let n = want[key], n > 0 else { continue }
            want[key] = n - 1
            chosen.append(item)
            if let image = item["image"]?.stringValue {
                try ws.copy("GoldenData/heldout/\(image)", to: "data/\(image)")
            }
        }
        guard want.values.allSatisfy({ $0 == 0 }) else { throw FuzzSetupError("heldout lacks items: \(want)") }
        try ws.write("data/dataset.json", all.setting("items", .array(chosen)).data)
        return ws.path("data")
    }

    static let dataCheck = Base(id: "check") { ws in ["data", "check", "--data", try dataset(ws)] }

    /// `eval` on arbiter-shortcut (trained on this vocabulary; tiny-llava's prompts would not fit its positions).
    static let dataEval = Base(id: "eval") { ws in
        ["eval", "--model", Repository.model("arbiter-shortcut").path, "--data", try dataset(ws)]
    }

    /// `compare` on a copy of a golden file against the bundled models.
    static func golden(_ id: String, _ file: String) -> Base {
        Base(id: id) { ws in
            [
                "compare", "--golden", try ws.copy("GoldenData/activations/\(file)", to: "golden.h5"),
                "--models", Repository.root.appendingPathComponent(models).path,
            ]
        }
    }
}
