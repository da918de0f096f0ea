// Loaders for the paper's conflict sets (EchoDreamer/Modality-Following, `v3_following_{vision,text}_*.json`)
// and for MC² (EchoDreamer/Modality-Preference, `mc2_evaluate_final.json`), mapped to `ConflictItem`.
// Item ids are `<image_id>#<index in file>` (image ids repeat: one image can carry several questions).
import ArbiterFormats
import Foundation

/// Finds an item's image in a folder by its image id.
public enum ImageLocator {
    public enum Resolution: Sendable, Equatable {
        /// A PNG file name in the folder.
        case png(String)
        /// Only a JPEG exists (named here); Arbiter decodes PNG only.
        case jpegOnly(String)
        /// Nothing found; the names tried.
        case missing(tried: [String])
    }

    /// PNG names tried, in order: `<id>` if it ends in .png, `<id>.png`, and for numeric ids the COCO 2014
    /// names `COCO_val2014_%012d.png` / `COCO_train2014_%012d.png`. JPEG names (`<id>.jpg`, `<id>.jpeg`,
    /// `COCO_val2014_%012d.jpg`, …) are looked for only to report that the image exists but is not PNG.
    public static func names(for imageID: String) -> (png: [String], jpeg: [String]) {
        var png: [String] = [], jpeg: [String] = []
        let lower = imageID.lowercased()
        if lower.hasSuffix(".png") { png.append(imageID) }
        if lower.hasSuffix(".jpg") || lower.hasSuffix(".jpeg") { jpeg.append(imageID) }
        png.append(imageID + ".png")
        jpeg += [imageID + ".jpg", imageID + ".jpeg"]
        if let n = Int(imageID), n >= 0 {
            let digits = String(n)
            let padded = String(repeating: "0", count: max(0, 12 - digits.count)) + digits
            for prefix in ["COCO_val2014_", "COCO_train2014_", ""] {
                png.append(prefix + padded + ".png")
                jpeg.append(prefix + padded + ".jpg")
            }
        }
        var seen = Set<String>()
        return (png.filter { seen.insert($0).inserted }, jpeg.filter { seen.insert($0).inserted })
    }

    /// Resolves `imageID` against the file names of a folder.
    public static func resolve(_ imageID: String, in folderNames: Set<String>) -> Resolution {
        let candidates = names(for: imageID)
        if let hit = candidates.png.first(where: folderNames.contains) { return .png(hit) }
        if let hit = candidates.jpeg.first(where: folderNames.contains) { return .jpegOnly(hit) }
        return .missing(tried: candidates.png)
    }

    /// The file names in `folder` (one listing, reused for every item).
    static func listing(_ folder: URL, datasetFile: String) throws -> Set<String> {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw DatasetError(file: datasetFile, "image folder \(folder.path) does not exist or is not a folder")
        }
        do { return Set(try FileManager.default.contentsOfDirectory(atPath: folder.path)) } catch {
            throw DatasetError(file: datasetFile,
                               "cannot list image folder \(folder.path): \(error.localizedDescription)")
        }
    }

    /// The relative image path for an item, or the item failure describing why there is none.
    static func locate(_ imageID: String, folder: URL, names: Set<String>, reader: ItemReader) throws -> String {
        switch resolve(imageID, in: names) {
        case .png(let name): return name
        case .jpegOnly(let name):
            throw reader.failure(.unsupportedImage,
                                 "image '\(imageID)' exists only as JPEG "
                                 + "(\(folder.appendingPathComponent(name).path)); Arbiter reads PNG only: convert the "
                                 + "folder to PNG (e.g. `mogrify -format png *.jpg`)")
        case .missing(let tried):
            throw reader.failure(.missingImage,
                                 "no image for image_id '\(imageID)' in \(folder.path) (tried "
                                 + "\(tried.joined(separator: ", ")))")
        }
    }
}

/// The image folder of a third-party set: its listing (read once) and the files already read and checked (an
/// image shared by several items is decoded once).
struct ImageFolder {
    let url: URL
    let root: DatasetImages.Root
    let names: Set<String>
    private var good = Set<String>()
    private var bad: [String: DatasetImages.Failure] = [:]

    init(_ url: URL, datasetFile: String) throws {
        names = try ImageLocator.listing(url, datasetFile: datasetFile)
        do { root = try DatasetImages.Root(url) } catch let failure as DatasetImages.Failure {
            throw DatasetError(file: datasetFile, failure.problem)
        }
        self.url = url
    }

