// Reference causal grouped-query attention in Double, as transformers' `eager_attention_forward`:
// repeat_kv → scores = q·kᵀ·scale → causal mask → softmax over keys → pattern·v.

extension ReferenceKernels {
    /// The intermediate tensors of one reference attention pass.
    public struct Attention: Sendable {
        /// `[heads, T, S]` scores after the causal mask (future keys are `-inf`).
        public let scores: Tensor
        /// `[heads, T, S]` softmax of `scores` over keys.
        public let pattern: Tensor
        /// `[T, heads · headDim]` per-head outputs before o_proj.
        public let z: Tensor
    }

    /// Unmasked scores[h, t, s] = scale · Σ_d q[t, h, d] · k[s, kv(h), d], `[heads, T, S]`.
    public static func attentionScores(q: Tensor, k: Tensor, heads: AttentionHeads, scale: Double) -> Tensor {
        let raw = rawScores(q: q, k: k, heads: heads, scale: scale)
        return Tensor(shape: [heads.heads, q.rows, k.rows], scalars: raw.map { Float($0) })
    }

    /// Causal attention: query `t` sits at absolute position `t + queryOffset` and sees keys `0...t + queryOffset`.
    /// Query head `h` reads key/value head `h / (heads / kvHeads)` (repeat_kv).
    public static func causalAttention(q: Tensor, k: Tensor, v: Tensor, heads: AttentionHeads, scale: Double,
                                       queryOffset: Int = 0) -> Attention {
        let t = q.rows, s = k.rows, d = heads.headDim, group = heads.heads / heads.kvHeads
        precondition(v.rows == s && v.columns == heads.kvHeads * d, "reference attention: v shape")
        var scores = rawScores(q: q, k: k, heads: heads, scale: scale)
        for h in 0..<heads.heads {
            for i in 0..<t {
                for j in 0..<s where j > i + queryOffset { scores[(h * t + i) * s + j] = -.infinity }
            }
        }
        var pattern = [Double](repeating: 0, count: scores.count)
        for row in 0..<(heads.heads * t) {
            let p = softmaxRow(Array(scores[(row * s)..<((row + 1) * s)]))
            for j in 0..<s { pattern[row * s + j] = p[j] }
        }
        var z = [Float](repeating: 0, count: t * heads.heads * d)
        for h in 0..<heads.heads {
            let kv = h / group
            for i in 0..<t {
                for e in 0..<d {
                    var sum = 0.0
                    for j in 0..<s {
                        sum += pattern[(h * t + i) * s + j] * Double(v.scalars[j * heads.kvHeads * d + kv * d + e])
                    }
                    z[i * heads.heads * d + h * d + e] = Float(sum)
                }
            }
        }
        return Attention(scores: Tensor(shape: [heads.heads, t, s], scalars: scores.map { Float($0) }),
                         pattern: Tensor(shape: [heads.heads, t, s], scalars: pattern.map { Float($0) }),
                         z: Tensor(shape: [t, heads.heads * d], scalars: z))
    }

    static func rawScores(q: Tensor, k: Tensor, heads: AttentionHeads, scale: Double) -> [Double] {
        let t = q.rows, s = k.rows, d = heads.headDim, group = heads.heads / heads.kvHeads
        precondition(q.columns == heads.heads * d && k.columns == heads.kvHeads * d, "reference attention: q/k shapes")
        var scores = [Double](repeating: 0, count: heads.heads * t * s)
        for h in 0..<heads.heads {
            let kv = h / group
            for i in 0..<t {
                for j in 0..<s {
                    var dot = 0.0
                    for e in 0..<d {
                        dot += Double(q.scalars[i * heads.heads * d + h * d + e])
                            * Double(k.scalars[j * heads.kvHeads * d + kv * d + e])
                    }
                    scores[(h * t + i) * s + j] = scale * dot
                }
            }
        }
        return scores
    }
}
