// Invariants of hooks and interventions, property-based over random models, prompts, spans, layers,
// heads and factors (swift-property-based).
import ArbiterInterventions
import ArbiterModels
import ArbiterTensor
import PropertyBased
import Testing

/// A random model and prompt drawn from a few integers.
struct Scenario: CustomStringConvertible {
    let spec: RandomDecoderSpec
    let decoder: LlamaDecoder
    let ids: [Int]
    var rng: SeededGenerator

    init(layers: Int, kvHeads: Int, groups: Int, seed: Int, tokens: ClosedRange<Int> = 1...12) throws {
        var rng = SeededGenerator(randomModelSeed: UInt64(seed))
        let headDim = [2, 4, 6, 8].randomElement(using: &rng)!
        spec = RandomDecoderSpec(layers: layers, kvHeads: kvHeads, groups: groups, headDim: headDim,
                                 qkvBias: Bool.random(using: &rng), seed: UInt64(seed))
        decoder = try spec.make()
        ids = spec.ids(count: Int.random(in: tokens, using: &rng), seed: UInt64(seed) &+ 1)
        self.rng = rng
    }

    var tokens: Int { ids.count }
    var description: String { "\(spec), \(ids.count) tokens" }

    mutating func randomPositions() -> [Int] { (0..<tokens).filter { _ in Bool.random(using: &rng) } }
    mutating func randomLayers() -> [Int] {
        let a = Int.random(in: 0..<spec.layers, using: &rng), b = Int.random(in: a..<spec.layers, using: &rng)
        return Array(a...b)
    }
    mutating func randomHeads(count: Int) -> [HeadIndex] {
        (0..<count).map { _ in HeadIndex(layer: Int.random(in: 0..<spec.layers, using: &rng),
                                         head: Int.random(in: 0..<spec.heads, using: &rng)) }
    }

    func run(_ interventions: InterventionSet = InterventionSet(), cache: HookFilter = .none,
             spans: TokenSpans? = nil) throws -> (logits: Tensor, cache: [String: Tensor]) {
        let hooks = try interventions.hooks(for: decoder, hookNames: decoder.hookNames, tokenCount: tokens,
                                            spans: spans, cache: cache)
        let out = try decoder.forward(ids: ids, logits: .all, hooks: hooks)
        return (out.logits!, hooks.cache)
    }
}

let layersGen = Gen.int(in: 1...3), kvGen = Gen.int(in: 1...2), groupsGen = Gen.int(in: 1...3), seedGen = Gen.int(in: 0...1_000_000)

@Suite("Intervention invariants (property-based)")
struct InterventionInvariantTests {
    @Test("identity edits at every hook change nothing, bit for bit")
    func noOpHooks() async {
        await propertyCheck(count: 20, input: layersGen, kvGen, groupsGen, seedGen) { l, kv, g, seed in
            let s = try Scenario(layers: l, kvHeads: kv, groups: g, seed: seed)
            let base = try s.decoder.forward(ids: s.ids).logits!
            let hooks = HookRun(cache: .all)
            for name in s.decoder.hookNames { hooks.addEdit(at: name) { _, _ in } }
            let hooked = try s.decoder.forward(ids: s.ids, hooks: hooks).logits!
            #expect(base == hooked, "\(s)")
        }
    }

    @Test("empty knockouts and amplification by 1 equal the baseline")
    func neutralInterventions() async {
        await propertyCheck(count: 20, input: layersGen, kvGen, groupsGen, seedGen) { l, kv, g, seed in
            var s = try Scenario(layers: l, kvHeads: kv, groups: g, seed: seed)
            let base = try s.run().logits
            let layers = s.randomLayers(), heads = s.randomHeads(count: 3)
            let neutral = InterventionSet([
                .knockout(keys: .positions([]), queries: .positions(s.randomPositions()), layers: layers, heads: nil),
                .knockout(keys: .positions(s.randomPositions()), queries: .positions(s.randomPositions()), layers: [], heads: nil),
                .amplifyHeads(heads, factor: 1),
                .scaleMLP(layers: layers, factor: 1),
            ])
            #expect(try s.run(neutral).logits == base, "\(s)")
        }
    }

    @Test("blocking every head of a layer zeroes its attention output")
    func blockAllHeads() async {
        await propertyCheck(count: 20, input: layersGen, kvGen, groupsGen, seedGen) { l, kv, g, seed in
            var s = try Scenario(layers: l, kvHeads: kv, groups: g, seed: seed)
            let layer = s.randomLayers()[0]
            let all = (0..<s.spec.heads).map { HeadIndex(layer: layer, head: $0) }
            let cache = try s.run(InterventionSet([.blockHeads(all, means: nil)]),
                                  cache: .names(["blocks.\(layer).hook_attn_out"])).cache
            let out = try #require(cache["blocks.\(layer).hook_attn_out"])
            // (Bool computed outside #expect: closures inside #expect in propertyCheck bodies miscompile in Swift 6.3.1.)
            let allZero = out.scalars.allSatisfy { $0 == 0 }
            #expect(allZero, "\(s)")
        }
    }

