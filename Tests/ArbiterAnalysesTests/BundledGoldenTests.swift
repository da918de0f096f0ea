// The bundled trained models against transformers on the committed held-out items (GoldenData/heldout/,
// references written by Tools/golden_bundled.py): for every item the same prompt ids, the last-position logits
// and the image features within the float32 golden tolerance, and the same decision (sign of the following
// score) on every item the analyses score.
import ArbiterAnalyses
import ArbiterData
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

@Suite("Bundled models vs transformers on held-out items")
struct BundledGoldenTests {
    static let heldOut = Fixtures.root.appendingPathComponent("GoldenData/heldout")

    /// Models with a held-out golden file (`GoldenData/activations/<model>/heldout.h5`).
    static var models: [String] {
        let base = Fixtures.root.appendingPathComponent("GoldenData/activations")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: base.appendingPathComponent("\($0)/heldout.h5").path) }.sorted()
    }

    @Test("at least the main model and its shortcut control have held-out goldens")
    func bundledModelsCovered() {
        #expect(Self.models.contains("arbiter-main") && Self.models.contains("arbiter-shortcut"), "found \(Self.models)")
    }

    @Test("ids, logits, image features and decisions equal transformers'", arguments: models)
    func matchesTransformers(model id: String) throws {
        let golden = try GoldenActivations(url: Fixtures.root.appendingPathComponent("GoldenData/activations/\(id)/heldout.h5"))
        let session = try ModelSession(directory: Fixtures.root.appendingPathComponent("GoldenData/models/\(id)"))
        let set = try ConflictDataset.load(directory: Self.heldOut)
        let ids = try golden.inputIDs()
        let offsets = try golden.integers("item_offsets").values
        let imageOffsets = try golden.integers("image_offsets").values
        let logits = try golden.tensor("logits_last")
        let features = try golden.tensor("image_features")
        try #require(offsets.count == set.items.count + 1 && imageOffsets.count == set.items.count + 1,
                     "\(id): golden file holds \(offsets.count - 1) items, dataset \(set.items.count)")
        #expect(set.items.count >= 64)
        let probes = Dictionary(uniqueKeysWithValues: try ProbeItems.make(set).map { ($0.id, $0) })
        var decided = 0
        for (i, item) in set.items.enumerated() {
            let image = try item.image.map { try PNGImage.read(url: Self.heldOut.appendingPathComponent($0)) }
            let input = try session.prepare(item.fields, image: image)
            let expectedIDs = Array(ids[offsets[i]..<offsets[i + 1]])
            let sameIDs = input.ids == expectedIDs
            #expect(sameIDs, "\(id) item \(item.id): prompt ids differ from transformers' (\(input.ids.count) vs \(expectedIDs.count) tokens)")
            guard sameIDs else { continue }
            let hooks = HookRun(cache: .names(["hook_image_features"]))
            let out = try session.run(input, logits: .last, hooks: hooks)
            let swiftLogits = Array(out.logits!.row(0)), referenceLogits = Array(logits.row(i))
            let report = compare(Tensor(shape: [1, swiftLogits.count], scalars: swiftLogits),
                                 to: Tensor(shape: [1, referenceLogits.count], scalars: referenceLogits),
                                 tolerance: GoldenComparison.float32, label: "\(id) item \(item.id) logits_last")
            #expect(report.passed, "\(report)")
            let rows = imageOffsets[i + 1] - imageOffsets[i]
            if rows > 0 {
                let reference = Tensor(shape: [rows, features.columns],
                                       scalars: Array(features.scalars[(imageOffsets[i] * features.columns)..<(imageOffsets[i + 1] * features.columns)]))
                let actual = try #require(hooks.cache["hook_image_features"], "\(id) item \(item.id): no image features cached")
                let r = compare(actual, to: reference, tolerance: GoldenComparison.float32, label: "\(id) item \(item.id) image_features")
                #expect(r.passed, "\(r)")
            }
            if let probe = probes[item.id] {
                let sample = try AnalysisSample(probe, session: session)
                let ours = FollowingScore(logits: swiftLogits, instructed: sample.instructed, competitor: sample.competitor)
                let theirs = FollowingScore(logits: referenceLogits, instructed: sample.instructed, competitor: sample.competitor)
                #expect(ours.follows == theirs.follows,
                        "\(id) item \(item.id): decision differs (s = \(ours.s) here, \(theirs.s) in transformers)")
                decided += 1
            }
        }
        #expect(decided >= 64, "\(id): only \(decided) items were scored")
    }
}
