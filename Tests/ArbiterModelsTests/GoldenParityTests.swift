// Every golden tensor of every bundled checkpoint matches transformers (eager, float32).
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

@Suite("Parity with transformers (golden activations)")
struct GoldenParityTests {
    @Test("golden file matches", arguments: Repository.goldenFiles())
    func goldenFileMatches(_ relativePath: String) throws {
        let golden = try GoldenActivations(url: Repository.activations.appendingPathComponent(relativePath))
        let model = try ModelRegistry.load(Repository.model(golden.modelID))
        let reports = try GoldenComparison.run(model: model, golden: golden)
        #expect(!reports.isEmpty)
        for report in reports {
            #expect(report.passed, "\(report)")
        }
    }

    @Test("there are golden files for every bundled tiny architecture")
    func goldensExist() {
        let models = Set(Repository.goldenFiles().map { String($0.split(separator: "/")[0]) })
        #expect(models.isSuperset(of: ["tiny-llama", "tiny-qwen2"]), "golden models found: \(models.sorted())")
    }
}

@Suite("LLaVA checkpoint layouts")
struct LlavaLayoutTests {
    @Test("the transformers-5 layout and the llava-hf hub layout load to identical logits")
    func bothLayoutsAgree() throws {
        let golden = try GoldenActivations(url: Repository.activations.appendingPathComponent("tiny-llava/image-prompt.h5"))
        let ids = try golden.inputIDs()
        let pixels = try golden.tensor("pixel_values")
        let p = pixels.reshaped(Array(pixels.shape.dropFirst()))
        let v5 = try #require(try ModelRegistry.load(Repository.model("tiny-llava")) as? LlavaModel)
        let hub = try #require(try ModelRegistry.load(Repository.model("tiny-llava-hub")) as? LlavaModel)
        // OpenBLAS's last bits depend on its (process-wide) thread count, which analyses running in parallel
        // tests lower to 1: pin it for the pair of runs.
        let (a, b) = try BLAS.withSingleThread { (try v5.forward(ids: ids, pixelValues: p).logits, try hub.forward(ids: ids, pixelValues: p).logits) }
        #expect(a != nil && a == b)
    }

    @Test("image-token count must equal the feature count")
    func imageTokenMismatch() throws {
        let golden = try GoldenActivations(url: Repository.activations.appendingPathComponent("tiny-llava/image-prompt.h5"))
        let pixels = try golden.tensor("pixel_values")
        let model = try #require(try ModelRegistry.load(Repository.model("tiny-llava")) as? LlavaModel)
        var ids = try golden.inputIDs()
        let first = try #require(ids.firstIndex(of: model.configuration.imageTokenID))
        ids.remove(at: first)
        let error = #expect(throws: ModelError.self) {
            try model.forward(ids: ids, pixelValues: pixels.reshaped(Array(pixels.shape.dropFirst())))
        }
        #expect(error?.description.contains("image tokens") == true, "\(String(describing: error))")
        #expect(throws: ModelError.self) { try model.forward(ids: try golden.inputIDs(), pixelValues: nil) }
    }
}

@Suite("LLaVA configuration errors")
struct LlavaConfigurationErrorTests {
    @Test("an unknown vision model type, a bad feature layer and an image token outside the vocabulary are named",
          arguments: [("vision_config.model_type", "\"siglip_vision_model\"", "siglip_vision_model"),
                      ("vision_feature_layer", "-9", "vision_feature_layer -9"),
                      ("image_token_index", "9999", "image_token_index 9999")])
    func badConfig(_ key: String, _ value: String, _ phrase: String) throws {
        let tmp = try TemporaryFolder()
        let folder = try tmp.copyModel("tiny-llava")
        let parsed = try JSONSerialization.jsonObject(with: Data(value.utf8), options: [.fragmentsAllowed])
        try editConfig(folder) { object in
            if key.hasPrefix("vision_config.") {
                var vision = object["vision_config"] as! [String: Any]
                vision[String(key.dropFirst("vision_config.".count))] = parsed
                object["vision_config"] = vision
            } else {
                object[key] = parsed
                object["image_token_id"] = nil
            }
        }
        let error = #expect(throws: ModelError.self) { try ModelRegistry.load(folder) }
        #expect(error?.description.contains(phrase) == true && error?.description.contains("config.json") == true,
                "\(String(describing: error))")
    }
}

