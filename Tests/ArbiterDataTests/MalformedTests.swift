// Malformed datasets in our format: each case breaks one item of a valid file and must throw a DatasetError
// naming dataset.json and that item; with skipBadItems the item is skipped and listed.
import ArbiterData
import Foundation
import Testing

@Suite("Malformed datasets")
struct MalformedTests {
    typealias Items = [[String: Any]]

    struct Case: CustomStringConvertible, Sendable {
        let name: String
        let kind: ItemKind          // which kind of item to break
        let problem: DatasetProblem.Kind
        /// Breaks item `i`; returns the id the error must name (nil: the item's own id).
        let mutate: @Sendable (inout Items, Int, URL) throws -> String?
        var description: String { name }
    }

    static func set(_ key: String, _ value: Any) -> @Sendable (inout Items, Int, URL) throws -> String? {
        nonisolated(unsafe) let value = value   // JSON values (strings, numbers, arrays, NSNull): never mutated
        return { items, i, _ in items[i][key] = value; return nil }
    }

    static func remove(_ key: String) -> @Sendable (inout Items, Int, URL) throws -> String? {
        { items, i, _ in items[i].removeValue(forKey: key); return nil }
    }

    static let cases: [Case] = [
        Case(name: "missing id", kind: .conflict, problem: .missingField) { items, i, _ in items[i].removeValue(forKey: "id"); return "#\(i)" },
        Case(name: "numeric id", kind: .conflict, problem: .wrongType) { items, i, _ in items[i]["id"] = 5; return "#\(i)" },
        Case(name: "empty id", kind: .conflict, problem: .invalidValue) { items, i, _ in items[i]["id"] = ""; return "#\(i)" },
        Case(name: "duplicate id", kind: .consistent, problem: .duplicateID) { items, i, _ in
            let other = items.firstIndex { $0["id"] as? String != items[i]["id"] as? String }!
            let id = items[other]["id"] as! String
            items[i]["id"] = id
            // Keep the image path valid so only the id is wrong; the later of the two is reported.
            if other > i { items.swapAt(i, other) }
            return id
        },
        Case(name: "item is a string", kind: .conflict, problem: .wrongType) { items, i, _ in
            items[i] = ["__replace_with_string__": true]; return "#\(i)"
        },
        Case(name: "missing task", kind: .conflict, problem: .missingField, mutate: remove("task")),
        Case(name: "numeric task", kind: .conflict, problem: .wrongType, mutate: set("task", 3)),
        Case(name: "missing kind", kind: .conflict, problem: .missingField, mutate: remove("kind")),
        Case(name: "unknown kind", kind: .conflict, problem: .invalidValue, mutate: set("kind", "bogus")),
        Case(name: "unknown target", kind: .conflict, problem: .invalidValue, mutate: set("target", "audio")),
        Case(name: "missing target key", kind: .noInstruction, problem: .missingField, mutate: remove("target")),
        Case(name: "numeric context", kind: .conflict, problem: .wrongType, mutate: set("context", 1.5)),
        Case(name: "empty context", kind: .conflict, problem: .invalidValue, mutate: set("context", "  ")),
        Case(name: "missing question", kind: .conflict, problem: .missingField, mutate: remove("question")),
        Case(name: "empty question", kind: .conflict, problem: .invalidValue, mutate: set("question", "")),
        Case(name: "boolean question", kind: .conflict, problem: .wrongType, mutate: set("question", true)),
        Case(name: "missing answer_img", kind: .conflict, problem: .missingField, mutate: remove("answer_img")),
        Case(name: "null answer_text", kind: .conflict, problem: .wrongType, mutate: set("answer_text", NSNull())),
        Case(name: "empty image candidates", kind: .conflict, problem: .emptyCandidates, mutate: set("answer_img_candidate_list", [String]())),
        Case(name: "empty text candidates", kind: .noInstruction, problem: .emptyCandidates, mutate: set("answer_text_candidate_list", [String]())),
        Case(name: "candidates not an array", kind: .conflict, problem: .wrongType, mutate: set("answer_img_candidate_list", "red")),
        Case(name: "numeric candidate", kind: .conflict, problem: .wrongType, mutate: set("answer_text_candidate_list", ["red", 2])),
        Case(name: "empty candidate string", kind: .conflict, problem: .invalidValue, mutate: set("answer_text_candidate_list", ["red", ""])),
        Case(name: "missing candidate list", kind: .consistent, problem: .missingField, mutate: remove("answer_img_candidate_list")),
        Case(name: "conflict with equal answers", kind: .conflict, problem: .sameAnswers) { items, i, _ in
            items[i]["answer_text"] = items[i]["answer_img"]; items[i]["expected"] = items[i]["answer_img"]; return nil
        },
        Case(name: "no_instruction with equal answers (case differs)", kind: .noInstruction, problem: .sameAnswers) { items, i, _ in
            items[i]["answer_text"] = (items[i]["answer_img"] as! String).uppercased(); return nil
        },
        Case(name: "consistent with different answers", kind: .consistent, problem: .differentAnswers) { items, i, _ in
            items[i]["answer_text"] = "zzz"; return nil
        },
        Case(name: "image file missing", kind: .conflict, problem: .missingImage) { items, i, dir in
            try FileManager.default.removeItem(at: dir.appendingPathComponent(items[i]["image"] as! String)); return nil
        },
        Case(name: "JPEG image", kind: .conflict, problem: .unsupportedImage, mutate: set("image", "images/x.jpg")),
        Case(name: "absolute image path", kind: .conflict, problem: .invalidValue, mutate: set("image", "/etc/hosts.png")),
        Case(name: "image path escaping the folder", kind: .conflict, problem: .invalidValue, mutate: set("image", "../x.png")),
        Case(name: "text_only with an image", kind: .textOnly, problem: .inconsistent, mutate: set("image", "images/item-00000.png")),
        Case(name: "image_only with a context", kind: .imageOnly, problem: .inconsistent, mutate: set("context", "Some words.")),
        Case(name: "conflict without image", kind: .conflict, problem: .inconsistent, mutate: set("image", NSNull())),
        Case(name: "conflict without instruction", kind: .conflict, problem: .inconsistent) { items, i, _ in
            for k in ["instruction", "instruction_id", "instruction_split", "target"] { items[i][k] = NSNull() }
            return nil
        },
        Case(name: "no_instruction with an instruction", kind: .noInstruction, problem: .inconsistent, mutate: set("instruction", "Trust the picture.")),
        Case(name: "target without instruction", kind: .noInstruction, problem: .inconsistent, mutate: set("target", "image")),
        Case(name: "wrong expected", kind: .conflict, problem: .inconsistent, mutate: set("expected", "zzz")),
        Case(name: "expected on no_instruction", kind: .noInstruction, problem: .inconsistent, mutate: set("expected", "red")),
        Case(name: "missing expected key", kind: .noInstruction, problem: .missingField, mutate: remove("expected")),
        Case(name: "instruction id of the other target", kind: .conflict, problem: .inconsistent) { items, i, _ in
            items[i]["instruction_id"] = items[i]["target"] as? String == "image" ? "txt-01" : "img-01"; return nil
        },
        Case(name: "split disagreeing with the paraphrase", kind: .conflict, problem: .inconsistent) { items, i, _ in
            items[i]["instruction_split"] = items[i]["instruction_split"] as? String == "train" ? "heldout" : "train"; return nil
        },
        Case(name: "unknown split", kind: .conflict, problem: .invalidValue, mutate: set("instruction_split", "dev")),
        Case(name: "instruction id without instruction", kind: .noInstruction, problem: .inconsistent, mutate: set("instruction_id", "img-01")),
        Case(name: "missing scene key", kind: .conflict, problem: .missingField, mutate: remove("scene")),
        Case(name: "scene not an object", kind: .conflict, problem: .wrongType, mutate: set("scene", [1, 2])),
        Case(name: "scene object outside the image", kind: .conflict, problem: .invalidValue) { items, i, _ in
            var scene = items[i]["scene"] as! [String: Any]
            var objects = scene["objects"] as! [[String: Any]]
            objects[0]["x"] = 1000
            scene["objects"] = objects
            items[i]["scene"] = scene
            return nil
        },
        Case(name: "scene with unknown shape", kind: .conflict, problem: .invalidValue) { items, i, _ in
            var scene = items[i]["scene"] as! [String: Any]
            var objects = scene["objects"] as! [[String: Any]]
            objects[0]["shape"] = "hexagon"
            scene["objects"] = objects
            items[i]["scene"] = scene
            return nil
        },
    ]

