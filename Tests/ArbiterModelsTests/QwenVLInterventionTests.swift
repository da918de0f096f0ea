// Interventions run unchanged on Qwen2.5-VL's language model, whose rotary uses 3-D positions.
import ArbiterFormats
import ArbiterInterventions
import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

@Suite("Qwen-VL interventions")
struct QwenVLInterventionTests {
    @Test("knocking the image out of the last query changes its logits; an empty knockout changes nothing")
    func imageKnockout() throws {
        let golden = try QwenVLFixtures.golden("tiny-qwen2_5-vl")
        let model = try QwenVLFixtures.load("tiny-qwen2_5-vl")
        let ids = try golden.inputIDs(), pixels = try golden.tensor("pixel_values"), grids = try QwenVLFixtures.grids(golden)
        let image = ids.indices.filter { ids[$0] == model.configuration.imageTokenID }
        let last = ids.count - 1
        func run(_ set: InterventionSet) throws -> Tensor {
            let hooks = try set.hooks(for: model.decoder, hookNames: model.hookNames, tokenCount: ids.count)
            return try #require(try model.forward(ids: ids, pixelValues: pixels, grids: grids, logits: .last, hooks: hooks).logits)
        }
        let layers = Array(0..<model.decoder.layerCount)
        // Compared bit for bit: both on one BLAS thread (OpenBLAS's last bits follow its process-wide thread count,
        // which tests running beside this one change; a CI run failed on it without).
        let (base, empty) = try BLAS.withSingleThread {
            (try run(InterventionSet()),
             try run(InterventionSet([.knockout(keys: .positions([]), queries: .positions([last]), layers: layers,
                                                heads: nil)])))
        }
        #expect(empty == base)
        let knocked = try run(InterventionSet([.knockout(keys: .positions(image), queries: .positions([last]), layers: layers, heads: nil)]))
        let change = zip(knocked.scalars, base.scalars).map { abs($0 - $1) }.max() ?? 0
        #expect(change > 1e-3, "knockout changed the last logits by at most \(change)")
    }

    @Test("a run resumed from a cached residual with decoderInputs' 3-D positions equals the full run")
    func resume() throws {
        let golden = try QwenVLFixtures.golden("tiny-qwen2-vl")
        let model = try QwenVLFixtures.load("tiny-qwen2-vl")
        let ids = try golden.inputIDs(), pixels = try golden.tensor("pixel_values"), grids = try QwenVLFixtures.grids(golden)
        let hooks = HookRun(cache: .names(["blocks.1.hook_resid_pre"]))
        // OpenBLAS's last bits depend on its (process-wide) thread count, which tests running in parallel change:
        // the runs compared exactly are pinned to one thread (a CI run failed on one logit's last bit without).
        let (full, embeddings, positions, fromEmbeddings) = try BLAS.withSingleThread {
            let full = try #require(try model.forward(ids: ids, pixelValues: pixels, grids: grids, hooks: hooks).logits)
            let (embeddings, positions) = try model.decoderInputs(ids: ids, pixelValues: pixels, grids: grids)
            return (full, embeddings, positions, try model.decoder.forward(residual: embeddings, positions: positions).logits)
        }
        #expect(positions.isMultimodal)
        #expect(fromEmbeddings == full)
        let resid = try #require(hooks.cache["blocks.1.hook_resid_pre"])
        let resumed = try BLAS.withSingleThread {
            try model.decoder.forward(residual: resid, positions: positions, startLayer: 1).logits
        }
        #expect(resumed == full)
        // 1-D positions give different logits: the 3-D positions matter.
        let sequential = try #require(try model.decoder.forward(residual: embeddings, positions: .sequential(ids.count)).logits)
        #expect(sequential != full)
    }

    @Test("batched runs with 3-D positions (whole prompt, a suffix, a knockout) equal their separate runs")
    func batchedRuns() throws {
        let golden = try QwenVLFixtures.golden("tiny-qwen2_5-vl")
        let model = try QwenVLFixtures.load("tiny-qwen2_5-vl")
        let ids = try golden.inputIDs(), pixels = try golden.tensor("pixel_values"), grids = try QwenVLFixtures.grids(golden)
        let (embeddings, positions) = try model.decoderInputs(ids: ids, pixelValues: pixels, grids: grids)
        let cache = HookRun(cache: .patterns(["blocks.*.attn.hook_rot_k", "blocks.*.attn.hook_v"]))
        _ = try model.decoder.forward(residual: embeddings, positions: positions, logits: .none, hooks: cache)
        let t = ids.count, p = t - 3, layers = model.decoder.layerCount
        let keys = (0..<layers).map { l in cache.cache["blocks.\(l).attn.hook_rot_k"]!.reshaped([t, cache.cache["blocks.\(l).attn.hook_rot_k"]!.count / t]) }
        let values = (0..<layers).map { l in cache.cache["blocks.\(l).attn.hook_v"]!.reshaped([t, cache.cache["blocks.\(l).attn.hook_v"]!.count / t]) }
        let image = ids.indices.filter { ids[$0] == model.configuration.imageTokenID }
        let knockout = try InterventionSet([.knockout(keys: .positions(image), queries: .positions([t - 1]), layers: Array(0..<layers), heads: nil)])
            .hooks(for: model.decoder, hookNames: model.hookNames, tokenCount: t)
        let runs = [
            DecoderRun(residual: embeddings, positions: positions),
            DecoderRun(residual: embeddings.rows(p..<t), positions: positions.slice(p..<t),
                       prefix: PrefixKeyValues(prefixOf: keys, values: values, count: p)),
            DecoderRun(residual: embeddings, positions: positions, hooks: knockout),
        ]
        let batched = try model.decoder.forward(batch: runs, startLayer: 0)
        for (i, run) in runs.enumerated() {
            let alone = try #require(try model.decoder.forward(residual: run.residual, positions: run.positions, logits: .last,
                                                               hooks: run.hooks, prefix: run.prefix).logits)
            let worst = zip(batched[i], alone.scalars).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
            #expect(worst <= 1e-4, "run \(i): worst relative difference \(worst)")
        }
        #expect(batched[0] != batched[2], "the knockout changed nothing")
    }
}
