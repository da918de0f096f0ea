// bf16 compute (`ComputePrecision.bfloat16`: weights rounded to bf16 at load, matrix products in bf16 arithmetic
// on AVX512-BF16 CPUs) decides every item as f32 does: on the bundled models (held-out items) and on the
// controls (their data), the sign of the following score at the last position — instructed vs competitor
// answer — is the same in both modes for every scored item. A disagreement is listed with both scores.
import ArbiterAnalyses
import ArbiterData
import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

@Suite("bf16 compute decisions")
struct BFloat16DecisionTests {
    struct Model: Sendable, CustomStringConvertible {
        let name: String
        let folder: String
        let data: String
        var description: String { name }
    }

    static let controls = ["anchored", "dense", "direct", "helpful-mlp", "selective-transfer", "shared-route"]
    static let models: [Model] = ["arbiter-main", "arbiter-shortcut"].map {
        Model(name: $0, folder: "GoldenData/models/\($0)", data: "GoldenData/heldout")
    } + controls.map {
        Model(name: "control \($0)", folder: "GoldenData/controls/\($0)", data: "GoldenData/controls/data")
    }

    @Test("f32 and bf16 compute make the same decision on every item", arguments: models)
    func sameDecisions(_ model: Model) throws {
        let folder = Fixtures.root.appendingPathComponent(model.folder)
        let f32 = try ModelSession(directory: folder, compute: .float32)
        let bf16 = try ModelSession(directory: folder, compute: .bfloat16)
        let data = Fixtures.root.appendingPathComponent(model.data)
        let probes = try ProbeItems.make(try ConflictDataset.load(directory: data))
        try #require(probes.count >= 64, "\(model): only \(probes.count) items")
        // Items side by side on every core, each pass on one thread (as the analyses run).
        let runner = AnalysisRunner(session: f32)
        let scores = try BLAS.withSingleThread {
            try runner.parallelMap(probes.count) { i -> (FollowingScore, FollowingScore) in
                func score(_ session: ModelSession) throws -> FollowingScore {
                    let sample = try AnalysisSample(probes[i], session: session)
                    let logits = try session.run(sample.input, logits: .last).logits!
                    return FollowingScore(logits: Array(logits.row(0)), instructed: sample.instructed,
                                          competitor: sample.competitor)
                }
                return (try score(f32), try score(bf16))
            }
        }
        var disagreements: [String] = [], closest = Double.infinity, largestShift = 0.0, changed = 0
        for (probe, (a, b)) in zip(probes, scores) {
            if a.follows != b.follows { disagreements.append("\(probe.id): s = \(a.s) (f32), \(b.s) (bf16)") }
            closest = min(closest, abs(a.s))
            largestShift = max(largestShift, abs(a.s - b.s))
            if a.s != b.s { changed += 1 }
        }
        let summary = "\(model): \(probes.count) items, \(disagreements.count) decisions differ; smallest |s| (f32) "
            + "\(closest), largest |Δs| \(largestShift); \(changed) scores changed; "
            + (BFloat16GEMM.isAvailable ? "AVX512-BF16 kernel" : "no AVX512-BF16: bf16 weights, f32 arithmetic")
        Attachment.record(summary, named: "bf16-decisions.txt")
        #expect(disagreements.isEmpty, "\(summary): \(disagreements.prefix(10))")
        // bf16 compute really ran: the weights were rounded (f32 checkpoints), so scores moved.
        #expect(changed > 0, "\(summary): no score changed; was bf16 compute used?")
    }
}
