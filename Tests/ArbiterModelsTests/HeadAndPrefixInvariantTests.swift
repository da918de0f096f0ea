// Invariants the head and knockout analyses rest on, property-based over random models, prompts, span
// layouts, heads and factors: amplifying or blocking a head changes that head alone at its layer, and a
// knockout leaves every position before its first changed query bit-identical to the baseline — which is
// what lets a suffix run resume there from the cached keys and values.
import ArbiterInterventions
import ArbiterModels
import ArbiterTensor
import PropertyBased
import Testing

/// Checks returning what went wrong (empty when the invariant holds); kept out of the property closures
/// (closures nested in propertyCheck bodies crash or miscompile Swift 6.3.1).
enum InvariantChecks {
    /// Unit roundoff of Float32.
    static let u = Double(Float.ulpOfOne) / 2

    static func bits(_ values: ArraySlice<Float>) -> [UInt32] { values.map(\.bitPattern) }

    /// Rows `rows` of a token-major activation `[T, …]`.
    static func rows(_ t: Tensor, _ rows: Range<Int>) -> [UInt32] {
        let width = t.count / max(t.shape[0], 1)
        return bits(t.scalars[(rows.lowerBound * width)..<(rows.upperBound * width)])
    }

    /// Query rows `rows` of every head of a `[H, T, S]` score or pattern tensor.
    static func queryRows(_ t: Tensor, _ rows: Range<Int>) -> [UInt32] {
        let heads = t.shape[0], queries = t.shape[1], keys = t.shape[2]
        var out: [UInt32] = []
        for h in 0..<heads {
            out += bits(t.scalars[((h * queries + rows.lowerBound) * keys)..<((h * queries + rows.upperBound) * keys)])
        }
        return out
    }

    /// Head `h` of a `[T, H, X]` activation at every position.
    static func head(_ t: Tensor, _ h: Int) -> [Float] {
        let tokens = t.shape[0], heads = t.shape[1], x = t.shape[2]
        var out: [Float] = []
        for i in 0..<tokens { out += t.scalars[((i * heads + h) * x)..<((i * heads + h + 1) * x)] }
        return out
    }

    static func layer(of name: String) -> Int? {
        guard name.hasPrefix("blocks.") else { return nil }
        return Int(name.split(separator: ".")[1])
    }

    /// Hooks of a layer computed before its attention heads' outputs (`hook_z`).
    static let beforeZ = ["hook_resid_pre", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v",
                          "attn.hook_rot_q", "attn.hook_rot_k", "attn.hook_attn_scores", "attn.hook_pattern"]

    /// Everything computed before head `target`'s output is bit-identical in `run` and `base`: the embeddings,
    /// every earlier layer, and the layer's own activations up to its attention pattern.
    static func untouchedBefore(_ target: HeadIndex, base: [String: Tensor], run: [String: Tensor]) -> [String] {
        var problems: [String] = []
        for (name, tensor) in base {
            let l = layer(of: name)
            let earlier = name == "hook_embed" || (l.map { $0 < target.layer } ?? false)
            let sameLayerBefore = l == target.layer && beforeZ.contains { name.hasSuffix(".\($0)") }
            guard earlier || sameLayerBefore else { continue }
            if run[name].map({ $0.scalars.map(\.bitPattern) }) != tensor.scalars.map(\.bitPattern) {
                problems.append("\(name) changed")
            }
        }
        return problems
    }

    /// At `target`'s layer, every other head's z and result are bit-identical in `run` and `base`.
    static func otherHeads(_ target: HeadIndex, base: [String: Tensor], run: [String: Tensor]) -> [String] {
        var problems: [String] = []
        for hook in ["hook_z", "hook_result"] {
            let name = "blocks.\(target.layer).attn.\(hook)", a = base[name]!, b = run[name]!
            for h in 0..<a.shape[1] where h != target.head {
                let same = head(a, h).map(\.bitPattern) == head(b, h).map(\.bitPattern)
                if !same { problems.append("\(hook) of head \(h) changed") }
            }
        }
        return problems
    }

