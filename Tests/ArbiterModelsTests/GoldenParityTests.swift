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
                      ("image_token_index", "9999", "image_token_id 9999")])
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
