// Arbiter's own dataset format: DIR/dataset.json (sorted keys, stable bytes) and DIR/images/<id>.png.
//
//   { "format": "arbiter-conflict", "version": 1,
//     "generator": {"seed": "42", "configuration": {...}} | null,
//     "items": [ {"id", "image", "task", "kind", "target", "context", "instruction", "instruction_id",
//                 "instruction_split", "question", "constraint", "answer_img", "answer_text",
//                 "answer_img_candidate_list", "answer_text_candidate_list", "expected", "scene"}, ... ] }
//
// Every item key is present; absent values are null. `image` is relative to DIR and must resolve inside it; the
// image is always the file (see DatasetImages.swift); a `scene` only checks it. Sizes are capped (DatasetLimits).
import ArbiterFormats
import Foundation

public enum ConflictDataset {
    public static let formatName = "arbiter-conflict"
    public static let version = 1
    public static let fileName = "dataset.json"

    /// What produced a dataset (written into dataset.json for the record; the seed as a decimal string so
    /// that every JSON reader keeps all 64 bits).
    public struct GeneratorInfo: Codable, Sendable, Equatable {
        public var seed: String
        public var configuration: GeneratorConfiguration

        public init(seed: UInt64, configuration: GeneratorConfiguration) {
            self.seed = String(seed)
            self.configuration = configuration
        }
    }

    struct FileContents: Encodable {
        let format: String
        let version: Int
        let generator: GeneratorInfo?
        let items: [ConflictItem]

        func encode(to encoder: Encoder) throws {
            enum Keys: String, CodingKey { case format, version, generator, items }
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(format, forKey: .format)
            try c.encode(version, forKey: .version)
            try c.encode(generator, forKey: .generator)
            try c.encode(items, forKey: .items)
        }
    }