    @Test("a knocked-out edge carries exactly zero attention, and layers before the window are untouched")
    func knockoutBlocksEdges() async {
        await propertyCheck(count: 25, input: layersGen, kvGen, groupsGen, seedGen) { l, kv, g, seed in
            var s = try Scenario(layers: l, kvHeads: kv, groups: g, seed: seed)
            let keys = s.randomPositions(), queries = s.randomPositions(), layers = s.randomLayers()
            let heads: [Int]? = Bool.random(using: &s.rng) ? nil : [Int.random(in: 0..<s.spec.heads, using: &s.rng)]
            let ko = InterventionSet([.knockout(keys: .positions(keys), queries: .positions(queries), layers: layers, heads: heads)])
            let base = try s.run(cache: .all).cache
            let run = try s.run(ko, cache: .all).cache
            for layer in layers {
                let p = try #require(run["blocks.\(layer).attn.hook_pattern"])
                let t = s.tokens
                for h in heads ?? Array(0..<s.spec.heads) {
                    var rowSums = [Float](repeating: 0, count: t)
                    for q in 0..<t { for k in 0..<t { rowSums[q] += p.scalars[(h * t + q) * t + k] } }
                    for q in queries { for k in keys where k != q {
                        #expect(p.scalars[(h * t + q) * t + k] == 0, "edge \(k)->\(q) head \(h) layer \(layer): \(s)")
                    } }
                    for q in 0..<t { #expect(abs(rowSums[q] - 1) < 1e-5, "row \(q) sums to \(rowSums[q])") }
                }
            }
            // Everything computed before the first knocked-out layer's scores is identical.
            for name in s.decoder.hookNames where name.hasPrefix("blocks.") {
                let layer = Int(name.split(separator: ".")[1])!
                if layer < layers[0] { #expect(run[name] == base[name], "\(name) changed: \(s)") }
            }
        }
    }

    @Test("per-head results sum to the attention output")
    func perHeadResultsSum() async {
        await propertyCheck(count: 20, input: layersGen, kvGen, groupsGen, seedGen) { l, kv, g, seed in
            let s = try Scenario(layers: l, kvHeads: kv, groups: g, seed: seed)
            let cache = try s.run(cache: .patterns(["blocks.*.attn.hook_result", "blocks.*.hook_attn_out"])).cache
            for layer in 0..<l {
                let result = try #require(cache["blocks.\(layer).attn.hook_result"])
                let out = try #require(cache["blocks.\(layer).hook_attn_out"])
                let t = result.shape[0], h = result.shape[1], d = result.shape[2]
                var sum = [Float](repeating: 0, count: t * d)
                for i in 0..<t { for head in 0..<h { for j in 0..<d { sum[i * d + j] += result.scalars[(i * h + head) * d + j] } } }
                let report = compare(Tensor(shape: [t, d], scalars: sum), to: out,
                                     tolerance: Tolerance(atol: 1e-4, rtol: 1e-5, nmse: 1e-10, reason: "sum over heads vs one GEMM: summation order"),
                                     label: "layer \(layer) \(s)")
                #expect(report.passed, "\(report)")
            }
        }
    }

    @Test("residual bookkeeping: resid_mid = resid_pre + attn_out, resid_post = resid_mid + mlp_out (exact)")
    func residualBookkeeping() async {
        await propertyCheck(count: 20, input: layersGen, kvGen, groupsGen, seedGen) { l, kv, g, seed in
            let s = try Scenario(layers: l, kvHeads: kv, groups: g, seed: seed)
            let c = try s.run(cache: .all).cache
            for layer in 0..<l {
                let p = "blocks.\(layer)."
                let pre = c[p + "hook_resid_pre"]!, attn = c[p + "hook_attn_out"]!, mid = c[p + "hook_resid_mid"]!
                let mlp = c[p + "hook_mlp_out"]!, post = c[p + "hook_resid_post"]!
                let midExact = zip(pre.scalars, attn.scalars).map(+) == mid.scalars
                let postExact = zip(mid.scalars, mlp.scalars).map(+) == post.scalars
                #expect(midExact && postExact, "layer \(layer): \(s)")
            }
        }
    }

    @Test("resuming from layer l equals the full run")
    func resumeFromLayer() async {
        await propertyCheck(count: 20, input: layersGen, kvGen, groupsGen, seedGen) { l, kv, g, seed in
            var s = try Scenario(layers: l, kvHeads: kv, groups: g, seed: seed)
            let full = try s.run(cache: .patterns(["blocks.*.hook_resid_pre"]))
            let start = Int.random(in: 0...l, using: &s.rng)
            let residual = start < l ? full.cache["blocks.\(start).hook_resid_pre"]! : try s.decoder.forward(ids: s.ids, logits: .none).residual
            let resumed = try s.decoder.forward(residual: residual, positions: .sequential(s.tokens), startLayer: start)
            #expect(resumed.logits == full.logits, "start \(start): \(s)")
        }
    }

    @Test("patching a run with its own activations changes nothing")
    func selfPatch() async {
        await propertyCheck(count: 20, input: layersGen, kvGen, groupsGen, seedGen) { l, kv, g, seed in
            var s = try Scenario(layers: l, kvHeads: kv, groups: g, seed: seed)
            let base = try s.run(cache: .all)
            let names = s.decoder.hookNames.filter { $0 != "blocks.0.attn.hook_result" && !$0.hasSuffix("hook_result") }
            let name = names.randomElement(using: &s.rng)!
            let patch = InterventionSet([.patch(hook: name, source: base.cache[name]!, positions: nil)])
            #expect(try s.run(patch).logits == base.logits, "\(name): \(s)")
        }
    }

    @Test("mean-ablating a head with its own constant mean is exact; zero-blocking changes the output")
    func meanAblation() async throws {
        let s = try Scenario(layers: 2, kvHeads: 2, groups: 2, seed: 7)
        let head = HeadIndex(layer: 1, head: 3)
        let base = try s.run(cache: .all)
        let means = try meanHeadOutputs([base.cache], heads: [head])
        #expect(means[head]?.count == s.spec.headDim)
        let zero = try s.run(InterventionSet([.blockHeads([head], means: nil)])).logits
        #expect(zero != base.logits)
        let meanRun = try s.run(InterventionSet([.blockHeads([head], means: means)]), cache: .names(["blocks.1.attn.hook_z"]))
        let z = meanRun.cache["blocks.1.attn.hook_z"]!
        for t in 0..<s.tokens { for j in 0..<s.spec.headDim {
            #expect(z.scalars[(t * 4 + 3) * s.spec.headDim + j] == means[head]![j])
        } }
    }

    @Test("bad interventions are rejected before any computation", arguments: [
        (Intervention.blockHeads([HeadIndex(layer: 5, head: 0)], means: nil), "outside layers"),
        (Intervention.amplifyHeads([HeadIndex(layer: 0, head: 9)], factor: 2), "outside layers"),
        (Intervention.amplifyHeads([HeadIndex(layer: 0, head: 0)], factor: .nan), "not finite"),
        (Intervention.amplifyHeads([HeadIndex(layer: 0, head: 0)], factor: .infinity), "not finite"),
        (Intervention.knockout(keys: .span("image"), queries: .span("last"), layers: [0], heads: nil), "needs a prompt with spans"),
        (Intervention.knockout(keys: .positions([0]), queries: .positions([99]), layers: [0], heads: nil), "outside the"),
        (Intervention.knockout(keys: .positions([0]), queries: .positions([1]), layers: [7], heads: nil), "layer 7"),
        (Intervention.knockout(keys: .positions([0]), queries: .positions([1]), layers: [0], heads: [4]), "head 4"),
        (Intervention.scaleMLP(layers: [0], factor: -.infinity), "not finite"),
        (Intervention.patch(hook: "blocks.0.hook_nothing", source: Tensor(zeros: [1]), positions: nil), "unknown hook"),
    ])
    func badInterventions(_ intervention: Intervention, _ phrase: String) throws {
        let s = try Scenario(layers: 2, kvHeads: 2, groups: 2, seed: 3)
        let error = #expect(throws: ModelError.self) { try s.run(InterventionSet([intervention])) }
        #expect(error?.description.contains(phrase) == true, "\(String(describing: error))")
    }

    @Test("a span the prompt does not have is named with the spans it has")
    func unknownSpan() throws {
        let s = try Scenario(layers: 1, kvHeads: 1, groups: 1, seed: 5)
        let spans = try TokenSpans(tokenCount: s.tokens, spans: ["instruction": [0..<1]])
        let error = #expect(throws: ModelError.self) {
            try s.run(InterventionSet([.knockout(keys: .span("image"), queries: .span("instruction"), layers: [0], heads: nil)]), spans: spans)
        }
        #expect(error?.description.contains("no span 'image'") == true && error?.description.contains("instruction") == true)
    }
}
