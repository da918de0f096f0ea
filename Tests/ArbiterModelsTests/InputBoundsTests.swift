// Inputs bounded before anything is allocated: textual interventions, prompt fields, run lengths.
import ArbiterInterventions
import ArbiterModels
import Foundation
import Testing

@Suite("Input bounds")
struct InputBoundsTests {
    func message(_ body: () throws -> Void) -> String {
        do { try body() } catch { return "\(error)" }
        return "no error"
    }

    @Test("intervention numbers outside 0…2^20 are refused before a list is built")
    func interventionRanges() throws {
        let max = InterventionSyntax.maximumIndex
        for text in ["0-9223372036854775806->last@0", "0->last@0-100000000000", "0->last@\(max + 1)",
                     "0->last@0/heads=\(Int.max)"] {
            let m = message { _ = try InterventionSyntax.knockout(text) }
            #expect(m.contains("cannot read intervention '\(text)'"), "\(text): \(m)")
        }
        #expect(message { _ = try InterventionSyntax.heads("") }.contains("no heads"))
        #expect(message { _ = try InterventionSyntax.heads("1.-2") }.contains("must be in 0…"))
        #expect(message { _ = try InterventionSyntax.amplifications("") }.contains("no heads"))
        #expect(message { _ = try InterventionSyntax.amplifications("1.2xinf") }.contains("finite factor"))
        #expect(message { _ = try InterventionSyntax.mlpScale("0-3xnan") }.contains("finite factor"))
        // Lists add up: many ranges cannot exceed the cap together.
        let many = (0..<3).map { _ in "0-\(max - 1)" }.joined(separator: ",")
        #expect(message { _ = try InterventionSyntax.knockout("0->last@\(many)") }.contains("more than"))
        // What is in range still parses.
        guard case .knockout(_, _, let layers, let heads) = try InterventionSyntax.knockout("0-4,9->last@2-4/heads=1,3")
        else { Issue.record("not a knockout"); return }
        #expect(layers == [2, 3, 4] && heads == [1, 3])
    }

    @Test("a run longer than max_position_embeddings is refused before it is embedded")
    func runLength() throws {
        let model = try ModelRegistry.load(Repository.model("tiny-llama"))
        let limit = model.decoder.configuration.maxPositionEmbeddings
        _ = try model.decoder.forward(ids: Array(repeating: 1, count: limit), logits: .last)
        let m = message { _ = try model.decoder.forward(ids: Array(repeating: 1, count: limit + 1), logits: .last) }
        #expect(m.contains("\(limit + 1) tokens") && m.contains("max_position_embeddings (\(limit)"), "\(m)")
    }

    @Test("the memory a run needs is checked against what is available")
    func runMemory() throws {
        let model = try ModelRegistry.load(Repository.model("tiny-llama"))
        let c = model.decoder.configuration
        let needed = ResourceGuard.activationBytes(c, tokens: 64)
        try ResourceGuard.checkRun(tokens: 64, configuration: c, model: "m", available: needed)
        let m = message { try ResourceGuard.checkRun(tokens: 64, configuration: c, model: "m", available: needed - 1) }
        #expect(m.contains("m: a run of 64 tokens needs about"), "\(m)")
        // Sizes that would overflow integer arithmetic saturate instead of trapping.
        #expect(ResourceGuard.activationBytes(c, tokens: Int.max / 2) == Int.max)
    }

    @Test("a prompt field over the byte limit is refused before tokenization")
    func longField() throws {
        let session = try ModelSession(directory: Repository.model("tiny-llava"))
        let long = String(repeating: "a", count: PromptBuilder.maximumFieldBytes + 1)
        let m = message { _ = try session.prepare(PromptFields(question: long), image: nil) }
        #expect(m.contains("question text is \(long.utf8.count) bytes"), "\(m)")
    }
}
