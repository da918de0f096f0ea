// Grouped-query causal attention pieces (scores, mask, pattern, mix) against the Double reference.
import ArbiterTensor
import Foundation
import PropertyBased
import Testing

@Suite("Attention")
struct AttentionTests {
    /// q, k in [-1, 1], head_dim ≤ 33, scale 1/√d: float32 dot products of d terms, error ≲ d·ε·Σ|qk|·scale.
    static let scores = Tolerance(atol: 2e-6, rtol: 2e-6, nmse: 1e-6,
                                  reason: "float32 dot products over head_dim ≤ 33 of values in [-1, 1]")
    /// Softmax of those scores: the score error (2e-6) moves probabilities by ≲ 4e-6 relative, plus the
    /// float32 softmax error (~n·ε).
    static let pattern = Tolerance(atol: 1e-7, rtol: 4e-6, nmse: 1e-10,
                                   reason: "score error 2e-6 propagated through exp, plus float32 softmax over ≤ 40 keys")
    /// z = Σ_s p·v with Σ p = 1 and |v| ≤ 1: the pattern error plus S·ε accumulation.
    static let mixed = Tolerance(atol: 2e-6, rtol: 2e-6, nmse: 1e-6,
                                 reason: "pattern error plus float32 accumulation over ≤ 40 keys of |v| ≤ 1")

    struct Case: Sendable, CustomStringConvertible {
        let heads: AttentionHeads, q: Tensor, k: Tensor, v: Tensor, queryOffset: Int
        var scale: Float { 1 / Float(heads.headDim).squareRoot() }
        var description: String {
            "heads \(heads.heads), kv heads \(heads.kvHeads), head_dim \(heads.headDim), T \(q.rows), S \(k.rows), offset \(queryOffset)"
        }
    }

    /// heads = kvHeads × g for g in 1...4; keys cover the query positions plus `queryOffset` cached ones.
    static func randomCase(_ rng: inout SplitMix64) -> Case {
        let kvHeads = pick([1, 2, 3], &rng), group = pick([1, 2, 3, 4], &rng), headDim = pick([1, 3, 4, 8, 17, 33], &rng)
        let heads = AttentionHeads(heads: kvHeads * group, kvHeads: kvHeads, headDim: headDim)
        let t = pick([1, 2, 3, 7, 17], &rng), offset = pick([0, 0, 1, 5, 17], &rng), s = t + offset
        return Case(heads: heads, q: randomTensor([t, heads.heads * headDim], &rng),
                    k: randomTensor([s, kvHeads * headDim], &rng), v: randomTensor([s, kvHeads * headDim], &rng),
                    queryOffset: offset)
    }

    @Test("scores, causal mask, pattern and mix equal the reference for grouped-query heads")
    func matchesReference() async {
        await propertyCheck(count: 80, input: generator { Self.randomCase(&$0) }) { c in
            let reference = ReferenceKernels.causalAttention(q: c.q, k: c.k, v: c.v, heads: c.heads,
                                                            scale: Double(c.scale), queryOffset: c.queryOffset)
            let unmasked = attentionScores(q: c.q, k: c.k, heads: c.heads, scale: c.scale)
            expectClose(unmasked, ReferenceKernels.attentionScores(q: c.q, k: c.k, heads: c.heads, scale: Double(c.scale)),
                        Self.scores, "unmasked scores \(c)")
            var scores = unmasked
            applyCausalMask(&scores, queryOffset: c.queryOffset)
            expectClose(scores, reference.scores, Self.scores, "masked scores \(c)")
            let pattern = attentionPattern(scores: scores)
            expectClose(pattern, reference.pattern, Self.pattern, "pattern \(c)")
            expectClose(attentionMix(pattern: pattern, v: c.v, heads: c.heads), reference.z, Self.mixed, "z \(c)")
            // The mix alone, fed the reference pattern, isolates its own error.
            expectClose(attentionMix(pattern: reference.pattern, v: c.v, heads: c.heads), reference.z, Self.mixed, "mix of the reference pattern \(c)")
        }
    }

    @Test("masked pattern entries are exactly 0, visible ones positive, rows sum to 1")
    func patternInvariants() async {
        await propertyCheck(count: 50, input: generator { Self.randomCase(&$0) }) { c in
            var scores = attentionScores(q: c.q, k: c.k, heads: c.heads, scale: c.scale)
            applyCausalMask(&scores, queryOffset: c.queryOffset)
            let pattern = attentionPattern(scores: scores)
            let t = c.q.rows, s = c.k.rows
            for h in 0..<c.heads.heads {
                for i in 0..<t {
                    let row = pattern.row(h * t + i)
                    for j in 0..<s {
                        if j > i + c.queryOffset {
                            #expect(row[row.startIndex + j] == 0, "head \(h) query \(i) sees future key \(j)")
                            #expect(scores.scalars[(h * t + i) * s + j] == -.infinity)
                        } else {
                            #expect(row[row.startIndex + j] > 0, "head \(h) query \(i) ignores key \(j)")
                        }
                    }
                    let sum = row.reduce(0, +)
                    #expect(abs(sum - 1) <= 1e-5, "head \(h) query \(i) sums to \(sum)")
                }
            }
        }
    }

    @Test("query heads of one group read the same key/value head")
    func groupedHeads() {
        let heads = AttentionHeads(heads: 6, kvHeads: 2, headDim: 4)
        let kvHeads = (0..<6).map(heads.kvHead(for:))
        #expect(kvHeads == [0, 0, 0, 1, 1, 1])
        // Identical query heads within a group give identical outputs; across groups they differ.
        var rng = SplitMix64(seed: 3)
        let qHead = randomTensor([5, 4], &rng)
        let q = Tensor(shape: [5, 24], scalars: (0..<5).flatMap { t in (0..<6).flatMap { _ in qHead.row(t) } })
        let k = randomTensor([5, 8], &rng), v = randomTensor([5, 8], &rng)
        var scores = attentionScores(q: q, k: k, heads: heads, scale: 0.5)
        applyCausalMask(&scores)
        let z = attentionMix(pattern: attentionPattern(scores: scores), v: v, heads: heads)
        for t in 0..<5 {
            let row = Array(z.row(t))
            #expect(row[0..<4] == row[4..<8] && row[4..<8] == row[8..<12])
            #expect(row[12..<16] == row[16..<20] && row[16..<20] == row[20..<24])
        }
    }

    @Test("pinned: one head, two tokens")
    func pinned() {
        // q = k = [[1, 0], [0, 1]], v = [[1, 2], [3, 4]], scale 1: token 0 sees only key 0;
        // token 1 has scores [0, 1] → pattern [1/(1+e), e/(1+e)] → z = v0·p0 + v1·p1.
        let heads = AttentionHeads(heads: 1, kvHeads: 1, headDim: 2)
        let q = Tensor(shape: [2, 2], scalars: [1, 0, 0, 1]), v = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
        var scores = attentionScores(q: q, k: q, heads: heads, scale: 1)
        applyCausalMask(&scores)
        #expect(scores.scalars == [1, -.infinity, 0, 1])
        let p1 = Float(M_E / (1 + M_E))
        let z = attentionMix(pattern: attentionPattern(scores: scores), v: v, heads: heads)
        expectClose(z, Tensor(shape: [2, 2], scalars: [1, 2, 1 + 2 * p1, 2 + 2 * p1]), Self.mixed, "pinned attention")
    }
}
