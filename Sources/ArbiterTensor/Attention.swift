// Multi-head attention pieces with grouped-query heads, split at the points hooks need to see:
// scores (pre-softmax, after masking) → pattern (softmax) → z (per-head output before o_proj).

/// Head layout of an attention layer. Query head `h` reads key/value head `h / (heads / kvHeads)`.
public struct AttentionHeads: Sendable, Equatable {
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int

    public init(heads: Int, kvHeads: Int, headDim: Int) {
        precondition(heads > 0 && kvHeads > 0 && heads % kvHeads == 0, "heads \(heads) not a multiple of kv heads \(kvHeads)")
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
    }

    @inline(__always) public func kvHead(for head: Int) -> Int { head / (heads / kvHeads) }
}

/// scores[h, t, s] = scale · q[t, h] · k[s, kv(h)]  for q `[T, H·D]`, k `[S, KV·D]`; result `[H, T, S]`.
public func attentionScores(q: Tensor, k: Tensor, heads: AttentionHeads, scale: Float) -> Tensor {
    let t = q.rows, s = k.rows, d = heads.headDim
    precondition(q.columns == heads.heads * d && k.columns == heads.kvHeads * d, "attentionScores: bad shapes")
    return Tensor(shape: [heads.heads, t, s]) { sp in  // every head writes its whole [t, s] block
        q.scalars.withUnsafeBufferPointer { qp in
            k.scalars.withUnsafeBufferPointer { kp in
                for h in 0..<heads.heads {
                    BLAS.sgemm(transB: true, m: t, n: s, k: d, alpha: scale,
                               a: qp.baseAddress! + h * d, lda: heads.heads * d,
                               b: kp.baseAddress! + heads.kvHead(for: h) * d, ldb: heads.kvHeads * d,
                               c: sp + h * t * s, ldc: s)
                }
            }
        }
    }
}

/// Sets scores of future keys to -inf: query `i` (absolute position `i + queryOffset`) sees keys `0...i+queryOffset`.
public func applyCausalMask(_ scores: inout Tensor, queryOffset: Int = 0) {
    precondition(scores.rank == 3, "applyCausalMask: want [heads, T, S], got \(scores.shape)")
    let h = scores.shape[0], t = scores.shape[1], s = scores.shape[2]
    scores.scalars.withUnsafeMutableBufferPointer { p in
        for head in 0..<h {
            for i in 0..<t {
                let row = p.baseAddress! + (head * t + i) * s
                let first = i + queryOffset + 1
                if first < s { for j in first..<s { row[j] = -.infinity } }
            }
        }
    }
}

/// Softmax over keys of `[H, T, S]` scores: the attention pattern.
public func attentionPattern(scores: Tensor) -> Tensor { softmax(scores) }

/// The attention pattern computed in place of the scores (no copy of the `[H, T, S]` block).
public func attentionPattern(inPlace scores: inout Tensor) { softmax(inPlace: &scores) }

/// z[t, h] = Σ_s pattern[h, t, s] · v[s, kv(h)]  for pattern `[H, T, S]`, v `[S, KV·D]`; result `[T, H·D]`.
public func attentionMix(pattern: Tensor, v: Tensor, heads: AttentionHeads) -> Tensor {
    precondition(pattern.rank == 3 && pattern.shape[0] == heads.heads, "attentionMix: bad pattern \(pattern.shape)")
    let t = pattern.shape[1], s = pattern.shape[2], d = heads.headDim
    precondition(v.rows == s && v.columns == heads.kvHeads * d, "attentionMix: bad v \(v.shape)")
    return Tensor(shape: [t, heads.heads * d]) { zp in  // head h writes columns h·d..<(h+1)·d of every row
        pattern.scalars.withUnsafeBufferPointer { pp in
            v.scalars.withUnsafeBufferPointer { vp in
                for h in 0..<heads.heads {
                    BLAS.sgemm(m: t, n: d, k: s, a: pp.baseAddress! + h * t * s, lda: s,
                               b: vp.baseAddress! + heads.kvHead(for: h) * d, ldb: heads.kvHeads * d,
                               c: zp + h * d, ldc: heads.heads * d)
                }
            }
        }
    }
}
