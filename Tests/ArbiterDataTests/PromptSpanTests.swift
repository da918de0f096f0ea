// Items as prompts: PromptBuilder on the raw layout with the bundled tiny-llava tokenizer gives a span for
// each present field and none for absent ones, for every kind.
import ArbiterData
import ArbiterModels
import ArbiterTokenizers
import Foundation
import Testing

@Suite("Items as prompts")
struct PromptSpanTests {
    @Test(arguments: ["raw", "llava-1.5"])
    func spansFollowFields(layoutName: String) throws {
        let tokenizer = try Tokenizer(url: Repository.tinyLlavaTokenizer)
        let builder = try PromptBuilder(layout: try PromptLayout.builtin(layoutName), tokenizer: tokenizer)
        var paperItems = try PaperConflictSet.load(json: Repository.fixture("paper_following_vision_excerpt.json"), imageFolder: nil).items
        paperItems += try MC2Benchmark.load(json: Repository.fixture("mc2_excerpt.json"), imageFolder: nil).items
        let items = ConflictGenerator(seed: 21).generate(count: 60) + paperItems
        var kindsSeen = Set<ItemKind>()
        for item in items {
            let imageTokens = item.image == nil ? 0 : 4
            let prompt = try builder.build(item.fields, imageTokens: imageTokens)
            let names = Set(prompt.spans.names)
            let present: [String: Bool] = [
                "image": item.image != nil, "context": item.context != nil, "instruction": item.instruction != nil,
                "question": true, "constraint": item.constraint != nil,
            ]
            for (name, isPresent) in present {
                #expect(names.contains(name) == isPresent, "\(layoutName) \(item.id) (\(item.kind.rawValue)): span \(name)")
            }
            if item.image != nil { #expect(try prompt.spans.positions("image").count == imageTokens) }
            // The question span decodes back to the question.
            let question = try prompt.spans.positions("question").map { prompt.ids[$0] }
            #expect(try tokenizer.decode(question).trimmingCharacters(in: .whitespacesAndNewlines) == item.question,
                    "\(item.id)")
            kindsSeen.insert(item.kind)
        }
        #expect(kindsSeen == Set(ItemKind.allCases))
    }
}
