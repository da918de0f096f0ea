// `arbiter layout check` and the schema step of `arbiter data check`, run as a user runs them: what they accept,
// what they refuse (file and JSON path named), and the spans `layout check --model` prints.
import Foundation
import Testing

@Suite("layout check and data check")
struct SchemaCheckCLITests {
    static let llava = Repository.model("tiny-llava").path

    @Test("each built-in layout passes", arguments: ["llava-1.5", "qwen2-vl", "qwen3-vl", "raw"])
    func builtin(_ name: String) throws {
        let r = try CLI.run(["layout", "check", name])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("\(name): layout '\(name)' matches layout.schema.json and the layout rules"),
                "\(r.stdout)")
    }

    @Test("with --model: every span with its positions and tokens, and the answers' first tokens")
    func spans() throws {
        let r = try CLI.run(["layout", "check", "llava-1.5", "--model", Self.llava])
        #expect(r.status == 0, "\(r)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        for span in ["system", "image", "context", "instruction", "question", "constraint", "last"] {
            #expect(lines.contains { $0.hasPrefix("  \(span) ") && $0.contains("..<") }, "no span \(span): \(r.stdout)")
        }
        #expect(lines.contains { $0.hasPrefix("  image ") && $0.hasSuffix("\"<image>\" × 16") }, "\(r.stdout)")
        #expect(lines.contains { $0.hasPrefix("  last ") && $0.hasSuffix("\"▁ASSISTANT:\"") }, "\(r.stdout)")
        #expect(r.stdout.contains("answers (first token after answer_prefix \" \"): red → "), "\(r.stdout)")
        // Spans in prompt order.
        let order = lines.compactMap { line in
            ["system", "image", "context", "last"].first { line.hasPrefix("  \($0) ") }
        }
        #expect(order == ["system", "image", "context", "last"])
    }

    @Test("a dataset item as the sample prompt")
    func datasetItem() throws {
        let folder = try TemporaryFolder()
        let generate = try CLI.run(["data", "generate", "--count", "6", "--seed", "3", "--out", "data"], in: folder.url)
        #expect(generate.status == 0, "\(generate)")
        let items = try #require(try jsonObject(at: folder.url.appendingPathComponent("data/dataset.json"))["items"]
                                 as? [[String: Any]])
        let id = try #require(items.last { $0["kind"] as? String == "conflict" }?["id"] as? String)
        let r = try CLI.run(["layout", "check", "raw", "--model", Self.llava, "--data", "data", "--item", id],
                            in: folder.url)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("sample prompt (\(id)): "), "\(r.stdout)")
        #expect(r.stdout.contains("  context "), "\(r.stdout)")
        try CLI.refuses(["layout", "check", "raw", "--model", Self.llava, "--data", "data", "--item", "nope"],
                        in: folder.url, "no item 'nope'")
    }

    @Test("a broken layout file is refused naming the file and the JSON path")
    func brokenLayout() throws {
        let folder = try TemporaryFolder()
        let file = try folder.plant("my-layout.json", #"""
            {"name": "x", "pieces": [{"slot": "image"}, {"slot": "question", "prefx": " "}]}
            """#)
        try CLI.refuses(["layout", "check", file.path], file.path, "pieces[1].prefx: unknown key")
        let rules = try folder.plant("rules.json", #"{"name": "x", "pieces": [{"slot": "question"}]}"#)
        try CLI.refuses(["layout", "check", rules.path], rules.path, "no \"image\" slot")
        try CLI.refuses(["layout", "check", "nope"], "no built-in prompt layout 'nope'")
        try CLI.refuses(["layout", "check", folder.path("missing.json")], folder.path("missing.json"))
    }

    @Test("a layout whose image token the model's tokenizer lacks is refused naming the model and the token")
    func foreignImageToken() throws {
        try CLI.refuses(["layout", "check", "qwen2-vl", "--model", Self.llava], Self.llava, "<|image_pad|>")
    }

    @Test("--data and --item need --model and --data")
    func usage() throws {
        try CLI.refuses(["layout", "check", "raw", "--data", "x"], "--data needs --model")
        try CLI.refuses(["layout", "check", "raw", "--model", Self.llava, "--item", "x"], "--item needs --data")
    }

    @Test("data check: a generated dataset matches the schema")
    func generatedDataset() throws {
        let folder = try TemporaryFolder()
        _ = try CLI.run(["data", "generate", "--count", "20", "--seed", "4", "--out", "data"], in: folder.url)
        let r = try CLI.run(["data", "check", "--data", "data"], in: folder.url)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("/data/dataset.json: matches dataset.schema.json"), "\(r.stdout)")
    }

    /// `folder/data`: six generated items, edited by `edit`; returns its dataset.json.
    @discardableResult
    static func generatedDataset(in folder: TemporaryFolder, edit: (inout [[String: Any]]) -> Void) throws -> URL {
        let generate = try CLI.run(["data", "generate", "--count", "6", "--seed", "4", "--out", "data"], in: folder.url)
        #expect(generate.status == 0, "\(generate)")
        let url = folder.url.appendingPathComponent("data/dataset.json")
        var document = try jsonObject(at: url)
        var items = try #require(document["items"] as? [[String: Any]])
        edit(&items)
        document["items"] = items
        try JSONSerialization.data(withJSONObject: document).write(to: url)
        return url
    }

    @Test("data check: schema problems are all listed with the file and the JSON path, then refused")
    func schemaProblems() throws {
        let folder = try TemporaryFolder()
        let url = try Self.generatedDataset(in: folder) { items in
            items[3]["kind"] = "foo"
            items[1]["notes"] = "typo'd key"
        }
        let r = try CLI.refuses(["data", "check", "--data", "data"], in: folder.url,
                                "does not match dataset.schema.json")
        #expect(r.stderr.contains("\(url.path): items[3] (item 'item-00003' #3).kind: \"foo\" is not one of \"conflict\""), "\(r.stderr)")
        #expect(r.stderr.contains("\(url.path): items[1] (item 'item-00001' #1).notes: unknown key"), "\(r.stderr)")
        #expect(!r.stdout.contains("items,"), "the item rules ran after the schema refused the file")
    }

    @Test("data check: a dataset that matches the schema still meets the item rules")
    func itemRules() throws {
        let folder = try TemporaryFolder()
        try Self.generatedDataset(in: folder) { items in
            if let conflict = items.firstIndex(where: { $0["kind"] as? String == "conflict" }) {
                items[conflict]["expected"] = "nothing like it"
            }
        }
        let r = try CLI.refuses(["data", "check", "--data", "data"], in: folder.url, "expected is 'nothing like it'")
        #expect(r.stdout.contains("matches dataset.schema.json"), "\(r.stdout)")
    }
}

/// A JSON file's top-level object.
func jsonObject(at url: URL) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any], "\(url.path)")
}