    /// The file name of `imageID`'s image in the folder.
    func locate(_ imageID: String, reader: ItemReader) throws -> String {
        try ImageLocator.locate(imageID, folder: url, names: names, reader: reader)
    }

    /// Reads and checks the image file `name` (inside the folder, within the size caps, decodable).
    mutating func check(_ name: String, reader: ItemReader) throws {
        if good.contains(name) { return }
        if bad[name] == nil {
            do {
                _ = try DatasetImages.read(name, in: root, scene: nil)
                good.insert(name)
                return
            } catch let failure as DatasetImages.Failure {
                bad[name] = failure
            }
        }
        throw reader.failure(bad[name]!.kind, bad[name]!.problem)
    }
}

/// Shared mapping of third-party candidate lists.
enum Candidates {
    /// The list itself, or (when empty and allowed) the answer alone, noting a warning.
    static func list(_ list: [String], answer: String, field: String, reader: ItemReader, options: LoadOptions,
                     warnings: inout [DatasetProblem]) throws -> [String] {
        guard list.isEmpty else { return list }
        if options.requireCandidateLists { throw reader.failure(.emptyCandidates, "\(field) is empty") }
        warnings.append(reader.failure(.emptyCandidates, "\(field) is empty; using ['\(answer)']").problem)
        return [answer]
    }

    /// A warning when the same candidate string is in both lists (scoring cannot tell the modalities apart there).
    static func overlap(_ a: [String], _ b: [String], reader: ItemReader) -> DatasetProblem? {
        let shared = Set(a.map { $0.lowercased() }).intersection(b.map { $0.lowercased() })
        guard !shared.isEmpty else { return nil }
        return reader.failure(.candidateCollision,
                              "candidate(s) \(shared.sorted().map { "'\($0)'" }.joined(separator: ", ")) appear "
                              + "in both lists").problem
    }
}

/// The item loop both third-party sets share: the top-level array, the item cap, the image folder, then per item
/// the reader, the set's own mapping (`make`, which finds the image through `locate` where its fields say), the
/// dataset checks, the image file's check, and the item's warnings; failures are skipped or thrown as `options`
/// say.
enum ThirdPartyItems {
    /// `make` maps one item: its reader, the image locator (the item's relative image path in the folder, or the
    /// bare image id without a folder) and the item's warnings so far.
    typealias Make = (ItemReader, (String) throws -> String, inout [DatasetProblem]) throws -> ConflictItem

    static func load(json: URL, imageFolder: URL?, options: LoadOptions, make: Make) throws -> ConflictSet {
        let file = json.path
        guard let rawItems = try ConflictDataset.parseJSON(json) as? [Any] else {
            throw DatasetError(file: file, "the top-level JSON value must be an array of items")
        }
        try ConflictDataset.checkItemCount(rawItems.count, file: file)
        var folder = try imageFolder.map { try ImageFolder($0, datasetFile: file) }
        var collector = ProblemCollector(file: file, options: options)
        var items: [ConflictItem] = []
        var positions: [String: Int] = [:]
        for (index, raw) in rawItems.enumerated() {
            do {
                guard let object = raw as? [String: Any] else {
                    throw ItemFailure(problem: DatasetProblem(id: "#\(index)", index: index, kind: .wrongType,
                                                             problem: "item must be an object, found "
                                                                      + "\(ItemReader.typeName(raw))"))
                }
                let reader = ItemReader(object: object, index: index, imageIDKey: "image_id")
                var warnings: [DatasetProblem] = []
                let item = try make(reader, { [folder] in try folder?.locate($0, reader: reader) ?? $0 }, &warnings)
                try ConflictDataset.check(item, reader: reader, requireCandidates: false)
                if let name = item.image { try folder?.check(name, reader: reader) }
                warnings.forEach { collector.warn($0) }
                items.append(item)
                positions[item.id] = index
            } catch let failure as ItemFailure {
                try collector.report(failure.problem)
            }
        }
        var set = ConflictSet(source: file, items: items, imageRoot: imageFolder, skipped: collector.skipped,
                              warnings: collector.warnings)
        set.positions = positions
        return set
    }
}

public enum PaperConflictSet {
    /// The instruction target a paper file is for: `following_vision` → image, `following_text` → text.
    public static func target(fromFileName name: String) -> ConflictTarget? {
        let lower = name.lowercased()
        if lower.contains("following_vision") || lower.contains("following_image") { return .image }
        if lower.contains("following_text") { return .text }
        return nil
    }

