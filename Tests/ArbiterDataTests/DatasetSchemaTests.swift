// dataset.schema.json against the Swift side: what `data generate` writes matches it, every key it declares is
// written, every key of an item is read by the loader (a wrong value there is refused by both, naming the key),
// its closed lists are the Swift enums, and a broken document is refused with the JSON path named.
import ArbiterData
import ArbiterFormats
import Foundation
import Testing

/// A schema file as plain JSON, `$ref`s resolved on the way down, for the sync tests.
struct SchemaTree {
    let root: [String: Any]

    init(url: URL) throws {
        root = try jsonObject(at: url)
    }

    /// `node` with its `$ref` followed.
    func resolved(_ node: [String: Any]) -> [String: Any] {
        guard let ref = node["$ref"] as? String, ref.hasPrefix("#/$defs/"),
              let defs = root["$defs"] as? [String: Any],
              let target = defs[String(ref.dropFirst("#/$defs/".count))] as? [String: Any] else { return node }
        return resolved(target).merging(node.filter { $0.key != "$ref" }) { $1 }
    }

    /// The alternatives of `node` (itself, or its anyOf/oneOf branches), resolved.
    func branches(_ node: [String: Any]) -> [[String: Any]] {
        let node = resolved(node)
        let alternatives = (node["anyOf"] ?? node["oneOf"]) as? [[String: Any]]
        return alternatives.map { $0.flatMap(branches) } ?? [node]
    }

    /// Every declared object key, as a path with `[]` for array elements (`items[].scene.objects[].x`).
    func declaredPaths(_ node: [String: Any]? = nil, at path: String = "") -> Set<String> {
        var out = Set<String>()
        for branch in branches(node ?? root) {
            for (key, child) in branch["properties"] as? [String: [String: Any]] ?? [:] {
                let childPath = path.isEmpty ? key : "\(path).\(key)"
                out.insert(childPath)
                out.formUnion(declaredPaths(child, at: childPath))
            }
            if let items = branch["items"] as? [String: Any] { out.formUnion(declaredPaths(items, at: path + "[]")) }
        }
        return out
    }

    /// The schema node at a declared path.
    func node(at path: String) -> [String: Any]? {
        var current: [[String: Any]] = [root]
        for part in path.split(separator: ".") {
            var key = String(part), arrays = 0
            while key.hasSuffix("[]") { key.removeLast(2); arrays += 1 }
            current = current.flatMap(branches).compactMap { ($0["properties"] as? [String: [String: Any]])?[key] }
            for _ in 0..<arrays { current = current.flatMap(branches).compactMap { $0["items"] as? [String: Any] } }
        }
        return current.first.map(resolved)
    }

    /// The `enum` values at a path (null as NSNull), as strings ("null" for null).
    func enumValues(at path: String) -> [String]? {
        (node(at: path)?["enum"] as? [Any])?.map { $0 is NSNull ? "null" : "\($0)" }
    }
}

/// A JSON file's top-level object.
func jsonObject(at url: URL) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any], "\(url.path)")
}

/// Every key path of a JSON value, with `[]` for array elements.
func writtenPaths(_ value: Any, at path: String = "") -> Set<String> {
    var out = Set<String>()
    if let object = value as? [String: Any] {
        for (key, child) in object {
            let childPath = path.isEmpty ? key : "\(path).\(key)"
            out.insert(childPath)
            out.formUnion(writtenPaths(child, at: childPath))
        }
    } else if let array = value as? [Any] {
        for element in array { out.formUnion(writtenPaths(element, at: path + "[]")) }
    }
    return out
}