    /// The dataset.json bytes for `items` (sorted keys, pretty-printed, trailing newline).
    public static func encode(items: [ConflictItem], generator: GeneratorInfo? = nil) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        var data = try encoder.encode(FileContents(format: formatName, version: version, generator: generator,
                                                   items: items))
        data.append(0x0A)
        return data
    }

    /// Writes `items` as the dataset folder `directory`: each image drawn from the item's scene into
    /// `<directory>/<image>` (PNG), then dataset.json — all into a staging folder renamed into place
    /// (`OutputSafety.writeFolder`): an existing folder is replaced only when it is empty or an earlier dataset
    /// Arbiter wrote, holding nothing else.
    public static func write(items: [ConflictItem], to directory: URL, generator: GeneratorInfo? = nil,
                             option: String = "dataset folder") throws {
        var ids = Set<String>()
        for (i, item) in items.enumerated() {
            guard ids.insert(item.id).inserted else {
                throw DatasetError(file: directory.path, item: DatasetProblem(id: item.id, index: i, kind: .duplicateID,
                                                                              problem: "id used twice"))
            }
        }
        try OutputSafety.writeFolder(directory.path, kind: .dataset, option: option) { staging in
            try writeContents(items: items, to: staging, destination: directory, generator: generator)
        }
    }

    /// The files of a dataset folder, written into `staging`; errors name the final path under `destination`.
    static func writeContents(items: [ConflictItem], to staging: URL, destination: URL,
                              generator: GeneratorInfo?) throws {
        let fm = FileManager.default
        for (i, item) in items.enumerated() {
            guard let relative = item.image else { continue }
            func fail(_ text: String) -> DatasetError {
                DatasetError(file: destination.path, item: DatasetProblem(id: item.id, index: i, kind: .invalidValue,
                                                                          problem: text))
            }
            guard let scene = item.scene else { throw fail("has an image path but no scene to draw it from") }
            if let problem = scene.problem() { throw fail("scene: \(problem)") }
            if let failure = DatasetImages.pathProblem(relative) { throw fail(failure.problem) }
            let url = staging.appendingPathComponent(relative)
            let named = destination.appendingPathComponent(relative).path
            do {
                try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try PNGImage.write(Rasterizer.render(scene), to: url)
            } catch let error as FormatError {
                throw DatasetError(file: named, "cannot write the image: \(error.problem)")
            } catch {
                throw DatasetError(file: named, "cannot write the image: \(error.localizedDescription)")
            }
        }
        let data = try encode(items: items, generator: generator)
        // Into the staging folder, which OutputSafety renames into place whole: no temporary file of its own.
        let url = staging.appendingPathComponent(fileName)
        do { try data.write(to: url) } catch {
            throw DatasetError(file: destination.appendingPathComponent(fileName).path,
                               "cannot write: \(error.localizedDescription)")
        }
    }

    // MARK: Loading

    /// Loads `directory/dataset.json`, checking every item (fields, kinds, answers, candidate lists, image
    /// files). Without `options.skipBadItems` the first bad item throws a `DatasetError` naming it.
    public static func load(directory: URL, options: LoadOptions = .init()) throws -> ConflictSet {
        let url = directory.appendingPathComponent(fileName)
        let file = url.path
        let top = try parseTopLevel(url)
        guard let format = top["format"] as? String else {
            throw DatasetError(file: file, "field 'format' is missing; expected \"\(formatName)\"")
        }
        guard format == formatName else {
            throw DatasetError(file: file, "format is '\(format)', expected '\(formatName)'")
        }
        guard let v = top["version"] as? NSNumber, !isJSONBoolean(v), v.intValue == version,
              v.doubleValue == Double(version) else {
            throw DatasetError(file: file,
                               "version is \(top["version"].map { "\($0)" } ?? "missing"); this reader knows "
                               + "version \(version)")
        }
        guard let rawItems = top["items"] as? [Any] else {
            throw DatasetError(file: file, "field 'items' is missing or not an array")
        }
        try checkItemCount(rawItems.count, file: file)
        let root: DatasetImages.Root
        do { root = try DatasetImages.Root(directory) } catch let failure as DatasetImages.Failure {
            throw DatasetError(file: file, failure.problem)
        }
        var collector = ProblemCollector(file: file, options: options)
        var items: [ConflictItem] = []
        var positions: [String: Int] = [:]
        var seen = Set<String>()
        for (index, raw) in rawItems.enumerated() {
            do {
                guard let object = raw as? [String: Any] else {
                    throw ItemFailure(problem: DatasetProblem(id: "#\(index)", index: index, kind: .wrongType,
                                                             problem: "item must be an object, found "
                                                                      + "\(ItemReader.typeName(raw))"))
                }
                let reader = ItemReader(object: object, index: index, idKey: "id")
                let item = try readItem(reader)
                guard seen.insert(item.id).inserted else {
                    throw reader.failure(.duplicateID, "id '\(item.id)' is used by an earlier item")
                }
                try check(item, reader: reader, requireCandidates: true)
                if let image = item.image {
                    // Read and decoded now, so a bad file is reported before any model runs.
                    do {
                        _ = try DatasetImages.read(image, in: root, scene: item.scene)
                    } catch let failure as DatasetImages.Failure {
                        throw reader.failure(failure.kind, failure.problem)
                    }
                }
                items.append(item)
                positions[item.id] = index
            } catch let failure as ItemFailure {
                try collector.report(failure.problem)
            }
        }
        var set = ConflictSet(source: file, items: items, imageRoot: directory, skipped: collector.skipped,
                              warnings: collector.warnings)
        set.positions = positions
        return set
    }

    /// Throws when a file holds more than `DatasetLimits.maximumItems` items.
    static func checkItemCount(_ count: Int, file: String) throws {
        guard count <= DatasetLimits.maximumItems else {
            throw DatasetError(file: file, "\(count) items, over the limit of \(DatasetLimits.maximumItems) per "
                + "dataset file; split the set")
        }
    }

    static func parseTopLevel(_ url: URL) throws -> [String: Any] {
        let any = try parseJSON(url)
        guard let object = any as? [String: Any] else {
            throw DatasetError(file: url.path,
                               "the top-level JSON value must be an object with 'format', 'version' and 'items'")
        }
        return object
    }

    /// Parses a dataset file: a regular file (a pipe would block) of at most `DatasetLimits.maximumFileBytes`.
    static func parseJSON(_ url: URL) throws -> Any {
        let data: Data
        do {
            let size = try FileCheck.regularFile(url), limit = DatasetLimits.maximumFileBytes
            guard size <= limit else {
                throw DatasetError(file: url.path, "\(size) bytes, over the \(limit)-byte limit for dataset files")
            }
            data = try JSONFile.data(at: url)
        } catch let error as FormatError {
            throw DatasetError(file: url.path, error.problem)
        }
        do { return try JSONSerialization.jsonObject(with: data) } catch {
            throw DatasetError(file: url.path, "not valid JSON (\(error.localizedDescription))")
        }
    }

    static func readItem(_ r: ItemReader) throws -> ConflictItem {
        let id = try r.string("id")
        var scene: Scene?
        guard let rawScene = r.object["scene"] else {
            throw r.failure(.missingField, "field 'scene' is missing (write null for no value)")
        }
        if !(rawScene is NSNull) {
            guard rawScene is [String: Any] else {
                throw r.failure(.wrongType,
                                "field 'scene' must be an object or null, found \(ItemReader.typeName(rawScene))")
            }
            do {
                let data = try JSONSerialization.data(withJSONObject: rawScene)
                guard data.count <= DatasetLimits.maximumSceneBytes else {
                    throw r.failure(.tooLarge, "field 'scene' is \(data.count) bytes of JSON, over the "
                        + "\(DatasetLimits.maximumSceneBytes)-byte limit")
                }
                scene = try JSONDecoder().decode(Scene.self, from: data)
            } catch let error as DecodingError {
                throw r.failure(.invalidValue, "scene: \(JSONFile.describe(error))")
            } catch let failure as ItemFailure {
                throw failure
            } catch {
                throw r.failure(.invalidValue, "scene: \(error.localizedDescription)")
            }
            if let problem = scene?.problem() { throw r.failure(.invalidValue, "scene: \(problem)") }
        }
        return ConflictItem(
            id: id, image: try r.optionalString("image", keyRequired: true), task: try r.string("task"),
            kind: try r.enumValue("kind", ItemKind.self, optional: false) ?? .conflict,
            target: try r.enumValue("target", ConflictTarget.self, optional: true),
            context: try r.optionalString("context", keyRequired: true),
            instruction: try r.optionalString("instruction", keyRequired: true),
            instructionID: try r.optionalString("instruction_id", keyRequired: true),
            instructionSplit: try r.enumValue("instruction_split", InstructionSplit.self, optional: true),
            question: try r.string("question"), constraint: try r.optionalString("constraint", keyRequired: true),
            answerImg: try r.string("answer_img"), answerText: try r.string("answer_text"),
            answerImgCandidates: try r.stringList("answer_img_candidate_list"),
            answerTextCandidates: try r.stringList("answer_text_candidate_list"),
            expected: try r.optionalString("expected", keyRequired: true), scene: scene)
    }

    /// The rules every item obeys, whatever file it came from.
    static func check(_ item: ConflictItem, reader r: ItemReader, requireCandidates: Bool) throws {
        if requireCandidates {
            if item.answerImgCandidates.isEmpty {
                throw r.failure(.emptyCandidates, "answer_img_candidate_list is empty")
            }
            if item.answerTextCandidates.isEmpty {
                throw r.failure(.emptyCandidates, "answer_text_candidate_list is empty")
            }
        }
        let same = ConflictItem.sameAnswer(item.answerImg, item.answerText)
        switch item.kind {
        case .conflict, .noInstruction:
            if same {
                throw r.failure(.sameAnswers,
                                "answer_img and answer_text are both '\(item.answerImg)'; a \(item.kind.rawValue) item "
                                + "needs different answers")
            }
        case .consistent:
            if !same {
                throw r.failure(.differentAnswers,
                                "a consistent item needs answer_img ('\(item.answerImg)') = answer_text "
                                + "('\(item.answerText)')")
            }
        case .imageOnly, .textOnly: break
        }
        let needsImage = item.kind != .textOnly, needsContext = item.kind != .imageOnly
        if needsImage != (item.image != nil) {
            throw r.failure(.inconsistent,
                            needsImage ? "a \(item.kind.rawValue) item needs an image"
                                       : "a text_only item must have image null")
        }
        if needsContext != (item.context != nil) {
            throw r.failure(.inconsistent,
                            needsContext ? "a \(item.kind.rawValue) item needs a context"
                                         : "an image_only item must have context null")
        }
        if item.kind == .conflict && (item.instruction == nil || item.target == nil) {
            throw r.failure(.inconsistent, "a conflict item needs an instruction and a target")
        }
        if item.kind == .noInstruction && (item.instruction != nil || item.target != nil) {
            throw r.failure(.inconsistent, "a no_instruction item must have instruction and target null")
        }
        if (item.instruction == nil) != (item.target == nil) {
            throw r.failure(.inconsistent, "instruction and target must be both present or both null")
        }
        if item.instruction == nil && (item.instructionID != nil || item.instructionSplit != nil) {
            throw r.failure(.inconsistent, "instruction_id and instruction_split must be null without an instruction")
        }
        if let id = item.instructionID, let paraphrase = Instructions.paraphrase(id: id) {
            if paraphrase.target != item.target {
                throw r.failure(.inconsistent,
                                "instruction_id '\(id)' is a follow-\(paraphrase.target.rawValue) paraphrase but "
                                + "target is '\(item.target?.rawValue ?? "null")'")
            }
            if item.instructionSplit != nil && item.instructionSplit != paraphrase.split {
                throw r.failure(.inconsistent,
                                "instruction_id '\(id)' is in split '\(paraphrase.split.rawValue)', not "
                                + "'\(item.instructionSplit?.rawValue ?? "null")'")
            }
        }
        let expected = ConflictItem.expectedAnswer(kind: item.kind, target: item.target, answerImg: item.answerImg,
                                                   answerText: item.answerText)
        if expected != item.expected {
            throw r.failure(.inconsistent,
                            "expected is \(item.expected.map { "'\($0)'" } ?? "null"), but a \(item.kind.rawValue) "
                            + "item with target \(item.target?.rawValue ?? "null") expects "
                            + "\(expected.map { "'\($0)'" } ?? "null")")
        }
    }
}
