// Loaders: our own format (round trip), the paper's conflict sets and MC², image lookup, bad items.
import ArbiterData
import ArbiterFormats
import ArbiterTokenizers
import Foundation
import Testing

@Suite("Dataset loaders")
struct LoaderTests {
    @Test func roundTrip() throws {
        let folder = try TemporaryFolder()
        let items = ConflictGenerator(seed: 31).generate(count: 80)
        try ConflictDataset.write(items: items, to: folder.url, generator: .init(seed: 31, configuration: .init()))
        let set = try ConflictDataset.load(directory: folder.url)
        #expect(set.items == items)
        #expect(set.skipped.isEmpty && set.warnings.isEmpty)
        for item in set.items {
            if let url = set.imageURL(for: item) { #expect(FileManager.default.fileExists(atPath: url.path)) }
        }
        // Rewriting the loaded items gives the same bytes.
        #expect(try ConflictDataset.encode(items: set.items, generator: .init(seed: 31, configuration: .init()))
                == Data(contentsOf: folder.file("dataset.json")))
    }

    @Test func jsonLayout() throws {
        let items = ConflictGenerator(seed: 4).generate(count: 30)
        let data = try ConflictDataset.encode(items: items)
        let top = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(top["format"] as? String == "arbiter-conflict")
        let list = try #require(top["items"] as? [[String: Any]])
        let keys: Set<String> = ["id", "image", "task", "kind", "target", "context", "instruction", "instruction_id",
                                 "instruction_split", "question", "constraint", "answer_img", "answer_text",
                                 "answer_img_candidate_list", "answer_text_candidate_list", "expected", "scene"]
        for item in list { #expect(Set(item.keys) == keys) }
        let noInstruction = try #require(list.first { $0["kind"] as? String == "no_instruction" })
        #expect(noInstruction["expected"] is NSNull && noInstruction["instruction"] is NSNull)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"image\" : \"images/item-"))   // slashes not escaped
    }

    @Test func outputFolderThatIsAFile() throws {
        let folder = try TemporaryFolder()
        let file = try folder.writeJSON("{}", "taken")
        let error = #expect(throws: OutputError.self) {
            try ConflictDataset.write(items: ConflictGenerator(seed: 1).generate(count: 2), to: file)
        }
        #expect(error?.path == file.path)
        #expect(error?.description.contains("not a folder") == true)
        #expect(try String(contentsOf: file, encoding: .utf8) == "{}")
    }

    // MARK: Paper sets

    @Test(arguments: ["paper_following_vision_excerpt.json", "paper_following_text_excerpt.json"])
    func paperExcerpt(name: String) throws {
        let url = Repository.fixture(name)
        let folder = try TemporaryFolder()
        let images = try imageFolder(for: try imageIDs(of: url), in: folder)
        let set = try PaperConflictSet.load(json: url, imageFolder: images)
        let target: ConflictTarget = name.contains("vision") ? .image : .text
        #expect(set.items.count == 5)
        let first = set.items[0]
        #expect(first.id == "000000384338#0")
        #expect(first.image == "000000384338.png")
        #expect(set.imageURL(for: first) == images.appendingPathComponent("000000384338.png"))
        #expect(first.task == "activity_recognition" && first.kind == .conflict && first.target == target)
        #expect(first.question == "What are the giraffes doing?")
        #expect(first.constraint == "Answer the question using a single word or phrase. The answer is ")
        #expect(first.instruction?.hasPrefix("In case there is an inconsistency") == true)
        #expect(first.instruction?.contains(target == .image ? "rely on the image content" : "rely on the text context") == true)
        #expect(first.answerImg == "standing" && first.answerText == "walking")
        #expect(first.answerImgCandidates == ["stand", "站立", "站着"])
        #expect(first.expected == (target == .image ? "standing" : "walking"))
        #expect(first.context?.hasPrefix("At the zoo") == true)
        // Item 3 has empty candidate lists: kept with the answer as its list, and reported.
        #expect(set.items[3].answerImgCandidates == [set.items[3].answerImg])
        #expect(set.warnings.contains { $0.id == set.items[3].id && $0.kind == .emptyCandidates })
        // Item 4 has a candidate in both lists: reported.
        #expect(set.warnings.contains { $0.id == set.items[4].id && $0.kind == .candidateCollision })
        // question1 / question3 give the other output-format sentences.
        let v1 = try PaperConflictSet.load(json: url, imageFolder: nil, questionVariant: 1)
        #expect(v1.items[0].constraint == "The answer is " && v1.items[0].image == "000000384338" && v1.imageRoot == nil)
        let v3 = try PaperConflictSet.load(json: url, imageFolder: nil, questionVariant: 3)
        #expect(v3.items[0].constraint == "Answer the question using a single word or phrase.")
        // Emptiness as an error on request.
        let strict = datasetError { _ = try PaperConflictSet.load(json: url, imageFolder: nil,
                                                                  options: .init(requireCandidateLists: true)) }
        #expect(strict?.itemID == set.items[3].id && strict?.item?.kind == .emptyCandidates)
    }

