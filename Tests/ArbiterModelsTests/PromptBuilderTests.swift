// Prompt assembly: token-exact spans checked by decoding each span back to its text.
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import ArbiterTokenizers
import Foundation
import Testing

@Suite("Prompt layouts and spans")
struct PromptBuilderTests {
    static let fields = PromptFields(
        context: "The banana on the table is bright blue, as the shop owner told everyone who came by that morning.",
        instruction: "When the image and the text disagree, rely on the image rather than the text context.",
        question: "What color is the banana?",
        constraint: "Answer the question using a single word or phrase. The answer is")

    func tokenizer() throws -> Tokenizer {
        try Tokenizer(url: Repository.model("tiny-llava").appendingPathComponent("tokenizer.json"))
    }

    @Test("built-in layouts load", arguments: ["llava-1.5", "raw", "qwen2-vl", "qwen3-vl"])
    func builtinsLoad(_ name: String) throws {
        let layout = try PromptLayout.builtin(name)
        #expect(layout.name == name)
        #expect(PromptLayout.builtinNames.contains(name))
    }

    @Test("each span decodes back to its text", arguments: ["llava-1.5", "raw"])
    func spansDecodeToText(_ layoutName: String) throws {
        let tok = try tokenizer()
        let builder = try PromptBuilder(layout: try .builtin(layoutName), tokenizer: tok)
        let prompt = try builder.build(Self.fields, imageTokens: 16)
        #expect(prompt.ids == (try tok.encode(prompt.text, addSpecialTokens: true)))
        for (name, text) in [("context", Self.fields.context!), ("instruction", Self.fields.instruction!),
                             ("question", Self.fields.question), ("constraint", Self.fields.constraint!)] {
            let positions = try prompt.spans.positions(name)
            #expect(!positions.isEmpty)
            #expect(positions == Array(positions.first!...positions.last!), "\(name) is not contiguous")
            let decoded = try tok.decode(positions.map { prompt.ids[$0] })
            #expect(decoded.trimmingCharacters(in: .whitespaces) == text, "\(name): '\(decoded)'")
        }
        let image = try prompt.spans.positions("image")
        #expect(image.count == 16 && image.allSatisfy { prompt.ids[$0] == tok.id(of: "<image>") })
        #expect(try prompt.spans.positions("last") == [prompt.ids.count - 1])
        // Spans are disjoint.
        let named = try ["image", "context", "instruction", "question", "constraint"].flatMap { try prompt.spans.positions($0) }
        #expect(Set(named).count == named.count)
    }

    @Test("absent fields drop their slot and its separators")
    func absentFields() throws {
        let builder = try PromptBuilder(layout: try .builtin("llava-1.5"), tokenizer: try tokenizer())
        let noInstruction = try builder.build(PromptFields(context: "A red cube.", question: "What color is the cube?"), imageTokens: 0)
        #expect(!noInstruction.text.contains("<image>"))
        #expect(noInstruction.text.hasSuffix("USER: \nText context: A red cube.\nWhat color is the cube? ASSISTANT:"), "\(noInstruction.text)")
        #expect(throws: ModelError.self) { try noInstruction.spans.positions("instruction") }
        #expect(throws: ModelError.self) { try noInstruction.spans.positions("image") }
    }

