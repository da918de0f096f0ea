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

    /// A random intervention that acts alike at every position (what shared prefixes are for).
    static func uniformInterventions(_ s: inout Scenario) -> InterventionSet {
        switch Int.random(in: 0..<3, using: &s.rng) {
        case 0: return InterventionSet([.blockHeads(s.randomHeads(count: 2), means: nil)])
        case 1: return InterventionSet([.amplifyHeads(s.randomHeads(count: 2), factor: 3)])
        default: return InterventionSet([.scaleMLP(layers: s.randomLayers(), factor: 0.5)])
        }
    }

    /// A shared prefix of `p` tokens and prompts continuing it, as full runs from `startLayer` and as a
    /// batch of the prefix run and one continuation per prompt.
    static func sharedPrefixCase(_ s: inout Scenario, startLayer: Int, seed: Int)
        throws -> (full: [DecoderRun], shared: [DecoderRun], description: String) {
        let p = Int.random(in: 1...6, using: &s.rng)
        let prefixIDs = s.spec.ids(count: p, seed: UInt64(seed))
        let interventions = uniformInterventions(&s)
        var full: [DecoderRun] = [], shared: [DecoderRun] = []
        for i in 0..<Int.random(in: 1...4, using: &s.rng) {
            let count = Int.random(in: 1...6, using: &s.rng)
            let ids = prefixIDs + s.spec.ids(count: count, seed: UInt64(seed &+ 31 &* (i + 1)))
            let cached = HookRun(cache: .patterns(["blocks.*.hook_resid_pre"]))
            let out = try s.decoder.forward(ids: ids, logits: .none, hooks: cached)
            let residual = startLayer < s.spec.layers
                ? cached.cache["blocks.\(startLayer).hook_resid_pre"]! : out.residual
            let hooks = try interventions.hooks(for: s.decoder, hookNames: s.decoder.hookNames, tokenCount: ids.count)
            full.append(DecoderRun(residual: residual, positions: .sequential(ids.count), hooks: hooks))
            if shared.isEmpty {
                shared.append(DecoderRun(residual: residual.rows(0..<p), positions: .sequential(p), hooks: hooks))
            }
            shared.append(DecoderRun(residual: residual.rows(p..<ids.count),
                                     positions: .sequential(ids.count).slice(p..<ids.count), hooks: hooks,
                                     continues: 0))
        }
        return (full, shared, "prefix \(p), \(full.count) continuations, \(interventions)")
    }

    @Test("runs continuing a shared prefix give the logits of their full runs, in a batch of other runs")
    func sharedPrefixEqualsFullRuns() async {
        await propertyCheck(count: 25, input: layersGen, kvGen, groupsGen, seedGen) { l, kv, g, seed in
            var s = try Scenario(layers: l, kvHeads: kv, groups: g, seed: seed)
            let start = Int.random(in: 0...l, using: &s.rng)
            let (other, _) = try Self.randomRun(&s, startLayer: start, seed: seed &+ 5)
            let (full, shared, description) = try Self.sharedPrefixCase(&s, startLayer: start, seed: seed)
            // Another run first, so the continuations refer past it.
            let batch = [other] + shared.map { run in
                var moved = run
                moved.continues = run.continues.map { $0 + 1 }
                return moved
            }
            let logits = try s.decoder.forward(batch: batch, startLayer: start)
            for (i, run) in full.enumerated() {
                let alone = try s.decoder.forward(residual: run.residual, positions: run.positions, startLayer: start,
                                                  logits: .last, hooks: run.hooks)
                let same = Self.close(logits[i + 2], Array(alone.logits!.row(0)))
                #expect(same, "continuation \(i) (\(description)), start \(start): \(s)")
            }
        }
    }

    @Test("run by run, a continuation is bit for bit the suffix run over its prefix run's cached keys and values")
    func continuationEqualsSuffixRun() async {
        // Run by run (a final-norm hook forces it), the prefix and each continuation multiply the same rows
        // as the prefix run alone and the suffix run do: the same arithmetic, so no tolerance.
        await propertyCheck(count: 25, input: layersGen, kvGen, groupsGen, seedGen) { l, kv, g, seed in
            var s = try Scenario(layers: l, kvHeads: kv, groups: g, seed: seed)
            let start = Int.random(in: 0...l, using: &s.rng)
            let (_, shared, description) = try Self.sharedPrefixCase(&s, startLayer: start, seed: seed)
            var batch = shared
            let watcher = HookRun(cache: .names(["ln_final.hook_normalized"]))
            batch[0].hooks = watcher
            let prefixHooks = HookRun(cache: .patterns(["blocks.*.attn.hook_rot_k", "blocks.*.attn.hook_v"]))
            try shared[0].hooks.map { hooks in
                for name in s.decoder.hookNames where hooks.edits(name) {
                    prefixHooks.addEdit(at: name) { t, point in try hooks.applyEdits(name, &t, point) }
                    watcher.addEdit(at: name) { t, point in try hooks.applyEdits(name, &t, point) }
                }
            }
            let logits = try s.decoder.forward(batch: batch, startLayer: start)
            _ = try s.decoder.forward(residual: shared[0].residual, positions: shared[0].positions, startLayer: start,
                                      logits: .none, hooks: prefixHooks)
            let p = shared[0].residual.rows
            let keys = (0..<l).map { layer in
                prefixHooks.cache["blocks.\(layer).attn.hook_rot_k"].map { $0.reshaped([p, $0.count / p]) }
                    ?? Tensor(zeros: [p, kv * s.spec.headDim])
            }
            let values = (0..<l).map { layer in
                prefixHooks.cache["blocks.\(layer).attn.hook_v"].map { $0.reshaped([p, $0.count / p]) }
                    ?? Tensor(zeros: [p, kv * s.spec.headDim])
            }
            for (i, run) in shared.enumerated().dropFirst() {
                let suffix = try s.decoder.forward(residual: run.residual, positions: run.positions, startLayer: start,
                                                   logits: .last, hooks: run.hooks,
                                                   prefix: PrefixKeyValues(keys: keys, values: values))
                let same = logits[i].map(\.bitPattern) == suffix.logits!.row(0).map(\.bitPattern)
                #expect(same, "continuation \(i) (\(description)), start \(start): \(s)")
            }
        }
    }

    @Test("a run continuing no earlier run of the batch, or with a prefix of its own, is refused naming it")
    func badContinuation() throws {
        var s = try Scenario(layers: 2, kvHeads: 1, groups: 2, seed: 14)
        let runs = try (0..<2).map { try Self.randomRun(&s, startLayer: 0, seed: 400 + $0).0 }
        func message(_ batch: [DecoderRun]) -> String {
            do {
                _ = try s.decoder.forward(batch: batch, startLayer: 0)
                return "accepted"
            } catch { return "\(error)" }
        }
        for target in [1, 2, -1] {
            var bad = runs
            bad[1].continues = target
            bad[1].prefix = nil
            let text = message(bad)
            #expect(text.contains("batched run 1: continues run \(target), which is not an earlier run"), "\(text)")
        }
        var both = runs
        both[1].continues = 0
        both[1].prefix = PrefixKeyValues(keys: (0..<2).map { _ in Tensor(zeros: [1, s.spec.headDim]) },
                                         values: (0..<2).map { _ in Tensor(zeros: [1, s.spec.headDim]) })
        let text = message(both)
        #expect(text.contains("batched run 1: continues run 0 and has a prefix of its own"), "\(text)")
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
