// The one place a run resumed from a cached pass is planned (`DecoderRun.firstRecomputed` and
// `DecoderRun.resumed`), which the analyses' single and batched scoring both use.
@testable import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

@Suite("Resumed runs")
struct ResumedRunTests {
    @Test("the first recomputed row: the promise when it is inside the prompt and keys/values were kept, else 0")
    func firstRecomputed() {
        #expect(DecoderRun.firstRecomputed(unchangedBefore: 5, tokens: 9, keysValuesKept: true) == 5)
        #expect(DecoderRun.firstRecomputed(unchangedBefore: 5, tokens: 9, keysValuesKept: false) == 0)
        #expect(DecoderRun.firstRecomputed(unchangedBefore: 0, tokens: 9, keysValuesKept: true) == 0)
        #expect(DecoderRun.firstRecomputed(unchangedBefore: 9, tokens: 9, keysValuesKept: true) == 0)
        #expect(DecoderRun.firstRecomputed(unchangedBefore: -1, tokens: 9, keysValuesKept: true) == 0)
    }

    @Test("a resumed run from row p is a suffix run over the cached keys and values, equal to the full run's rows")
    func suffixRun() throws {
        let model = try ModelRegistry.load(Repository.model("tiny-llama"))
        let ids = [1, 17, 42, 99, 7, 250, 13, 88, 5], t = ids.count, p = 4, layers = model.decoder.layerCount
        let hooks = HookRun(cache: .all)
        let flat = { (x: Tensor) in x.reshaped([x.shape[0], x.count / x.shape[0]]) }
        let (full, resumed, alone) = try BLAS.withSingleThread {
            let full = try model.decoder.forward(ids: ids, logits: .all, hooks: hooks)
            let keys = (0..<layers).map { flat(hooks.cache[HookName.block($0, .rotK)]!) }
            let values = (0..<layers).map { flat(hooks.cache[HookName.block($0, .v)]!) }
            let residual = hooks.cache[HookName.embed]!
            let run = DecoderRun.resumed(rows: p..<t, of: residual, positions: .sequential(t), keys: keys,
                                         values: values, hooks: nil, additions: nil)
            #expect(run.prefix?.count == p && run.residual.rows == t - p)
            let alone = DecoderRun.resumed(rows: 0..<t, of: residual, positions: .sequential(t), keys: keys,
                                           values: values, hooks: nil, additions: nil)
            #expect(alone.prefix == nil)
            return (full, try model.decoder.forward(run, logits: .all), try model.decoder.forward(alone, logits: .all))
        }
        let reference = try #require(full.logits)
        #expect(alone.logits == reference, "a run of every row is the full run")
        let report = compare(try #require(resumed.logits), to: reference.rows(p..<t),
                             tolerance: Tolerance(atol: 1e-4, rtol: 1e-4, nmse: 1e-10,
                                                  reason: "suffix vs full run: matrix products of other row counts"),
                             label: "suffix from \(p)")
        #expect(report.passed, "\(report)")
    }

    @Test("a run that continues another of its batch is refused alone, and gets no prefix of its own")
    func continuation() throws {
        let model = try ModelRegistry.load(Repository.model("tiny-llama"))
        let residual = try model.decoder.embed([1, 2, 3, 4])
        let keys = [Tensor](repeating: Tensor(zeros: [4, 32]), count: model.decoder.layerCount)
        let run = DecoderRun.resumed(rows: 2..<4, of: residual, positions: .sequential(4), keys: keys, values: keys,
                                     hooks: nil, continues: 0, additions: nil)
        #expect(run.prefix == nil && run.continues == 0)
        #expect(throws: ModelError.self) { try model.decoder.forward(run) }
    }
}
