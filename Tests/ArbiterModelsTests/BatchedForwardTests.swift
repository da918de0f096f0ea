// LlamaDecoder.forward(batch:startLayer:): runs stacked for the matrix products give each run's own
// last-position logits — with its own interventions, start layer, cached prefix — as separate runs do.
import ArbiterInterventions
import ArbiterModels
import ArbiterTensor
import PropertyBased
import Testing

@Suite("Batched decoder runs")
struct BatchedForwardTests {
    /// Batched and separate runs multiply matrices with different row counts, and OpenBLAS's result for a
    /// row depends on the call's row count in the last bits (measured: every sub-batch differs bitwise, by
    /// ~1e-7 relative); through ≤ 3 random layers with weights of std 0.3 that stays far below 1e-4.
    static func close(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-4 + 1e-4 * abs($1) }
    }

    /// One random run of a batch: prompt, interventions, and (sometimes) a cached prefix.
    static func randomRun(_ s: inout Scenario, startLayer: Int, seed: Int) throws -> (DecoderRun, String) {
        let tokens = Int.random(in: 1...12, using: &s.rng)
        let ids = s.spec.ids(count: tokens, seed: UInt64(seed))
        let cached = HookRun(cache: .patterns(["blocks.*.hook_resid_pre", "blocks.*.attn.hook_rot_k", "blocks.*.attn.hook_v"]))
        let full = try s.decoder.forward(ids: ids, logits: .none, hooks: cached)
        let residual = startLayer < s.spec.layers ? cached.cache["blocks.\(startLayer).hook_resid_pre"]! : full.residual
        var interventions: [Intervention] = []
        switch Int.random(in: 0..<4, using: &s.rng) {
        case 0: break
        case 1:
            let keys = (0..<tokens).filter { _ in Bool.random(using: &s.rng) }
            let queries = (0..<tokens).filter { _ in Bool.random(using: &s.rng) }
            interventions.append(.knockout(keys: .positions(keys), queries: .positions(queries), layers: s.randomLayers(), heads: nil))
        case 2: interventions.append(.blockHeads(s.randomHeads(count: 2), means: nil))
        default: interventions.append(.amplifyHeads(s.randomHeads(count: 2), factor: 3))
        }
        let hooks = try InterventionSet(interventions).hooks(for: s.decoder, hookNames: s.decoder.hookNames, tokenCount: tokens)
        let p = Bool.random(using: &s.rng) ? Int.random(in: 0..<tokens, using: &s.rng) : 0
        let description = "\(tokens) tokens, prefix \(p), \(InterventionSet(interventions))"
        guard p > 0 else { return (DecoderRun(residual: residual, positions: .sequential(tokens), hooks: hooks), description) }
        let keys = (0..<s.spec.layers).map { l in
            let k = cached.cache["blocks.\(l).attn.hook_rot_k"]!
            return k.reshaped([tokens, k.count / tokens])
        }
        let values = (0..<s.spec.layers).map { l in
            let v = cached.cache["blocks.\(l).attn.hook_v"]!
            return v.reshaped([tokens, v.count / tokens])
        }
        return (DecoderRun(residual: residual.rows(p..<tokens), positions: .sequential(tokens).slice(p..<tokens), hooks: hooks,
                           prefix: PrefixKeyValues(prefixOf: keys, values: values, count: p)), description)
    }

    @Test("each run's logits equal its separate run's, for any start layer, interventions and prefixes")
    func batchEqualsSeparate() async {
        await propertyCheck(count: 25, input: layersGen, kvGen, groupsGen, seedGen) { l, kv, g, seed in
            var s = try Scenario(layers: l, kvHeads: kv, groups: g, seed: seed)
            let start = Int.random(in: 0...l, using: &s.rng)
            var runs: [DecoderRun] = [], descriptions: [String] = []
            for i in 0..<Int.random(in: 2...6, using: &s.rng) {
                let (run, description) = try Self.randomRun(&s, startLayer: start, seed: seed &+ 17 &* (i + 1))
                runs.append(run)
                descriptions.append(description)
            }
            let batched = try s.decoder.forward(batch: runs, startLayer: start)
            for (i, run) in runs.enumerated() {
                let alone = try s.decoder.forward(residual: run.residual, positions: run.positions, startLayer: start,
                                                  logits: .last, hooks: run.hooks, prefix: run.prefix)
                let same = Self.close(batched[i], Array(alone.logits!.row(0)))
                #expect(same, "run \(i) of \(runs.count) (\(descriptions[i])), start \(start): \(s)")
            }
        }
    }

    @Test("a run whose hooks read the final norm makes the batch run run by run, with those hooks visited")
    func finalHooksFallBack() throws {
        var s = try Scenario(layers: 2, kvHeads: 1, groups: 2, seed: 11)
        var runs = try (0..<3).map { try Self.randomRun(&s, startLayer: 0, seed: 100 + $0).0 }
        let watcher = HookRun(cache: .names(["ln_final.hook_normalized"]))
        runs[1].hooks = watcher
        let batched = try s.decoder.forward(batch: runs, startLayer: 0)
        #expect(watcher.cache["ln_final.hook_normalized"]?.rows == runs[1].residual.rows)
        let alone = try s.decoder.forward(residual: runs[1].residual, positions: runs[1].positions, logits: .last, hooks: watcher,
                                          prefix: runs[1].prefix)
        #expect(batched[1] == Array(alone.logits!.row(0)))
    }

    @Test("a NaN in one run of a batch is reported with that run's hook, layer and position")
    func nonFiniteNamesTheRun() throws {
        var s = try Scenario(layers: 2, kvHeads: 1, groups: 2, seed: 12)
        var runs = try (0..<3).map { try Self.randomRun(&s, startLayer: 0, seed: 200 + $0).0 }
        let poisoned = HookRun()
        poisoned.addEdit(at: "blocks.1.hook_mlp_out") { t, _ in t.scalars[t.columns * (t.rows - 1)] = .nan }
        runs[2].hooks = poisoned
        do {
            _ = try s.decoder.forward(batch: runs, startLayer: 0)
            Issue.record("a NaN went unreported")
        } catch let error as ModelError {
            #expect("\(error)".contains("blocks.1.hook_mlp_out"), "\(error)")
        }
    }

    @Test("malformed runs are errors naming the run")
    func badRuns() throws {
        var s = try Scenario(layers: 2, kvHeads: 1, groups: 2, seed: 13)
        var runs = try (0..<2).map { try Self.randomRun(&s, startLayer: 0, seed: 300 + $0).0 }
        runs[1].positions = .sequential(runs[1].residual.rows + 1)
        #expect(throws: ModelError.self) { _ = try s.decoder.forward(batch: runs, startLayer: 0) }
        #expect(throws: ModelError.self) { _ = try s.decoder.forward(batch: [runs[0], runs[0]], startLayer: 3) }
    }
}