@Suite("Golden comparison errors name the golden file")
struct GoldenComparisonErrorTests {
    /// Writes a tiny-llama golden file with ids [1, 5, 9] and the given float datasets.
    func golden(_ folder: TemporaryFolder, _ name: String, _ datasets: [String: Tensor]) throws -> GoldenActivations {
        let url = folder.url.appendingPathComponent(name)
        let writer = try GoldenWriter(url: url, modelID: "tiny-llama", modelType: "llama", source: "test", seed: 0,
                                      caseName: "errors")
        try writer.writeInputIDs([1, 5, 9])
        for (hook, tensor) in datasets { try writer.write(hook: hook, tensor: tensor) }
        try writer.commit()
        return try GoldenActivations(url: url)
    }

    func expectError(_ golden: GoldenActivations, _ phrase: String, kind: FormatError.Kind) throws {
        let model = try ModelRegistry.load(Repository.model(golden.modelID))
        let error = #expect(throws: FormatError.self) { try GoldenComparison.run(model: model, golden: golden) }
        #expect(error?.kind == kind, "\(String(describing: error))")
        #expect(error?.description.contains(golden.url.path) == true, "\(String(describing: error))")
        #expect(error?.description.contains(phrase) == true, "\(String(describing: error)) lacks \(phrase)")
    }

    @Test("a held-out item file is refused as not one forward pass")
    func heldOutFile() throws {
        let url = Repository.activations.appendingPathComponent("arbiter-main/heldout.h5")
        let golden = try GoldenActivations(url: url)
        try expectError(golden, "a held-out item file ('item_offsets' splits its input_ids into items)",
                        kind: .unsupported)
    }

    @Test("a hook the model does not have")
    func unknownHook() throws {
        let folder = try TemporaryFolder()
        let zeros = Tensor(shape: [3, 64], scalars: Array(repeating: 0, count: 192))
        let golden = try golden(folder, "unknown.h5", ["blocks.7.hook_resid_post": zeros])
        try expectError(golden, "unknown hook name blocks.7.hook_resid_post", kind: .inconsistent)
    }

    @Test("a dataset whose shape differs from the computed activation is refused before it is read")
    func shapeMismatch() throws {
        let folder = try TemporaryFolder()
        let golden = try golden(folder, "logits.h5",
                                ["logits": Tensor(shape: [3, 7], scalars: Array(repeating: 0, count: 21))])
        try expectError(golden, "dataset 'logits' has shape [3, 7] but the model computed [3, 512]; not read",
                        kind: .inconsistent)
    }
}

@Suite("arbiter compare")
struct CompareCommandTests {
    /// Runs the `arbiter` executable built beside the test bundle from the package root.
    func arbiter(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = DeterminismTests.arbiter
        process.arguments = arguments
        process.currentDirectoryURL = Repository.root
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self),
                String(decoding: err, as: UTF8.self))
    }

    static var built: Bool { FileManager.default.isExecutableFile(atPath: DeterminismTests.arbiter.path) }

    @Test("held-out item files are skipped with the reason, one-pass goldens compared", .enabled(if: built))
    func skipsHeldOut() throws {
        let run = try arbiter(["compare", "--golden", "GoldenData/activations/arbiter-main/heldout.h5",
                               "--golden", "GoldenData/activations/tiny-llama/random-24.h5"])
        #expect(run.status == 0, "\(run.output)\(run.errors)")
        #expect(run.output.contains("skip arbiter-main/heldout: "), "\(run.output)")
        #expect(run.output.contains("GoldenData/activations/arbiter-main/heldout.h5 is a held-out item file"),
                "\(run.output)")
        #expect(run.output.contains("ok   tiny-llama/random-24"), "\(run.output)")
        #expect(run.output.contains("1 file skipped"), "\(run.output)")
        let only = try arbiter(["compare", "--golden", "GoldenData/activations/arbiter-main/heldout.h5"])
        #expect(only.status != 0 && only.errors.contains("nothing compared"), "\(only.errors)")
    }

    @Test("an error loading the golden file's model names the golden file", .enabled(if: built))
    func modelErrorNamesFile() throws {
        let folder = try TemporaryFolder()
        let run = try arbiter(["compare", "--golden", "GoldenData/activations/tiny-llama/random-24.h5",
                               "--models", folder.url.path])
        #expect(run.status != 0)
        #expect(run.errors.contains("GoldenData/activations/tiny-llama/random-24.h5: cannot load its model "
                                    + "'tiny-llama'"), "\(run.errors)")
    }
}
