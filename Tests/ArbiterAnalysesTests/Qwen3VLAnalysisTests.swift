// The analyses' resumed passes on Qwen3-VL: a baseline keeps the DeepStack additions its pass made, and every pass
// resumed from it — at a layer, as a suffix, in a batch — adds them again, scoring as a full intervened run.
@testable import ArbiterAnalyses
import ArbiterFormats
import ArbiterInterventions
import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

@Suite("Qwen3-VL analysis passes")
struct Qwen3VLAnalysisTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("GoldenData")

    @Test("resumed, suffix and batched intervened passes score as full runs with the same interventions")
    func resumedPasses() throws {
        let session = try ModelSession(directory: Self.root.appendingPathComponent("models/tiny-qwen3-vl"))
        let image = try PNGImage.read(url: Self.root.appendingPathComponent("images/qwen3-vl-test-45x29.png"))
        let input = try session.prepare(PromptFields(instruction: "Answer in one word.", question: "What is shown?"),
                                        image: image)
        let sample = AnalysisSample(id: "q3", kind: "conflict", target: nil, input: input)
        let runner = AnalysisRunner(session: session)
        let imageRows = try input.spans.positions("image"), last = input.ids.count - 1
        try BLAS.withSingleThread {
            let baseline = try runner.baseline(sample, keepKeysValues: true)
            #expect(baseline.additions?.positions == imageRows)
            #expect(baseline.additions?.layers.count == 2)
            // Knock the image out of the last query from layer 1 on: resumed at layer 1, DeepStack layer 1's
            // features must still be added at the image rows.
            let set = InterventionSet([.knockout(keys: .positions(imageRows), queries: .positions([last]),
                                                 layers: [1, 2, 3], heads: nil)])
            let hooks = try set.hooks(for: session.model.decoder, hookNames: session.model.hookNames,
                                      tokenCount: input.ids.count, spans: input.spans)
            let full = try session.run(input, logits: .last, hooks: hooks)
            let reference = FollowingScore(logits: Array(try #require(full.logits).row(0)), instructed: [0],
                                           competitor: [1])
            let resumed = try runner.score(sample, baseline: baseline, interventions: set, startLayer: 1)
            let suffix = try runner.score(sample, baseline: baseline, interventions: set, startLayer: 1,
                                          unchangedBefore: last)
            let batched = try runner.scores([ScoreRequest(sample: 0, interventions: set, startLayer: 1),
                                             ScoreRequest(sample: 0, interventions: set, startLayer: 1,
                                                          unchangedBefore: last)],
                                            samples: [sample], baselines: [baseline])
            for (label, score) in [("resumed", resumed), ("suffix", suffix), ("batched", batched[0]),
                                   ("batched suffix", batched[1])] {
                #expect(abs(score.s - reference.s) < 1e-4 && score.top == reference.top,
                        "\(label): \(score) vs the full run's \(reference)")
            }
            // Without the additions the resumed pass is another model.
            var bare = baseline
            bare.additions = nil
            let without = try runner.score(sample, baseline: bare, interventions: set, startLayer: 1)
            #expect(abs(without.s - reference.s) > 1e-4, "\(without) vs \(reference)")
        }
    }
}