    /// Amplifying `target` by `alpha`: nothing before its output changes; at its layer every other head's z
    /// and result are bit-identical; its z is fl(α·z) exactly, and its result is α × the baseline result —
    /// bit for bit when α is a power of two (scaling by one is exact, so every product and partial sum of
    /// the result's dot product scales exactly), otherwise within the rounding bound of that dot product:
    /// |r′ − α·r| ≤ (2D + 2)·u·|α|·Σ_i |z_i·W_o[j, i]| (r and r′ each carry γ_D of the absolute sum,
    /// and r′ the rounding of α·z_i).
    static func amplification(_ s: Scenario, head target: HeadIndex, alpha: Float) throws -> [String] {
        let (base, run) = try BLAS.withSingleThread {
            (try s.run(cache: .all).cache,
             try s.run(InterventionSet([.amplifyHeads([target], factor: alpha)]), cache: .all).cache)
        }
        var problems = untouchedBefore(target, base: base, run: run) + otherHeads(target, base: base, run: run)
        let p = "blocks.\(target.layer).attn."
        let z = base[p + "hook_z"]!, z2 = run[p + "hook_z"]!, r = base[p + "hook_result"]!, r2 = run[p + "hook_result"]!
        if head(z2, target.head).map(\.bitPattern) != head(z, target.head).map({ (alpha * $0).bitPattern }) {
            problems.append("z of the amplified head is not α·z")
        }
        let exact = alpha != 0 && alpha.significandBitPattern == 0   // ±2^k
        let d = s.spec.headDim, model = r.shape[2], heads = s.spec.heads
        let wo = s.spec.weights()["model.layers.\(target.layer).self_attn.o_proj.weight"]!.toTensor()
        let zHead = head(z, target.head), before = head(r, target.head), after = head(r2, target.head)
        var worst = 0.0
        for t in 0..<s.tokens {
            for j in 0..<model {
                let i = t * model + j
                let expected = Double(alpha) * Double(before[i])
                if exact {
                    if after[i].bitPattern != Float(expected).bitPattern {
                        problems.append("result[\(t), \(j)] not exactly α·r")
                    }
                    continue
                }
                var absolute = 0.0
                for k in 0..<d {
                    absolute += abs(Double(zHead[t * d + k]) * Double(wo.scalars[(j * heads + target.head) * d + k]))
                }
                let bound = Double(2 * d + 2) * u * abs(Double(alpha)) * absolute
                worst = max(worst, abs(Double(after[i]) - expected) - bound)
            }
        }
        if worst > 0 { problems.append("result of the amplified head off α·r by \(worst) beyond the rounding bound") }
        return problems
    }

    /// Blocking `target` (zero, or its mean over the baseline run): nothing before its output changes; at its
    /// layer every other head's z and result are bit-identical; its z is the replacement and, when zeroed,
    /// its result is zero.
    static func blocking(_ s: Scenario, head target: HeadIndex, mean: Bool) throws -> [String] {
        let p = "blocks.\(target.layer).attn."
        let base = try BLAS.withSingleThread { try s.run(cache: .all).cache }
        let means = mean ? try meanHeadOutputs([base], heads: [target]) : nil
        let run = try BLAS.withSingleThread {
            try s.run(InterventionSet([.blockHeads([target], means: means)]), cache: .all).cache
        }
        var problems = untouchedBefore(target, base: base, run: run) + otherHeads(target, base: base, run: run)
        let z2 = run[p + "hook_z"]!, r2 = run[p + "hook_result"]!
        let replacement = means.map { m in (0..<s.tokens).flatMap { _ in m[target]! } }
            ?? [Float](repeating: 0, count: s.tokens * s.spec.headDim)
        if head(z2, target.head) != replacement { problems.append("z of the blocked head is not its replacement") }
        if !mean && !head(r2, target.head).allSatisfy({ $0 == 0 }) {
            problems.append("result of the zeroed head is not zero")
        }
        return problems
    }

