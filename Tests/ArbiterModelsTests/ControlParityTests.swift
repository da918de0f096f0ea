// The planted-mechanism controls (GoldenData/controls, Tools/make_controls.py) are standard LLaVA folders:
// Arbiter must run them as transformers does. Each control stores transformers' eager run of one follow-image
// and one follow-text conflict item (reference-image.h5, reference-text.h5; the case name is the item's id in
// GoldenData/controls/data): from the item's PNG and fields, Arbiter builds the same ids and pixel values and
// gives the same residual stream after every layer and the same logits, within the golden tolerances.
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

@Suite("Controls match transformers")
struct ControlParityTests {
    static let root = Repository.root.appendingPathComponent("GoldenData/controls")
    static let controls = ["anchored", "direct", "helpful-mlp", "dense", "selective-transfer", "shared-route"]
    static var cases: [(String, String)] { controls.flatMap { c in ["image", "text"].map { (c, $0) } } }

    /// The dataset item `id` of the controls' set, read as plain JSON (fields and image path).
    static func item(_ id: String) throws -> [String: Any] {
        let data = try Data(contentsOf: root.appendingPathComponent("data/dataset.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let items = try #require(json["items"] as? [[String: Any]])
        return try #require(items.first { $0["id"] as? String == id }, "no item \(id) in the controls' dataset")
    }

    @Test("ids, pixels, residual stream and logits as transformers", arguments: cases)
    func parity(_ control: String, _ target: String) throws {
        let folder = Self.root.appendingPathComponent(control)
        let golden = try GoldenActivations(url: folder.appendingPathComponent("reference-\(target).h5"))
        let item = try Self.item(golden.caseName)
        #expect(item["target"] as? String == target)
        let session = try ModelSession(directory: folder)
        let image = try PNGImage.read(url: Self.root.appendingPathComponent("data").appendingPathComponent(try #require(item["image"] as? String)))
        let fields = PromptFields(context: item["context"] as? String, instruction: item["instruction"] as? String,
                                  question: try #require(item["question"] as? String), constraint: item["constraint"] as? String)
        let input = try session.prepare(fields, image: image)
        try expectMatchesGolden(session, input, golden, label: "\(control) \(target)")
        let hooks = HookRun(cache: .patterns(["blocks.*.hook_resid_post"]))
        _ = try session.run(input, logits: .last, hooks: hooks)
        for layer in 0..<session.model.decoder.layerCount {
            let name = "blocks.\(layer).hook_resid_post"
            let report = compare(try #require(hooks.cache[name]), to: try golden.tensor(name),
                                 tolerance: GoldenComparison.float32, label: "\(control) \(target) \(name)")
            #expect(report.passed, "\(report)")
        }
    }
}