    /// A valid dataset with every kind, written to a fresh folder; returns the folder and its items as JSON.
    static func validDataset(_ folder: TemporaryFolder) throws -> (URL, [String: Any], Items) {
        let dir = folder.file("data")
        // Ten items, two of each kind, 16-pixel images: small, because PNG writes dominate this suite's time.
        let mix = KindMix(Dictionary(uniqueKeysWithValues: ItemKind.allCases.map { ($0, 1.0) }))
        let items = ConflictGenerator(seed: 77, configuration: .init(imageSize: 16, mix: mix)).generate(count: 10)
        #expect(Set(items.map(\.kind)).count == ItemKind.allCases.count)
        try ConflictDataset.write(items: items, to: dir)
        let top = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("dataset.json"))) as! [String: Any]
        return (dir, top, top["items"] as! Items)
    }

    static func save(_ top: [String: Any], _ items: Items, to dir: URL) throws {
        var top = top
        var raw: [Any] = items
        for (i, item) in items.enumerated() where item["__replace_with_string__"] != nil { raw[i] = "not an item" }
        top["items"] = raw
        try JSONSerialization.data(withJSONObject: top).write(to: dir.appendingPathComponent("dataset.json"))
    }

    @Test func atLeastThirtyCases() { #expect(Self.cases.count >= 30) }

    @Test(arguments: cases)
    func brokenItem(_ c: Case) throws {
        let folder = try TemporaryFolder()
        let (dir, top, original) = try Self.validDataset(folder)
        var items = original
        let i = try #require(items.firstIndex { $0["kind"] as? String == c.kind.rawValue })
        let ownID = items[i]["id"] as! String
        let named = try c.mutate(&items, i, dir) ?? ownID
        try Self.save(top, items, to: dir)
        let file = dir.appendingPathComponent("dataset.json").path
        let error = try #require(datasetError { _ = try ConflictDataset.load(directory: dir) }, "\(c.name): no DatasetError")
        #expect(error.file == file, "\(c.name)")
        #expect(error.itemID == named, "\(c.name): \(error)")
        #expect(error.item?.kind == c.problem, "\(c.name): \(error)")
        #expect(error.description.contains(file) && error.description.contains(named), "\(c.name): \(error)")
        // Skipping: exactly that item is left out and listed.
        let set = try ConflictDataset.load(directory: dir, options: .init(skipBadItems: true))
        #expect(set.skippedCount == 1, "\(c.name): \(set.skipped)")
        #expect(set.skipped.first?.id == named && set.items.count == original.count - 1, "\(c.name)")
    }

    @Test func severalBadItemsSkipped() throws {
        let folder = try TemporaryFolder()
        let (dir, top, original) = try Self.validDataset(folder)
        var items = original
        items[2].removeValue(forKey: "task")
        items[5]["answer_img_candidate_list"] = [String]()
        items[8]["kind"] = "bogus"
        try Self.save(top, items, to: dir)
        let set = try ConflictDataset.load(directory: dir, options: .init(skipBadItems: true))
        #expect(set.skipped.map(\.index) == [2, 5, 8])
        #expect(set.skipped.map(\.kind) == [.missingField, .emptyCandidates, .invalidValue])
        #expect(set.items.count == original.count - 3)
        let strict = datasetError { _ = try ConflictDataset.load(directory: dir) }
        #expect(strict?.item?.index == 2)
    }

    @Test(arguments: [
        ("not json {", "not valid JSON"),
        ("[1, 2]", "top-level JSON value must be an object"),
        (#"{"format": "other", "version": 1, "items": []}"#, "format is 'other'"),
        (#"{"version": 1, "items": []}"#, "'format' is missing"),
        (#"{"format": "arbiter-conflict", "version": 2, "items": []}"#, "version is 2"),
        (#"{"format": "arbiter-conflict", "version": true, "items": []}"#, "version is"),
        (#"{"format": "arbiter-conflict", "version": 1}"#, "'items' is missing"),
        (#"{"format": "arbiter-conflict", "version": 1, "items": {}}"#, "'items' is missing or not an array"),
    ])
    func brokenFile(text: String, message: String) throws {
        let folder = try TemporaryFolder()
        let url = try folder.writeJSON(text, "dataset.json")
        let error = try #require(datasetError { _ = try ConflictDataset.load(directory: folder.url) })
        #expect(error.file == url.path && error.item == nil)
        #expect(error.problem.contains(message), "\(error)")
    }

    @Test func missingFile() throws {
        let folder = try TemporaryFolder()
        let error = datasetError { _ = try ConflictDataset.load(directory: folder.url) }
        #expect(error?.file.hasSuffix("dataset.json") == true && error?.problem.contains("does not exist") == true)
    }

    @Test func emptyItemsLoad() throws {
        let folder = try TemporaryFolder()
        try ConflictDataset.write(items: [], to: folder.url)
        #expect(try ConflictDataset.load(directory: folder.url).items.isEmpty)
    }
}