    /// Random contiguous spans of the paper's five names in a random order, each at least one token, after
    /// 0–2 unnamed tokens and before 0–1 (`last` is the final token); `tokens` ≥ 5.
    static func randomSpans(tokens t: Int, using rng: inout SeededGenerator) throws -> TokenSpans {
        let names = ["image", "context", "instruction", "question", "constraint"].shuffled(using: &rng)
        let start = Int.random(in: 0...min(2, t - 5), using: &rng)
        let end = t - Int.random(in: 0...min(1, t - 5 - start), using: &rng)
        let cuts = Array((start + 1)..<end).shuffled(using: &rng).prefix(4).sorted()
        let bounds = [start] + cuts + [end]
        var ranges: [String: [Range<Int>]] = [:]
        for (i, name) in names.enumerated() { ranges[name] = [bounds[i]..<bounds[i + 1]] }
        return try TokenSpans(tokenCount: t, spans: ranges)
    }

    /// Knocking out `keys → queries`: every activation at positions before the set's first changed position
    /// (`InterventionSet.firstChangedPosition`, what suffix runs resume from) is bit-identical to `base`,
    /// logits included — the whole run when no position can change; and the suffix run from that position,
    /// on the baseline's cached keys and values, gives the full knocked run's logits there (up to the last
    /// bits of matrix products of other row counts).
    static func knockoutPrefix(_ s: Scenario, spans: TokenSpans, base: [String: Tensor], keys: String, queries: String,
                               layers: [Int], heads: [Int]?) throws -> [String] {
        let ko = InterventionSet([.knockout(keys: .span(keys), queries: .span(queries), layers: layers, heads: heads)])
        let t = s.tokens
        let first = try ko.firstChangedPosition(tokenCount: t, spans: spans)
        let p = first ?? t
        let edge = "\(keys)->\(queries)@\(layers) heads \(heads.map { "\($0)" } ?? "all"), first changed \(p)"
        let run = try BLAS.withSingleThread { try s.run(ko, cache: .all, spans: spans).cache }
        var problems: [String] = []
        for (name, tensor) in base {
            let same = name.hasSuffix("hook_attn_scores") || name.hasSuffix("hook_pattern")
                ? queryRows(run[name]!, 0..<p) == queryRows(tensor, 0..<p)
                : rows(run[name]!, 0..<p) == rows(tensor, 0..<p)
            if !same { problems.append("\(edge): \(name) changed before position \(p)") }
        }
        guard let first, first > 0 else { return problems }
        guard first < t else { return problems + ["\(edge): first changed position outside the \(t) tokens"] }
        let flat = { (x: Tensor) in x.reshaped([x.shape[0], x.count / x.shape[0]]) }
        let prefix = PrefixKeyValues(prefixOf: (0..<s.spec.layers).map { flat(base["blocks.\($0).attn.hook_rot_k"]!) },
                                     values: (0..<s.spec.layers).map { flat(base["blocks.\($0).attn.hook_v"]!) },
                                     count: first)
        let hooks = try ko.hooks(for: s.decoder, hookNames: s.decoder.hookNames, tokenCount: t, spans: spans)
        let suffix = try BLAS.withSingleThread {
            try s.decoder.forward(residual: base["hook_embed"]!.rows(first..<t),
                                  positions: PositionIDs.sequential(t).slice(first..<t), hooks: hooks, prefix: prefix)
        }
        guard let logits = suffix.logits else { return problems + ["\(edge): the suffix run gave no logits"] }
        let report = compare(logits, to: run["hook_logits"]!.rows(first..<t),
                             tolerance: Tolerance(atol: 1e-4, rtol: 1e-4, nmse: 1e-10,
                                                  reason: "suffix vs full run: matrix products of other row counts"),
                             label: edge)
        if !report.passed { problems.append("\(report)") }
        return problems
    }