    @Test("an image marker inside the text is rejected")
    func twoImageMarkers() throws {
        let builder = try PromptBuilder(layout: try .builtin("llava-1.5"), tokenizer: try tokenizer())
        let error = #expect(throws: ModelError.self) {
            try builder.build(PromptFields(context: "see <image> here", question: "What?"), imageTokens: 16)
        }
        #expect(error?.description.contains("image marker") == true)
    }

    @Test("a layout whose image token the tokenizer lacks is rejected")
    func missingImageToken() throws {
        let error = #expect(throws: ModelError.self) { try PromptBuilder(layout: try .builtin("qwen2-vl"), tokenizer: try tokenizer()) }
        #expect(error?.description.contains("<|image_pad|>") == true)
    }

    @Test("malformed layout files are named", arguments: [
        (#"{"name": "x", "pieces": []}"#, "no pieces"),
        (#"{"name": "x", "pieces": [{"slot": "question"}]}"#, "no \"image\" slot"),
        (#"{"name": "x", "pieces": [{"slot": "image"}, {"slot": "question"}, {"slot": "image"}]}"#, "appears twice"),
        (#"{"name": "x", "pieces": [{"slot": "image", "text": "a"}, {"slot": "question"}]}"#, "exactly one"),
        (#"{"name": "x", "pieces": [{"slot": "image"}, {"slot": "question"}, {"text": "a", "with": "nope"}]}"#, "names no slot"),
        (#"{"pieces": []}"#, "name"),
        // A misspelled key would otherwise leave its default in force in silence.
        (#"{"name": "x", "image_tokn": "<img>", "pieces": [{"slot": "image"}, {"slot": "question"}]}"#,
         #"unknown key "image_tokn""#),
        (#"{"name": "x", "pieces": [{"slot": "image"}, {"slot": "question"}, {"txt": "a"}]}"#,
         #"pieces[2]: unknown key "txt""#),
        (#"{"name": "x", "pieces": [{"slot": "image"}, {"slot": "question"}, {"slot": " "}]}"#, "slot name is empty"),
        // Fixed text may not join a slot's span or a computed one.
        (#"{"name": "x", "pieces": [{"text": "a", "span": "image"}, {"slot": "image"}, {"slot": "question"}]}"#,
         "reserved span name"),
        (#"{"name": "x", "pieces": [{"text": "a", "span": "question"}, {"slot": "image"}, {"slot": "question"}]}"#,
         "a slot or a reserved"),
    ])
    func malformedLayouts(_ json: String, _ phrase: String) throws {
        let tmp = try TemporaryFolder()
        let url = tmp.url.appendingPathComponent("layout.json")
        try Data(json.utf8).write(to: url)
        let error = #expect(throws: (any Error).self) { try PromptLayout(url: url) }
        let text = "\(error.map { "\($0)" } ?? "")"
        #expect(text.contains(phrase) && text.contains("layout.json"), "\(text)")
    }

    @Test("a folder or an empty name is refused as a layout, naming it")
    func layoutNotAFile() throws {
        let tmp = try TemporaryFolder()
        let error = #expect(throws: (any Error).self) { try PromptLayout(url: tmp.url) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("is a folder") == true)
        #expect("\(error.map { "\($0)" } ?? "")".contains(tmp.url.path) == true)
        let empty = #expect(throws: (any Error).self) { try PromptLayout.named(" ") }
        #expect("\(empty.map { "\($0)" } ?? "")".contains("name is empty") == true)
    }

    @Test("errors building a prompt from a layout file name the file")
    func layoutFileNamedInBuildErrors() throws {
        let tmp = try TemporaryFolder()
        let url = tmp.url.appendingPathComponent("mine.json")
        let json = #"{"name": "mine", "image_token": "<picture>", "pieces": [{"slot": "image"}, {"slot": "question"}]}"#
        try Data(json.utf8).write(to: url)
        let layout = try PromptLayout(url: url)
        let error = #expect(throws: (any Error).self) { try PromptBuilder(layout: layout, tokenizer: try tokenizer()) }
        let text = "\(error.map { "\($0)" } ?? "")"
        #expect(text.contains(url.path) && text.contains("<picture>"), "\(text)")
        // The file is not part of the layout's value.
        var copy = layout
        copy.file = nil
        #expect(copy == layout)
    }
}

@Suite("LLaVA from a PNG and a prompt, as transformers does it")
struct LlavaSessionTests {
    /// The golden case's prompt "USER: <image>\nWhat is shown in this picture? ASSISTANT:" as a layout.
    static let goldenLayout = PromptLayout(name: "golden-case", addSpecialTokens: true, imageToken: "<image>", pieces: [
        .init(text: "USER: "), .init(slot: "image"), .init(text: "\n"), .init(slot: "question"), .init(text: " ASSISTANT:"),
    ])

    @Test("PNG → pixel values and prompt → ids match the transformers golden; the whole forward matches")
    func endToEnd() throws {
        let golden = try GoldenActivations(url: Repository.activations.appendingPathComponent("tiny-llava/image-prompt.h5"))
        let session = try ModelSession(directory: Repository.model("tiny-llava"), layout: Self.goldenLayout)
        let image = try PNGImage.read(url: Repository.goldenData.appendingPathComponent("images/llava-test-47x39.png"))
        let input = try session.prepare(PromptFields(question: "What is shown in this picture?"), image: image)
        try expectMatchesGolden(session, input, golden, label: "tiny-llava")
    }

    @Test("candidate answers resolve to the token that would follow the prompt")
    func firstTokens() throws {
        let session = try ModelSession(directory: Repository.model("tiny-llava"))
        let input = try session.prepare(PromptFields(question: "What color is it?", constraint: "The answer is"), image: nil)
        let ids = try session.firstTokens(of: ["red", "red", "blue"], after: input)
        #expect(ids.count == 2)
        let full = try session.tokenizer.encode(input.text + " red", addSpecialTokens: true)
        #expect(full.count > input.ids.count && ids[0] == full[input.ids.count])
    }
}