    @Test func paperTargetFromNameOrParameter() throws {
        let folder = try TemporaryFolder()
        let copy = folder.file("conflicts.json")
        try FileManager.default.copyItem(at: Repository.fixture("paper_following_text_excerpt.json"), to: copy)
        let error = datasetError { _ = try PaperConflictSet.load(json: copy, imageFolder: nil) }
        #expect(error?.file == copy.path && error?.problem.contains("pass the target") == true)
        let set = try PaperConflictSet.load(json: copy, imageFolder: nil, target: .image)
        #expect(set.items.allSatisfy { $0.target == .image && $0.expected == $0.answerImg })
    }

    @Test func cocoNamesAndJPEG() throws {
        let url = Repository.fixture("paper_following_vision_excerpt.json")
        let folder = try TemporaryFolder()
        let coco = try imageFolder(for: try imageIDs(of: url), in: folder, coco: true)
        let set = try PaperConflictSet.load(json: url, imageFolder: coco)
        #expect(set.items[0].image == "COCO_val2014_000000384338.png")
        let jpeg = try imageFolder(for: try imageIDs(of: url), in: folder, coco: true, jpeg: true)
        let error = try #require(datasetError { _ = try PaperConflictSet.load(json: url, imageFolder: jpeg) })
        #expect(error.item?.kind == .unsupportedImage)
        #expect(error.itemID == "000000384338#0")
        #expect(error.description.contains("COCO_val2014_000000384338.jpg") && error.description.contains("PNG only"))
        let skipped = try PaperConflictSet.load(json: url, imageFolder: jpeg, options: .init(skipBadItems: true))
        #expect(skipped.items.isEmpty && skipped.skippedCount == 5)
        // Missing images: named with what was tried.
        let empty = folder.file("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let missing = try #require(datasetError { _ = try PaperConflictSet.load(json: url, imageFolder: empty) })
        #expect(missing.item?.kind == .missingImage && missing.description.contains("000000384338.png"))
        // A folder that does not exist.
        let none = datasetError { _ = try PaperConflictSet.load(json: url, imageFolder: folder.file("nope")) }
        #expect(none?.problem.contains("does not exist") == true)
    }

    @Test func badPaperItemsAreReported() throws {
        let folder = try TemporaryFolder()
        var items = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: Repository.fixture("paper_following_vision_excerpt.json"))) as? [[String: Any]])
        items[1]["answer_text"] = items[1]["answer_img"]
        items[2].removeValue(forKey: "context")
        let url = folder.file("v3_following_vision_bad.json")
        try JSONSerialization.data(withJSONObject: items).write(to: url)
        let first = try #require(datasetError { _ = try PaperConflictSet.load(json: url, imageFolder: nil) })
        #expect(first.file == url.path && first.itemID == "000000459898#1" && first.item?.kind == .sameAnswers)
        let set = try PaperConflictSet.load(json: url, imageFolder: nil, options: .init(skipBadItems: true))
        #expect(set.items.count == 3 && set.skippedCount == 2)
        #expect(set.skipped.map(\.id) == ["000000459898#1", "000000206757#2"])
        #expect(set.skipped[1].kind == .missingField && set.skipped[1].problem.contains("'context'"))
    }

    // MARK: MC²

    @Test func mc2Excerpt() throws {
        let url = Repository.fixture("mc2_excerpt.json")
        let folder = try TemporaryFolder()
        let images = try imageFolder(for: try imageIDs(of: url), in: folder)
        let set = try MC2Benchmark.load(json: url, imageFolder: images)
        #expect(set.items.count == 8)
        let first = set.items[0]
        #expect(first.kind == .noInstruction && first.instruction == nil && first.target == nil && first.expected == nil)
        #expect(first.question == "What are the sheep doing?" && first.answerImg == "eating")
        #expect(first.answerText == "playing in a field" && first.answerTextCandidates == ["playing in a field"])
        #expect(Set(set.items.map(\.task)).count == 8)
        let paraphrase = try #require(Instructions.paraphrase(id: "txt-04"))
        let instructed = try MC2Benchmark.load(json: url, imageFolder: nil, instruction: paraphrase,
                                               constraint: Instructions.constraints[0])
        #expect(instructed.items.allSatisfy {
            $0.kind == .conflict && $0.target == .text && $0.instruction == paraphrase.text && $0.instructionID == "txt-04"
                && $0.expected == $0.answerText && $0.constraint == Instructions.constraints[0]
        })
    }

    // MARK: The full reference files

    static let referenceFiles: [(String, Int, ConflictTarget?)] = [
        ("v3_following_vision_open_ended_qwen_vl_2_5_7b_remaining.json", 842, .image),
        ("v3_following_text_open_ended_qwen_vl_2_5_7b_remaining.json", 842, .text),
        ("v3_following_vision_open_ended_llava-v1.5-7b_remaining.json", 896, .image),
        ("v3_following_vision_open_ended_internvl_3_8b_remaining.json", 842, .image),
        ("mc2_evaluate_final.json", 2000, nil),
    ]

    @Test(.enabled(if: Repository.hasReferenceData, "needs ../shared/reference-data"))
    func referenceFilesParse() throws {
        for (name, count, target) in Self.referenceFiles {
            let url = Repository.referenceData.appendingPathComponent(name)
            let set = target == nil ? try MC2Benchmark.load(json: url, imageFolder: nil)
                                    : try PaperConflictSet.load(json: url, imageFolder: nil)
            #expect(set.items.count == count, "\(name)")
            #expect(set.skipped.isEmpty, "\(name)")
            #expect(Set(set.items.map(\.id)).count == count, "\(name): ids must be unique")
            #expect(set.items.allSatisfy { $0.target == target && $0.image != nil && !$0.question.isEmpty }, "\(name)")
            if target != nil {
                #expect(set.items.allSatisfy { $0.instruction != nil && $0.constraint != nil && $0.context != nil })
                #expect(set.items.allSatisfy { !$0.answerImgCandidates.isEmpty && !$0.answerTextCandidates.isEmpty })
                // Every empty list in the file is reported once.
                let raw = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [[String: Any]])
                let empty = raw.reduce(0) { n, item in
                    n + ["answer_img_candidate_list", "answer_text_candidate_list"]
                        .filter { (item[$0] as? [Any])?.isEmpty == true }.count
                }
                #expect(set.warnings.filter { $0.kind == .emptyCandidates }.count == empty, "\(name)")
                #expect(empty > 0)
            }
        }
    }

    @Test(.enabled(if: Repository.hasReferenceData, "needs ../shared/reference-data"))
    func referenceImagesResolved() throws {
        // Placeholder images for the first 40 image ids only: those items load, the rest are skipped as missing.
        let folder = try TemporaryFolder()
        let url = Repository.referenceData.appendingPathComponent(Self.referenceFiles[0].0)
        let present = Set(try imageIDs(of: url).prefix(40))
        let images = try imageFolder(for: Array(present), in: folder, coco: true)
        let set = try PaperConflictSet.load(json: url, imageFolder: images, options: .init(skipBadItems: true))
        #expect(set.items.count + set.skippedCount == 842)
        #expect(set.items.count >= 40)
        for item in set.items {
            #expect(FileManager.default.fileExists(atPath: try #require(set.imageURL(for: item)).path))
        }
        #expect(set.skipped.allSatisfy { $0.kind == .missingImage })
    }

    // MARK: Candidate first tokens

    @Test func candidateCollisions() throws {
        let tokenizer = try Tokenizer(url: Repository.tinyLlavaTokenizer)
        var items = ConflictGenerator(seed: 12, configuration: .init(tasks: [.color])).generate(count: 40)
        // Force one collision: the same word on both sides of a conflict item.
        let forced = try #require(items.firstIndex { $0.kind == .conflict })
        items[forced].answerTextCandidates.append(items[forced].answerImgCandidates[0])
        let set = ConflictSet(source: "test.json", items: items, imageRoot: nil)
        let error = try #require(datasetError { _ = try set.validateCandidates(tokenizer: tokenizer) })
        #expect(error.file == "test.json" && error.item?.kind == .candidateCollision)
        let checked = try set.validateCandidates(tokenizer: tokenizer, options: .init(skipBadItems: true))
        #expect(checked.skipped.contains { $0.id == items[forced].id })
        #expect(checked.items.count + checked.skippedCount == items.count)
        // Consistent items share their answers on purpose and are kept.
        #expect(items.filter { $0.kind == .consistent }.allSatisfy { c in checked.items.contains { $0.id == c.id } })
        // Every kept conflicting item really has disjoint first tokens; every skipped one shares one.
        func firsts(_ list: [String]) throws -> Set<Int> {
            Set(try list.compactMap { try ConflictSet.firstToken(of: $0, tokenizer: tokenizer, leadingSpace: false) })
        }
        for item in checked.items where item.kind != .consistent {
            #expect(try firsts(item.answerImgCandidates).isDisjoint(with: try firsts(item.answerTextCandidates)))
        }
        for problem in checked.skipped {
            let item = try #require(items.first { $0.id == problem.id })
            #expect(!(try firsts(item.answerImgCandidates).isDisjoint(with: try firsts(item.answerTextCandidates))))
        }
        // A lone "▁" token is passed over: the first token carries text.
        for word in ["crimson", "turquoise", "upper"] {
            let id = try #require(try ConflictSet.firstToken(of: word, tokenizer: tokenizer, leadingSpace: false))
            #expect(!(try tokenizer.decode([id])).trimmingCharacters(in: .whitespaces).isEmpty)
        }
    }
}
