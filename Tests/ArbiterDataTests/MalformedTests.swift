// Malformed datasets in our format: each case breaks one item of a valid file and must throw a DatasetError
// naming dataset.json and that item; with skipBadItems the item is skipped and listed.
import ArbiterData
import ArbiterFormats
import Foundation
import Testing

@Suite("Malformed datasets")
struct MalformedTests {
    typealias Items = [[String: Any]]

    struct Case: CustomStringConvertible, Sendable {
        let name: String
        let kind: ItemKind          // which kind of item to break
        let problem: DatasetProblem.Kind
        /// What the message must also say (the field, the limit), when the case checks it.
        var says: String? = nil
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
        // Size caps (DatasetLimits): one per kind of field, each message naming the field.
        Case(name: "1 MB question", kind: .conflict, problem: .tooLarge, says: "field 'question' is 1048576 bytes",
             mutate: set("question", String(repeating: "q", count: 1 << 20))),
        Case(name: "1 MB context", kind: .conflict, problem: .tooLarge, says: "field 'context' is 1048576 bytes",
             mutate: set("context", String(repeating: "c", count: 1 << 20))),
        Case(name: "long instruction", kind: .conflict, problem: .tooLarge, says: "field 'instruction' is 16385 bytes",
             mutate: set("instruction", String(repeating: "i", count: (16 << 10) + 1))),
        Case(name: "long constraint", kind: .consistent, problem: .tooLarge, says: "field 'constraint'",
             mutate: set("constraint", String(repeating: "k", count: 1 << 20))),
        Case(name: "long task", kind: .conflict, problem: .tooLarge, says: "field 'task'",
             mutate: set("task", String(repeating: "t", count: 1 << 20))),
        Case(name: "long answer", kind: .conflict, problem: .tooLarge, says: "field 'answer_text'",
             mutate: set("answer_text", String(repeating: "a", count: 1 << 20))),
        Case(name: "long candidate", kind: .conflict, problem: .tooLarge, says: "field 'answer_img_candidate_list'[1]",
             mutate: set("answer_img_candidate_list", ["red", String(repeating: "r", count: 1 << 20)])),
        Case(name: "too many candidates", kind: .conflict, problem: .tooLarge, says: "has 257 entries",
             mutate: set("answer_text_candidate_list", (0...256).map { "w\($0)" })),
        Case(name: "1 MB id", kind: .conflict, problem: .tooLarge, says: "field 'id' is 1048576 bytes") { items, i, _ in
            items[i]["id"] = String(repeating: "x", count: 1 << 20); return "#\(i)"
        },
        Case(name: "scene too large", kind: .conflict, problem: .tooLarge, says: "field 'scene' is") { items, i, _ in
            var scene = items[i]["scene"] as! [String: Any]
            scene["padding"] = String(repeating: "p", count: 20_000)
            items[i]["scene"] = scene
            return nil
        },
        Case(name: "scene with too many objects", kind: .conflict, problem: .invalidValue,
             says: "17 objects") { items, i, _ in
            var scene = items[i]["scene"] as! [String: Any]
            scene["objects"] = Array(repeating: (scene["objects"] as! [Any])[0], count: 17)
            items[i]["scene"] = scene
            return nil
        },
        Case(name: "scene coordinates near Int.max", kind: .conflict, problem: .invalidValue,
             says: "does not fit") { items, i, _ in
            var scene = items[i]["scene"] as! [String: Any]
            var objects = scene["objects"] as! [[String: Any]]
            objects[0]["x"] = Int.max - 1
            objects[0]["r"] = Int.max / 2   // x + r would overflow
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
        if let says = c.says { #expect(error.description.contains(says), "\(c.name): \(error)") }
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

/// Dataset images are the files: each case breaks the image of one conflict item (or its path) in a valid dataset;
/// loading must throw a `DatasetError` naming dataset.json, the item and the PNG path, skipping must leave out
/// exactly that item, and reading the image for a model (`ConflictSet.image(for:)`) must refuse it the same way.
@Suite("Malformed dataset images and sizes")
struct MalformedImageTests {
    typealias Items = MalformedTests.Items

    struct Case: CustomStringConvertible, Sendable {
        let name: String
        let problem: DatasetProblem.Kind
        /// What the message must also say.
        let says: String
        /// Breaks the image of item `i` of the dataset in `dir`; returns the path the message must name.
        let mutate: @Sendable (inout Items, Int, URL) throws -> String
        var description: String { name }
    }

    static func imageURL(_ items: Items, _ i: Int, _ dir: URL) -> URL {
        dir.appendingPathComponent(items[i]["image"] as! String)
    }

    /// Moves item `i`'s image out of the dataset folder (same pixels, so only the path is wrong); returns it.
    static func moveOutside(_ items: Items, _ i: Int, _ dir: URL, name: String) throws -> URL {
        let outside = dir.deletingLastPathComponent().appendingPathComponent(name)
        try FileManager.default.moveItem(at: imageURL(items, i, dir), to: outside)
        return outside
    }

    static let cases: [Case] = [
        Case(name: "truncated PNG", problem: .invalidImage, says: "truncated") { items, i, dir in
            let url = imageURL(items, i, dir)
            let data = try Data(contentsOf: url)
            try data.prefix(data.count / 2).write(to: url)
            return url.path
        },
        Case(name: "PNG cut inside its header", problem: .invalidImage, says: "inside the IHDR") { items, i, dir in
            let url = imageURL(items, i, dir)
            try Data(contentsOf: url).prefix(20).write(to: url)
            return url.path
        },
        Case(name: "text file named .png", problem: .invalidImage, says: "not a PNG image") { items, i, dir in
            let url = imageURL(items, i, dir)
            try Data("a red circle\n".utf8).write(to: url)
            return url.path
        },
        Case(name: "IHDR claiming 100000x100000", problem: .invalidImage, says: "100000x100000") { items, i, dir in
            let url = imageURL(items, i, dir)
            try pngClaiming(width: 100_000, height: 100_000).write(to: url)
            return url.path
        },
        Case(name: "side one pixel over the cap", problem: .invalidImage, says: "4096-pixel limit") { items, i, dir in
            let url = imageURL(items, i, dir)
            try PNGImage.write(RGBImage(width: 4097, height: 1, red: 9, green: 9, blue: 9), to: url)
            items[i]["scene"] = NSNull()   // no scene: the cap alone refuses it
            return url.path
        },
        Case(name: "symlink to a file outside the folder", problem: .invalidValue,
             says: "outside the dataset folder") { items, i, dir in
            let url = imageURL(items, i, dir)
            let outside = try moveOutside(items, i, dir, name: "outside.png")
            try FileManager.default.createSymbolicLink(at: url, withDestinationURL: outside)
            return url.path
        },
        Case(name: "path through a symlinked folder outside", problem: .invalidValue,
             says: "outside the dataset folder") { items, i, dir in
            let outside = dir.deletingLastPathComponent().appendingPathComponent("elsewhere")
            try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
            try FileManager.default.moveItem(at: imageURL(items, i, dir), to: outside.appendingPathComponent("x.png"))
            try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent("images/linked"),
                                                       withDestinationURL: outside)
            items[i]["image"] = "images/linked/x.png"
            return dir.appendingPathComponent("images/linked/x.png").path
        },
        Case(name: "../x.png (the file exists)", problem: .invalidValue, says: "'..' component") { items, i, dir in
            _ = try moveOutside(items, i, dir, name: "x.png")
            items[i]["image"] = "../x.png"
            return "../x.png"
        },
        Case(name: "images/../../x.png", problem: .invalidValue, says: "'..' component") { items, i, dir in
            _ = try moveOutside(items, i, dir, name: "x.png")
            items[i]["image"] = "images/../../x.png"
            return "images/../../x.png"
        },
        Case(name: "absolute path (the file exists)", problem: .invalidValue, says: "is absolute") { items, i, dir in
            let outside = try moveOutside(items, i, dir, name: "absolute.png")
            items[i]["image"] = outside.path
            return outside.path
        },
        Case(name: "named pipe (must not block)", problem: .invalidImage, says: "named pipe") { items, i, dir in
            let url = imageURL(items, i, dir)
            try FileManager.default.removeItem(at: url)
            guard mkfifo(url.path, 0o600) == 0 else { throw CocoaError(.fileWriteUnknown) }
            return url.path
        },
        Case(name: "a folder named .png", problem: .invalidImage, says: "a folder") { items, i, dir in
            let url = imageURL(items, i, dir)
            try FileManager.default.removeItem(at: url)
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
            return url.path
        },
        Case(name: "dangling symlink", problem: .missingImage, says: "does not exist") { items, i, dir in
            let url = imageURL(items, i, dir)
            try FileManager.default.removeItem(at: url)
            try FileManager.default.createSymbolicLink(at: url, withDestinationURL: dir.appendingPathComponent("gone"))
            return url.path
        },
        Case(name: "pixels differ from the scene", problem: .sceneMismatch, says: "at 1 of 256") { items, i, dir in
            let url = imageURL(items, i, dir)
            var image = try PNGImage.read(url: url)
            image.pixels[3 * 17] ^= 0xFF   // pixel (1, 1)
            try PNGImage.write(image, to: url)
            return url.path
        },
        Case(name: "size differs from the scene", problem: .sceneMismatch, says: "draws 16x16") { items, i, dir in
            let url = imageURL(items, i, dir)
            try PNGImage.write(RGBImage(width: 8, height: 8, red: 1, green: 2, blue: 3), to: url)
            return url.path
        },
        Case(name: "alpha channel the scene lacks", problem: .sceneMismatch, says: "alpha channel") { items, i, dir in
            let url = imageURL(items, i, dir)
            var image = try PNGImage.read(url: url)
            image.alpha = [UInt8](repeating: 255, count: image.width * image.height)
            try PNGImage.write(image, to: url)
            return url.path
        },
    ]

    @Test(arguments: cases)
    func brokenImage(_ c: Case) throws {
        let folder = try TemporaryFolder()
        let (dir, top, original) = try MalformedTests.validDataset(folder)
        var items = original
        let i = try #require(items.firstIndex { $0["kind"] as? String == "conflict" })
        let id = items[i]["id"] as! String
        let path = try c.mutate(&items, i, dir)
        try MalformedTests.save(top, items, to: dir)
        let file = dir.appendingPathComponent("dataset.json").path
        let error = try #require(datasetError { _ = try ConflictDataset.load(directory: dir) }, "\(c.name)")
        #expect(error.file == file && error.itemID == id && error.item?.kind == c.problem, "\(c.name): \(error)")
        for part in [file, id, path, c.says] {
            #expect(error.description.contains(part), "\(c.name): '\(part)' not in \(error)")
        }
        let set = try ConflictDataset.load(directory: dir, options: .init(skipBadItems: true))
        #expect(set.skipped.map(\.id) == [id] && set.items.count == original.count - 1, "\(c.name): \(set.skipped)")
        // Reading the image for a model refuses it too: the file is read again, never replaced by the scene.
        let item = try JSONDecoder().decode(ConflictItem.self, from: JSONSerialization.data(withJSONObject: items[i]))
        let alone = ConflictSet(source: file, items: [item], imageRoot: dir)
        let again = try #require(datasetError { _ = try alone.image(for: item) }, "\(c.name)")
        #expect(again.file == file && again.itemID == id && again.item?.kind == c.problem, "\(c.name): \(again)")
        #expect(again.description.contains(path), "\(c.name): \(again)")
    }

    @Test func theImageIsTheFile() throws {
        let folder = try TemporaryFolder()
        let (dir, top, original) = try MalformedTests.validDataset(folder)
        var items = original
        let i = try #require(items.firstIndex { $0["kind"] as? String == "conflict" })
        // Without a scene, any valid PNG is the item's image, whatever the item says.
        items[i]["scene"] = NSNull()
        let replacement = RGBImage(width: 24, height: 12, red: 1, green: 2, blue: 3)
        try PNGImage.write(replacement, to: MalformedImageTests.imageURL(items, i, dir))
        // A symlink to another file inside the folder is followed.
        let j = try #require(items.indices.first { $0 != i && items[$0]["image"] is String })
        let target = dir.appendingPathComponent("images/kept.png")
        try FileManager.default.moveItem(at: MalformedImageTests.imageURL(items, j, dir), to: target)
        try FileManager.default.createSymbolicLink(at: MalformedImageTests.imageURL(items, j, dir),
                                                   withDestinationURL: target)
        try MalformedTests.save(top, items, to: dir)
        let set = try ConflictDataset.load(directory: dir)
        #expect(set.items.count == original.count)
        let changed = try #require(set.items.first { $0.id == items[i]["id"] as? String })
        #expect(try set.image(for: changed) == replacement)
        for item in set.items where item.image != nil {
            #expect(try set.image(for: item) == PNGImage.read(url: try #require(set.imageURL(for: item))))
        }
        // The cap is inclusive: a 4096-pixel side loads.
        try PNGImage.write(RGBImage(width: 4096, height: 1, red: 5, green: 5, blue: 5),
                           to: MalformedImageTests.imageURL(items, i, dir))
        #expect(try ConflictDataset.load(directory: dir).items.count == original.count)
    }

    @Test func setsGeneratedInMemoryDrawTheirScenes() throws {
        let items = ConflictGenerator(seed: 3, configuration: .init(imageSize: 16)).generate(count: 8)
        let set = ConflictSet(source: "generated", items: items, imageRoot: nil)
        for item in items where item.image != nil {
            #expect(try set.image(for: item) == Rasterizer.render(try #require(item.scene)))
        }
        var bare = try #require(items.first { $0.image != nil })
        bare.scene = nil
        let alone = ConflictSet(source: "generated", items: [bare], imageRoot: nil)
        let error = datasetError { _ = try alone.image(for: bare) }
        #expect(error?.itemID == bare.id && error?.item?.kind == .missingImage, "\(String(describing: error))")
    }

    // MARK: Whole files

    @Test func datasetFileOverTheCap() throws {
        let folder = try TemporaryFolder()
        let url = try folder.writeJSON("{}", "dataset.json")
        let handle = try FileHandle(forWritingTo: url)
        try handle.truncate(atOffset: UInt64(DatasetLimits.maximumFileBytes + 1))   // sparse: nothing is written
        try handle.close()
        let error = try #require(datasetError { _ = try ConflictDataset.load(directory: folder.url) })
        #expect(error.file == url.path && error.item == nil)
        #expect(error.problem.contains("\(DatasetLimits.maximumFileBytes + 1) bytes, over the"), "\(error)")
    }

    @Test func datasetFileThatIsAPipe() throws {
        let folder = try TemporaryFolder()
        let url = folder.file("dataset.json")
        #expect(mkfifo(url.path, 0o600) == 0)
        let error = try #require(datasetError { _ = try ConflictDataset.load(directory: folder.url) })
        #expect(error.file == url.path && error.problem.contains("named pipe"), "\(error)")
    }

    @Test func tooManyItems() throws {
        let folder = try TemporaryFolder()
        let count = DatasetLimits.maximumItems + 1
        let text = #"{"format": "arbiter-conflict", "version": 1, "items": ["#
            + Array(repeating: "{}", count: count).joined(separator: ",") + "]}"
        let url = try folder.writeJSON(text, "dataset.json")
        let error = try #require(datasetError { _ = try ConflictDataset.load(directory: folder.url) })
        #expect(error.file == url.path && error.problem.contains("\(count) items, over the limit"), "\(error)")
        let list = "[" + Array(repeating: "{}", count: count).joined(separator: ",") + "]"
        let mc2 = try folder.writeJSON(list, "mc2.json")
        let third = try #require(datasetError { _ = try MC2Benchmark.load(json: mc2, imageFolder: nil) })
        #expect(third.file == mc2.path && third.problem.contains("over the limit"), "\(third)")
    }

    // MARK: The paper's sets and MC²

    /// The paper excerpt with a placeholder image folder; `breakFirst` breaks the first item's image file.
    static func paperFolder(_ folder: TemporaryFolder, breakFirst: (URL) throws -> Void) throws -> (URL, URL) {
        let json = Repository.fixture("paper_following_vision_excerpt.json")
        let images = try imageFolder(for: try imageIDs(of: json), in: folder)
        try breakFirst(images.appendingPathComponent("000000384338.png"))
        return (json, images)
    }

    @Test(arguments: ["truncated", "symlink outside", "100000x100000"])
    func paperSetImage(_ breakage: String) throws {
        let folder = try TemporaryFolder()
        let (json, images) = try Self.paperFolder(folder) { url in
            switch breakage {
            case "truncated": try Data(contentsOf: url).prefix(30).write(to: url)
            case "symlink outside":
                let outside = folder.file("outside.png")
                try FileManager.default.moveItem(at: url, to: outside)
                try FileManager.default.createSymbolicLink(at: url, withDestinationURL: outside)
            default: try pngClaiming(width: 100_000, height: 100_000).write(to: url)
            }
        }
        let path = images.appendingPathComponent("000000384338.png").path
        let error = try #require(datasetError { _ = try PaperConflictSet.load(json: json, imageFolder: images) })
        #expect(error.file == json.path && error.itemID == "000000384338#0", "\(error)")
        #expect(error.description.contains(path), "\(error)")
        // The image is shared by no other item of the excerpt: skipping leaves the four others.
        let set = try PaperConflictSet.load(json: json, imageFolder: images, options: .init(skipBadItems: true))
        #expect(set.skipped.map(\.id) == ["000000384338#0"] && set.items.count == 4)
    }

    @Test func paperSetStringsAndIDs() throws {
        let folder = try TemporaryFolder()
        var items = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: Repository.fixture("paper_following_vision_excerpt.json"))) as? [[String: Any]])
        items[1]["context"] = String(repeating: "c", count: 1 << 20)
        items[2]["image_id"] = String(repeating: "9", count: 1 << 20)
        let url = folder.file("v3_following_vision_big.json")
        try JSONSerialization.data(withJSONObject: items).write(to: url)
        let set = try PaperConflictSet.load(json: url, imageFolder: nil, options: .init(skipBadItems: true))
        #expect(set.skipped.map(\.id) == [(items[1]["image_id"] as! String) + "#1", "#2"])
        #expect(set.skipped.allSatisfy { $0.kind == .tooLarge })
        #expect(set.skipped[0].problem.contains("field 'context' is 1048576 bytes"))
        #expect(set.skipped[1].problem.contains("field 'image_id' is 1048576 bytes"))
        let strict = try #require(datasetError { _ = try PaperConflictSet.load(json: url, imageFolder: nil) })
        #expect(strict.file == url.path && strict.description.contains("field 'context'"))
    }

    @Test func mc2ImageOverTheCap() throws {
        let folder = try TemporaryFolder()
        let json = Repository.fixture("mc2_excerpt.json")
        let ids = try imageIDs(of: json)
        let images = try imageFolder(for: ids, in: folder)
        let path = images.appendingPathComponent(ids[0] + ".png").path
        try pngClaiming(width: 100_000, height: 100_000).write(to: URL(fileURLWithPath: path))
        let error = try #require(datasetError { _ = try MC2Benchmark.load(json: json, imageFolder: images) })
        #expect(error.file == json.path && error.itemID == "\(ids[0])#0" && error.item?.kind == .invalidImage)
        #expect(error.description.contains(path) && error.description.contains("100000x100000"), "\(error)")
    }
}
