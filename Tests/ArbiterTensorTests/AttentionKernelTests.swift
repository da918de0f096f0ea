// The C attention kernels (`causalAttentionPattern(q:keys:…)`, `attentionScores(q:keys:…)`,
// `attentionMix(pattern:values:…)`): every build this CPU runs against a scalar reference of the same
// arithmetic (chains of fused multiply-adds in the order of the reduction index), bit for bit; cached-prefix
// rows read in place equal joined ones; and against the per-head sgemm path and the Double reference.
import ArbiterTensor
import Foundation
import PropertyBased
import Testing

@Suite("Attention kernels")
struct AttentionKernelTests {
    struct Case: Sendable, CustomStringConvertible {
        let heads: AttentionHeads, q: Tensor, k: Tensor, v: Tensor, queryOffset: Int, cachedRows: Int
        var scale: Float { 1 / Float(heads.headDim).squareRoot() }
        var keys: AttentionRows { split(k) }
        var values: AttentionRows { split(v) }
        func split(_ x: Tensor) -> AttentionRows {
            AttentionRows(cached: x.scalars[0..<(cachedRows * x.columns)], own: x.rows(cachedRows..<x.rows))
        }
        var description: String {
            "heads \(heads.heads)/\(heads.kvHeads), head_dim \(heads.headDim), T \(q.rows), S \(k.rows), "
                + "offset \(queryOffset), cached rows \(cachedRows)"
        }
    }

    /// Head widths of real models (16, 64, 80, 128) and odd ones (tails of the eight-lane loops); keys past 32
    /// (the four-chunk tile) and a cached prefix split anywhere.
    static func randomCase(_ rng: inout SplitMix64) -> Case {
        let kvHeads = pick([1, 2, 3], &rng), group = pick([1, 2, 4], &rng)
        let headDim = pick([1, 3, 6, 8, 16, 17, 64, 80, 128], &rng)
        let heads = AttentionHeads(heads: kvHeads * group, kvHeads: kvHeads, headDim: headDim)
        let t = pick([1, 2, 3, 7, 17], &rng), offset = pick([0, 0, 1, 5, 17, 40], &rng), s = t + offset
        return Case(heads: heads, q: randomTensor([t, heads.heads * headDim], &rng),
                    k: randomTensor([s, kvHeads * headDim], &rng), v: randomTensor([s, kvHeads * headDim], &rng),
                    queryOffset: offset, cachedRows: Int(rng.next() % UInt64(offset + 1)))
    }

    /// scale · (q_i · k_j as fma chain over d from 0), per head.
    static func referenceScores(_ c: Case) -> [Float] {
        let t = c.q.rows, s = c.k.rows, d = c.heads.headDim, h = c.heads.heads
        var out = [Float](repeating: 0, count: h * t * s)
        for head in 0..<h {
            let kv = c.heads.kvHead(for: head)
            for i in 0..<t {
                for j in 0..<s {
                    var acc: Float = 0
                    for x in 0..<d {
                        acc = acc.addingProduct(c.q.scalars[i * h * d + head * d + x],
                                                c.k.scalars[j * c.k.columns + kv * d + x])
                    }
                    out[(head * t + i) * s + j] = acc * c.scale
                }
            }
        }
        return out
    }

    /// z[i, h·D + x] = fma chain over j of pattern[h, i, j] · v[j, kv·D + x].
    static func referenceMix(_ pattern: Tensor, _ c: Case) -> [Float] {
        let t = c.q.rows, s = c.k.rows, d = c.heads.headDim, h = c.heads.heads
        var out = [Float](repeating: 0, count: t * h * d)
        for head in 0..<h {
            let kv = c.heads.kvHead(for: head)
            for i in 0..<t {
                for x in 0..<d {
                    var acc: Float = 0
                    for j in 0..<s {
                        acc = acc.addingProduct(pattern.scalars[(head * t + i) * s + j],
                                                c.v.scalars[j * c.v.columns + kv * d + x])
                    }
                    out[i * h * d + head * d + x] = acc
                }
            }
        }
        return out
    }