@Suite("Dataset schema")
struct DatasetSchemaTests {
    static var schemaURL: URL {
        get throws { try #require(ConflictDataset.schemaURL, "no dataset.schema.json resource") }
    }

    /// A generated dataset with every kind, a generator record with every key, and scenes.
    static func generated(count: Int = 200) throws -> (items: [ConflictItem], data: Data) {
        var configuration = GeneratorConfiguration()
        configuration.composedInstructions = true
        let items = ConflictGenerator(seed: 21, configuration: configuration).generate(count: count)
        let data = try ConflictDataset.encode(items: items, generator: .init(seed: 21, configuration: configuration))
        return (items, data)
    }

    @Test("a generated dataset matches the schema")
    func generatedMatches() throws {
        let (items, data) = try Self.generated()
        #expect(Set(items.map(\.kind)) == Set(ItemKind.allCases))
        #expect(try ConflictDataset.schema().violations(in: data, file: "dataset.json") == [])
    }

    @Test("the schema declares exactly the keys the writer writes (and $schema for editors)")
    func declaredKeysAreWritten() throws {
        let written = writtenPaths(try JSONSerialization.jsonObject(with: try Self.generated().data))
        let declared = try SchemaTree(url: Self.schemaURL).declaredPaths()
        #expect(declared.subtracting(written) == ["$schema"])
        #expect(written.subtracting(declared).isEmpty)
    }

    @Test("the repository's Schemas/dataset.schema.json is the shipped schema")
    func repositoryCopy() throws {
        let shipped = try Data(contentsOf: Self.schemaURL)
        #expect(try Data(contentsOf: Repository.root.appendingPathComponent("Schemas/dataset.schema.json")) == shipped)
    }

    @Test("the schema's closed lists are the Swift ones")
    func enumsInSync() throws {
        let tree = try SchemaTree(url: Self.schemaURL)
        #expect(tree.enumValues(at: "items[].kind") == ItemKind.allCases.map(\.rawValue))
        #expect(tree.enumValues(at: "items[].target") == ConflictTarget.allCases.map(\.rawValue) + ["null"])
        let splits = InstructionSplit.allCases.map(\.rawValue) + ["null"]
        #expect(tree.enumValues(at: "items[].instruction_split") == splits)
        #expect(tree.enumValues(at: "items[].scene.background") == Vocabulary.backgrounds.map(\.name))
        #expect(tree.enumValues(at: "items[].scene.objects[].shape") == Shape.allCases.map(\.rawValue))
        #expect(tree.enumValues(at: "items[].scene.objects[].color") == Vocabulary.colors.map(\.name))
        #expect(tree.enumValues(at: "generator.configuration.tasks[]") == ConflictTask.allCases.map(\.rawValue))
        let mix = try #require(tree.node(at: "generator.configuration.mix")?["properties"] as? [String: Any])
        #expect(Set(mix.keys) == Set(ItemKind.allCases.map(\.rawValue)))
        #expect(tree.node(at: "format")?["const"] as? String == ConflictDataset.formatName)
        #expect(tree.node(at: "version")?["const"] as? Int == ConflictDataset.version)
        #expect(tree.node(at: "items[].scene.size")?["maximum"] as? Int == RGBImage.maximumSide)
    }

    /// Every key of an item and of its scene: the loader must read each one.
    static var itemPaths: [String] {
        get throws {
            let declared = try SchemaTree(url: schemaURL).declaredPaths()
            return declared.filter { $0.hasPrefix("items[].") }.map { String($0.dropFirst("items[].".count)) }.sorted()
        }
    }

    @Test("the loader reads every item key the schema declares: removed or mistyped, refused by both",
          arguments: try itemPaths)
    func loaderReadsKey(_ path: String) throws {
        let folder = try TemporaryFolder()
        let items = ConflictGenerator(seed: 5).generate(count: 12)
        try ConflictDataset.write(items: items, to: folder.url)
        let index = try #require(items.firstIndex { $0.scene.map { !$0.objects.isEmpty } ?? false })
        let original = try jsonObject(at: folder.file("dataset.json"))
        let key = String(path.split(separator: ".").last!).replacingOccurrences(of: "[]", with: "")
        // Where the loader's message names the key: item fields in quotes, scene fields by their path.
        let named = path.hasPrefix("scene.") ? "scene: field " + path.dropFirst("scene.".count)
            .replacingOccurrences(of: "[]", with: "[0]") : (path == "scene" ? "scene" : "'\(key)'")
        // Removed, or a value of a type the schema may refuse (the message must name the key), or a string
        // outside an enum or pattern (refused by both, in the loader's own words).
        var mutations: [(String, Any?, Bool)] = [("removed", nil, true)]
        mutations += ([["unexpected": true], [Any](), 12345, true] as [Any]).map { ("set to \($0)", $0, true) }
        mutations.append(("set to \"zz\"", "zz", false))
        var refusedByBoth = 0
        for (what, value, mustName) in mutations {
            let document = try Self.replacing(path, in: original, item: index, with: value)
            try document.write(to: folder.file("dataset.json"))
            let schemaFound = try ConflictDataset.schemaViolations(directory: folder.url)
            guard !schemaFound.isEmpty else { continue }   // a value the schema allows (e.g. a string for a string)
            let jsonPath = "items[\(index)]." + path.replacingOccurrences(of: "[]", with: "[0]")
            #expect(schemaFound.contains { $0.path.hasPrefix(jsonPath) || $0.path == "items[\(index)].scene" },
                    "\(path) \(what): \(schemaFound)")
            let error = datasetError { _ = try ConflictDataset.load(directory: folder.url) }
            #expect(error != nil, "\(path) \(what): the schema refuses it, the loader does not")
            let message = error?.description ?? ""
            if mustName {
                // Scene fields are named "scene: field noise" when missing or mistyped, "scene: noise …" when out of range.
                let inScene = path.hasPrefix("scene.") && message.contains("scene: \(key) ")
                #expect(message.contains(named) || message.contains("\(key) is empty") || inScene,
                        "\(path) \(what): \(message)")
            }
            refusedByBoth += 1
        }
        #expect(refusedByBoth >= 2, "\(path): fewer than two mutations are refused by the schema")
    }

    @Test("of the top-level keys, the loader reads all but generator and $schema (recorded, not read)")
    func topLevelKeys() throws {
        let folder = try TemporaryFolder()
        try ConflictDataset.write(items: ConflictGenerator(seed: 5).generate(count: 4), to: folder.url)
        let original = try jsonObject(at: folder.file("dataset.json"))
        let declared = try #require(SchemaTree(url: Self.schemaURL).root["properties"] as? [String: Any]).keys
        var unread: Set<String> = []
        for key in declared {
            var document = original
            document[key] = ["unexpected": true]
            try JSONSerialization.data(withJSONObject: document).write(to: folder.file("dataset.json"))
            #expect(!(try ConflictDataset.schemaViolations(directory: folder.url)).isEmpty, "\(key)")
            if datasetError({ _ = try ConflictDataset.load(directory: folder.url) }) == nil { unread.insert(key) }
        }
        #expect(unread == ["generator", "$schema"])
    }

    @Test("broken documents are refused with the JSON path named", arguments: [
        ("items[3].kind", #""foo" is not one of "conflict", "consistent""#),
        ("items[1].answer_img_candidate_list", "has 0 element(s), at least 1 needed"),
        ("items[0].image", "does not match the pattern"),
        ("items[2].extra", "unknown key (allowed here: answer_img,"),
        ("items[4].task", "required key is missing"),
        ("items[0].question", #""  " does not match the pattern \S"#),
        ("version", "is the number 2, expected the number 1"),
    ])
    func brokenDocuments(_ path: String, _ fragment: String) throws {
        let folder = try TemporaryFolder()
        try ConflictDataset.write(items: ConflictGenerator(seed: 5).generate(count: 6), to: folder.url)
        var document = try jsonObject(at: folder.file("dataset.json"))
        var items = try #require(document["items"] as? [[String: Any]])
        switch path {
        case "items[3].kind": items[3]["kind"] = "foo"
        case "items[1].answer_img_candidate_list": items[1]["answer_img_candidate_list"] = [String]()
        case "items[0].image": items[0]["image"] = "../outside.png"
        case "items[2].extra": items[2]["extra"] = 1
        case "items[4].task": items[4]["task"] = nil
        case "items[0].question": items[0]["question"] = "  "
        default: document["version"] = 2
        }
        document["items"] = items
        try JSONSerialization.data(withJSONObject: document).write(to: folder.file("dataset.json"))
        let found = try ConflictDataset.schemaViolations(directory: folder.url)
        #expect(found.contains { $0.path == path && $0.problem.contains(fragment) }, "\(found)")
        let error = #expect(throws: FormatError.self) {
            try ConflictDataset.schema().validate(fileAt: folder.file("dataset.json"))
        }
        #expect(error?.description.contains(folder.file("dataset.json").path) == true)
        #expect(error?.description.contains("\(path): ") == true, "\(String(describing: error))")
    }

    /// `original` with the value at `path` (inside item `item`; `[]` = the first element) replaced, or removed.
    static func replacing(_ path: String, in original: [String: Any], item: Int, with value: Any?) throws -> Data {
        func replace(_ node: Any, _ parts: ArraySlice<Substring>) -> Any {
            guard let first = parts.first else { return node }
            var key = String(first), intoArray = false
            if key.hasSuffix("[]") { key.removeLast(2); intoArray = true }
            guard var object = node as? [String: Any] else { return node }
            if parts.count == 1 && !intoArray {
                object[key] = value
                return object
            }
            if intoArray, var array = object[key] as? [Any], !array.isEmpty {
                array[0] = replace(array[0], parts.dropFirst())
                object[key] = array
            } else if let child = object[key] {
                object[key] = replace(child, parts.dropFirst())
            }
            return object
        }
        var document = original
        var items = try #require(document["items"] as? [Any])
        items[item] = replace(items[item], path.split(separator: ".")[...])
        document["items"] = items
        return try JSONSerialization.data(withJSONObject: document)
    }
}