    /// Loads a paper conflict set. `questionVariant` (1...3) picks `question1..3`, each "instruction\nquestion\n
    /// constraint" (the constraint kept verbatim, trailing space included). `target` defaults to the one the
    /// file name names. With `imageFolder`, each item's image is found there (`ImageLocator`); without it,
    /// `image` holds the bare image id and the set has no image root.
    public static func load(json: URL, imageFolder: URL?, target: ConflictTarget? = nil, questionVariant: Int = 2,
                            options: LoadOptions = .init()) throws -> ConflictSet {
        let file = json.path
        guard (1...3).contains(questionVariant) else {
            throw DatasetError(file: file, "question variant \(questionVariant) is not 1, 2 or 3")
        }
        guard let target = target ?? self.target(fromFileName: json.lastPathComponent) else {
            throw DatasetError(file: file,
                               "cannot tell from the file name whether the set is follow-image or follow-text (no "
                               + "'following_vision' / 'following_text'); pass the target")
        }
        let questionKey = "question\(questionVariant)"
        return try ThirdPartyItems.load(json: json, imageFolder: imageFolder, options: options) {
            reader, locate, warnings in
            let imageID = try reader.string("image_id")
            let task = try reader.string("task")
            let context = try reader.string("context")
            let answerImg = try reader.string("answer_img")
            let answerText = try reader.string("answer_text")
            let imgList = try reader.stringList("answer_img_candidate_list")
            let textList = try reader.stringList("answer_text_candidate_list")
            let prompt = try reader.string(questionKey)
            let lines = prompt.components(separatedBy: "\n")
            guard lines.count == 3 else {
                throw reader.failure(.invalidValue,
                                     "field '\(questionKey)' has \(lines.count) lines; expected 3 (instruction, "
                                     + "question, output-format sentence)")
            }
            for (name, line) in zip(["instruction", "question", "output-format sentence"], lines)
            where line.trimmingCharacters(in: .whitespaces).isEmpty {
                throw reader.failure(.invalidValue, "field '\(questionKey)': the \(name) line is empty")
            }
            let item = ConflictItem(
                id: reader.id,
                image: try locate(imageID),
                task: task, kind: .conflict, target: target, context: context, instruction: lines[0],
                instructionID: "paper-\(target.rawValue)", instructionSplit: nil, question: lines[1],
                constraint: lines[2], answerImg: answerImg, answerText: answerText,
                answerImgCandidates: try Candidates.list(imgList, answer: answerImg, field: "answer_img_candidate_list",
                                                         reader: reader, options: options, warnings: &warnings),
                answerTextCandidates: try Candidates.list(textList, answer: answerText,
                                                          field: "answer_text_candidate_list",
                                                          reader: reader, options: options, warnings: &warnings),
                expected: target == .image ? answerImg : answerText)
            // Computed before the shared checks, reported only after them (both only build values).
            if let overlap = Candidates.overlap(item.answerImgCandidates, item.answerTextCandidates, reader: reader) {
                warnings.append(overlap)
            }
            return item
        }
    }
}

public enum MC2Benchmark {
    /// Loads MC² (`image_id`, `task`, `question`, `answer_vision`, `answer_text`, `context`). Items have no
    /// instruction (kind `no_instruction`) unless `instruction` is given: then they are `conflict` items with
    /// that paraphrase and its target. Candidate lists are the answers themselves. `constraint` is the
    /// output-format sentence to add (MC² has none).
    public static func load(json: URL, imageFolder: URL?, instruction: InstructionParaphrase? = nil,
                            constraint: String? = nil, options: LoadOptions = .init()) throws -> ConflictSet {
        try ThirdPartyItems.load(json: json, imageFolder: imageFolder, options: options) { reader, locate, _ in
            let imageID = try reader.string("image_id")
            let answerImg = try reader.string("answer_vision")
            let answerText = try reader.string("answer_text")
            let kind: ItemKind = instruction == nil ? .noInstruction : .conflict
            return ConflictItem(
                id: reader.id,
                image: try locate(imageID),
                task: try reader.string("task"), kind: kind, target: instruction?.target,
                context: try reader.string("context"), instruction: instruction?.text,
                instructionID: instruction?.id, instructionSplit: instruction?.split,
                question: try reader.string("question"), constraint: constraint,
                answerImg: answerImg, answerText: answerText,
                answerImgCandidates: [answerImg], answerTextCandidates: [answerText],
                expected: ConflictItem.expectedAnswer(kind: kind, target: instruction?.target, answerImg: answerImg,
                                                      answerText: answerText))
        }
    }
}
