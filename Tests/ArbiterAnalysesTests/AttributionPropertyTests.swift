// Direct logit attribution is complete, property-based over random LLaVA checkpoints (the tiny LLaVA with
// seeded random weights; seed 0 is the bundled one) and random conflict items: the embedding's and every
// layer's attention and MLP DLA add up to the linearised score Σ_k (∂s/∂logit_k)·logit_k read from the
// model's own logits, and the heads' DLA add up to their layer's.
@testable import ArbiterAnalyses
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation
import PropertyBased
import Testing

enum RandomLlava {
    static let colors = ["red", "blue", "green", "yellow", "white", "black"]

    /// The tiny LLaVA's folder with every weight multiplied by a seeded factor in [0.25, 1.75] (seed 0: as
    /// bundled), in `folder`.
    static func model(seed: UInt64, in folder: URL) throws -> URL {
        guard seed != 0 else { return Fixtures.tinyLlava }
        let manager = FileManager.default
        let directory = folder.appendingPathComponent("llava-\(seed)")
        let weights = directory.appendingPathComponent("model.safetensors")
        guard !manager.fileExists(atPath: weights.path) else { return directory }
        try manager.createDirectory(at: directory, withIntermediateDirectories: true)
        for name in try manager.contentsOfDirectory(atPath: Fixtures.tinyLlava.path) where name != "model.safetensors" {
            try manager.copyItem(at: Fixtures.tinyLlava.appendingPathComponent(name),
                                 to: directory.appendingPathComponent(name))
        }
        var rng = SeededRNG(seed: seed)
        let file = try SafetensorsFile(url: Fixtures.tinyLlava.appendingPathComponent("model.safetensors"))
        var tensors: [String: Tensor] = [:]
        for name in file.names {
            var t = file.tensors[name]!.toTensor()
            for i in t.scalars.indices { t.scalars[i] *= Float.random(in: 0.25...1.75, using: &rng) }
            tensors[name] = t
        }
        try SafetensorsWriter.write(floats: tensors, dtype: .float32, to: weights)
        return directory
    }

    /// A conflict item with random colours, target, wording and image pixels.
    static func item(seed: UInt64, imageSide: Int) -> ProbeItem {
        var rng = SeededRNG(seed: seed)
        let picked = colors.shuffled(using: &rng)
        let (a, b) = (picked[0], picked[1])
        let target: InstructionTarget = Bool.random(using: &rng) ? .image : .text
        let speaker = ["The shop owner said", "A note says", "Everyone agreed"].randomElement(using: &rng)!
        let fields = PromptFields(context: "\(speaker) the cube is \(b).",
                                  instruction: target == .image ? "Rely on the image." : "Rely on the text.",
                                  question: "What color is the cube?", constraint: "The answer is")
        let pixels = (0..<(imageSide * imageSide * 3)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return ProbeItem(id: "random-\(seed)", kind: "conflict", target: target, fields: fields,
                         image: RGBImage(width: imageSide, height: imageSide, pixels: pixels),
                         instructed: [target == .image ? a : b], competitor: [target == .image ? b : a])
    }
}

@Suite("Direct logit attribution (property-based)")
struct AttributionPropertyTests {
    /// What fails for one model and item (empty when DLA is complete).
    static func completeness(modelSeed: UInt64, itemSeed: UInt64, folder: URL) throws -> [String] {
        let session = try ModelSession(directory: try RandomLlava.model(seed: modelSeed, in: folder),
                                       layout: try .builtin("raw"))
        let sample = try AnalysisSample(RandomLlava.item(seed: itemSeed, imageSide: 24), session: session)
        let runner = AnalysisRunner(session: session)
        let base = try runner.baseline(sample, keepPatterns: false)
        let result = try Attribution.measure(runner: runner, samples: [sample], baselines: [base], seed: 1)
        let g = Attribution.direction(runner: runner, sample: sample, baseline: base)
        let last = sample.input.ids.count - 1
        let embedding = Attribution.dot(base.residPre[0].row(last), g)
        var terms = [embedding]
        var problems: [String] = []
        for l in 0..<runner.layers {
            let attention = result.attention["overall"]![l].value, mlp = result.mlp["overall"]![l].value
            terms += [attention, mlp]
            // Per-head results are separate products of z and W_o's column blocks; the layer's output is one
            // product over all of them: the same sum in another order (no o_proj bias in Llama).
            let heads = result.heads[l].reduce(0, +)
            if abs(heads - attention) > 1e-4 * (1 + result.heads[l].map(abs).reduce(0, +)) {
                problems.append("layer \(l): heads' DLA sum to \(heads), the attention output's DLA is \(attention)")
            }
        }
        let components = terms.reduce(0, +)
        let gradient = FollowingScore.gradient(logits: base.logitsLast, instructed: sample.instructed,
                                               competitor: sample.competitor)
        let linearised = gradient.reduce(0.0) { $0 + $1.1 * Double(base.logitsLast[$1.0]) }
        // The residual stream is summed in float32 and each logit is a float32 dot product over d = 64: at
        // most ~d·ε ≈ 8e-6 of the terms' magnitudes apart from the double-precision sum (observed ≤ 1e-7).
        let weighted = gradient.map { abs($0.1 * Double(base.logitsLast[$0.0])) }
        let scale = 1 + terms.map(abs).reduce(0, +) + weighted.reduce(0, +)
        if abs(components - linearised) > 1e-5 * scale {
            problems.append("components sum to \(components), the linearised score is \(linearised) (scale \(scale))")
        }
        return problems
    }

    @Test("embedding + attention + MLP DLA = the linearised score, heads sum to their layer (random models, items)")
    func attributionIsComplete() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("arbiter-dla-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        await propertyCheck(count: 12, input: Gen.int(in: 0...5), Gen.int(in: 0...1_000_000)) { model, item in
            let problems = try Self.completeness(modelSeed: UInt64(model), itemSeed: UInt64(item), folder: folder)
            #expect(problems.isEmpty, "model seed \(model), item seed \(item): \(problems)")
        }
    }
}