    @Test("every build on this CPU equals the scalar fused-multiply-add reference bit for bit")
    func buildsMatchScalarReference() async {
        // The variants this CPU runs: the baseline everywhere, the AVX2+FMA build where the CPU has it.
        let variants = AttentionKernelVariant.available
        await propertyCheck(count: 60, input: generator { Self.randomCase(&$0) }) { c in
            let scores = Self.referenceScores(c)
            var masked = Tensor(shape: [c.heads.heads, c.q.rows, c.k.rows], scalars: scores)
            applyCausalMask(&masked, queryOffset: c.queryOffset)
            let pattern = attentionPattern(scores: masked)
            let z = Self.referenceMix(pattern, c)
            for variant in variants {
                let queries = AttentionRows(own: c.q)
                let unmasked = attentionScores(q: queries, keys: c.keys, heads: c.heads, scale: c.scale,
                                               variant: variant)
                #expect(unmasked.scalars.map(\.bitPattern) == scores.map(\.bitPattern), "scores, \(variant), \(c)")
                let causal = causalAttentionPattern(q: queries, keys: c.keys, heads: c.heads, scale: c.scale,
                                                    queryOffset: c.queryOffset, variant: variant)
                #expect(causal.scalars.map(\.bitPattern) == pattern.scalars.map(\.bitPattern),
                        "causal pattern, \(variant), \(c)")
                let mixed = attentionMix(pattern: pattern, values: c.values, heads: c.heads, variant: variant)
                #expect(mixed.scalars.map(\.bitPattern) == z.map(\.bitPattern), "mix, \(variant), \(c)")
            }
        }
        #expect(variants.contains(.baseline))
    }

    @Test("the default path is close to the per-head sgemm path and to the Double reference")
    func closeToSgemmAndReference() async {
        await propertyCheck(count: 60, input: generator { Self.randomCase(&$0) }) { c in
            let reference = ReferenceKernels.causalAttention(q: c.q, k: c.k, v: c.v, heads: c.heads,
                                                             scale: Double(c.scale), queryOffset: c.queryOffset)
            let pattern = causalAttentionPattern(q: AttentionRows(own: c.q), keys: c.keys, heads: c.heads,
                                                 scale: c.scale,
                                                 queryOffset: c.queryOffset)
            var sgemm = attentionScores(q: c.q, k: c.k, heads: c.heads, scale: c.scale)
            causalAttentionPattern(inPlace: &sgemm, queryOffset: c.queryOffset)
            // Head widths up to 128 here (AttentionTests' bounds are for ≤ 33): float32 chains of 128 terms.
            let wide = Tolerance(atol: 1e-5, rtol: 1e-5, nmse: 1e-9,
                                 reason: "float32 sums of ≤ 128 products in [-1, 1]")
            expectClose(pattern, sgemm, wide, "pattern against the sgemm path \(c)")
            expectClose(pattern, reference.pattern, wide, "pattern against the Double reference \(c)")
            let z = attentionMix(pattern: pattern, values: c.values, heads: c.heads)
            expectClose(z, attentionMix(pattern: pattern, v: c.v, heads: c.heads), wide, "mix against sgemm \(c)")
            expectClose(z, reference.z, wide, "mix against the Double reference \(c)")
        }
    }

    @Test("past attentionKernelMaxKeys the default path is the per-head sgemm path, bit for bit")
    func longRunsUseSgemm() {
        var rng = SplitMix64(seed: 7)
        let heads = AttentionHeads(heads: 2, kvHeads: 1, headDim: 16), s = attentionKernelMaxKeys + 3, t = 2
        let q = randomTensor([t, 32], &rng), k = randomTensor([s, 16], &rng), v = randomTensor([s, 16], &rng)
        let rows = AttentionRows(cached: k.scalars[0..<((s - t) * 16)], own: k.rows((s - t)..<s))
        let pattern = causalAttentionPattern(q: AttentionRows(own: q), keys: rows, heads: heads, scale: 0.25,
                                             queryOffset: s - t)
        var sgemm = attentionScores(q: q, k: k, heads: heads, scale: 0.25)
        causalAttentionPattern(inPlace: &sgemm, queryOffset: s - t)
        #expect(pattern.scalars.map(\.bitPattern) == sgemm.scalars.map(\.bitPattern))
        let values = AttentionRows(cached: v.scalars[0..<((s - t) * 16)], own: v.rows((s - t)..<s))
        let z = attentionMix(pattern: pattern, values: values, heads: heads)
        let sgemmZ = attentionMix(pattern: pattern, v: v, heads: heads)
        #expect(z.scalars.map(\.bitPattern) == sgemmZ.scalars.map(\.bitPattern))
    }
}
