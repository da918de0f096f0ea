// The own-model fixture (Tools/make_own_model.py): a tiny LLaVA with a whitespace WordLevel tokenizer whose
// `<image>` is a vocabulary word, and its own layout. From the PNG and the item's fields, Arbiter builds the
// prompt transformers ran (the script assembles it by the same layout rules and tokenizes it with `tokenizers`),
// the same pixel values, and the same logits. Needs the layout's `image_separator` (the #21 PromptLayout change).
import ArbiterFormats
import ArbiterModels
import Foundation
import Testing

@Suite("Own-model fixture")
struct OwnModelFixtureTests {
    static let folder = Repository.root.appendingPathComponent("Tests/ArbiterCLITests/Fixtures/own-model")

    @Test("PNG, layout and fields → the reference run's ids, pixel values and logits")
    func referenceRun() throws {
        let golden = try GoldenActivations(url: Self.folder.appendingPathComponent("reference.h5"))
        let layout = try PromptLayout.checked(Self.folder.appendingPathComponent("layout.json").path)
        let session = try ModelSession(directory: Self.folder.appendingPathComponent("model"), layout: layout)
        let image = try PNGImage.read(url: Self.folder.appendingPathComponent("reference.png"))
        let fields = PromptFields(context: "the shape is blue", instruction: "follow the image",
                                  question: "what color is the shape", constraint: "say one word")
        let input = try session.prepare(fields, image: image)
        #expect(input.text == golden.prompt)
        #expect(try input.spans.positions("image") == Array(0..<16))
        try expectMatchesGolden(session, input, golden, label: "own-model")
    }

    @Test("without the separator the image slot is one unknown word, and the error says so")
    func noSeparator() throws {
        var json = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: Self.folder.appendingPathComponent("layout.json"))) as? [String: Any])
        json["image_separator"] = ""
        let layout = try JSONFile.decode(PromptLayout.self, from: JSONSerialization.data(withJSONObject: json),
                                         file: "layout.json")
        let session = try ModelSession(directory: Self.folder.appendingPathComponent("model"), layout: layout)
        let error = #expect(throws: ModelError.self) {
            try session.prepare(PromptFields(question: "what color is the shape"),
                                image: RGBImage(width: 32, height: 32, red: 0, green: 0, blue: 0))
        }
        // The likely cause is named: '<image>' is not an added token, so the layout needs a separator.
        #expect(error?.description.contains("'<image>' is not an added token") == true, "\(String(describing: error))")
        #expect(error?.description.contains("\"image_separator\": \" \"") == true, "\(String(describing: error))")
    }
}