    /// Every span pair of the paper's names (keys: the six spans; queries: the six and `text`) on one random
    /// model and span layout, each in a random layer window and for all heads or a random subset.
    static func everyEdge(_ s: inout Scenario) throws -> [String] {
        let spans = try randomSpans(tokens: s.tokens, using: &s.rng)
        let base = try BLAS.withSingleThread { try s.run(cache: .all, spans: spans).cache }
        var problems: [String] = []
        for keys in TokenSpans.standardNames {
            for queries in TokenSpans.standardNames + ["text"] {
                let layers = s.randomLayers()
                let heads: [Int]? = Bool.random(using: &s.rng)
                    ? nil : (0..<s.spec.heads).filter { _ in Bool.random(using: &s.rng) }
                problems += try knockoutPrefix(s, spans: spans, base: base, keys: keys, queries: queries,
                                               layers: layers, heads: heads)
            }
        }
        return problems.isEmpty ? [] : problems + ["spans \(spans.positionsByName)"]
    }
}

@Suite("Head and knockout invariants (property-based)")
struct HeadAndPrefixInvariantTests {
    @Test("amplifying head h by α scales exactly its attn.hook_result and leaves every other head's result")
    func amplificationScalesOneHead() async {
        await propertyCheck(count: 30, input: layersGen, kvGen, groupsGen, seedGen) { l, kv, g, seed in
            var s = try Scenario(layers: l, kvHeads: kv, groups: g, seed: seed)
            let target = s.randomHeads(count: 1)[0]
            // Half the cases a power of two (exact), half any factor (within the rounding bound).
            let alpha: Float = Bool.random(using: &s.rng)
                ? [0.25, 0.5, 2, 4, 8, -2].randomElement(using: &s.rng)!
                : Float.random(in: -6...6, using: &s.rng)
            let problems = try InvariantChecks.amplification(s, head: target, alpha: alpha)
            #expect(problems.isEmpty, "head \(target) α \(alpha), \(s): \(problems)")
        }
    }

    @Test("blocking one head (zero or mean) leaves every other head's output at that layer bit-identical")
    func blockingTouchesOneHead() async {
        await propertyCheck(count: 30, input: layersGen, kvGen, groupsGen, seedGen) { l, kv, g, seed in
            var s = try Scenario(layers: l, kvHeads: kv, groups: g, seed: seed)
            let target = s.randomHeads(count: 1)[0]
            let mean = Bool.random(using: &s.rng)
            let problems = try InvariantChecks.blocking(s, head: target, mean: mean)
            #expect(problems.isEmpty, "head \(target) \(mean ? "mean" : "zero"), \(s): \(problems)")
        }
    }

    @Test("knockouts of every span pair leave positions before the first changed query bit-identical")
    func knockoutPrefixUnchanged() async {
        await propertyCheck(count: 15, input: layersGen, kvGen, groupsGen, seedGen) { l, kv, g, seed in
            var s = try Scenario(layers: l, kvHeads: kv, groups: g, seed: seed, tokens: 5...16)
            let problems = try InvariantChecks.everyEdge(&s)
            #expect(problems.isEmpty, "\(s): \(problems.prefix(6))")
        }
    }

    @Test("the first changed position of a knockout: its first query at or after its first key, nil if none")
    func firstChangedPosition() throws {
        let spans = try TokenSpans(tokenCount: 10,
                                   spans: ["image": [2..<4], "instruction": [4..<6], "question": [0..<2]])
        func first(_ interventions: [Intervention]) throws -> Int? {
            try InterventionSet(interventions).firstChangedPosition(tokenCount: 10, spans: spans)
        }
        func ko(_ keys: String, _ queries: String) -> Intervention {
            .knockout(keys: .span(keys), queries: .span(queries), layers: [0], heads: nil)
        }
        #expect(try first([ko("image", "instruction")]) == 4)
        #expect(try first([ko("instruction", "image")]) == nil, "queries before every key change nothing")
        #expect(try first([ko("image", "text")]) == 4)
        #expect(try first([ko("image", "image")]) == 2)
        #expect(try first([ko("question", "last"), ko("image", "instruction")]) == 4)
        #expect(try first([ko("image", "last"), .blockHeads([HeadIndex(layer: 0, head: 0)], means: nil)]) == 0)
        #expect(try first([]) == nil)
        #expect(throws: ModelError.self) { try first([ko("context", "last")]) }
    }
}
