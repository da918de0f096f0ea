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
        let a = try v5.forward(ids: ids, pixelValues: p).logits
        let b = try hub.forward(ids: ids, pixelValues: p).logits
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
