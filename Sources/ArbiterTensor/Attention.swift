// Multi-head attention pieces with grouped-query heads, split at the points hooks need to see:
// scores (pre-softmax, after masking) → pattern (softmax) → z (per-head output before o_proj).
import CKernels

/// Head layout of an attention layer. Query head `h` reads key/value head `h / (heads / kvHeads)`.
public struct AttentionHeads: Sendable, Equatable {
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int

    public init(heads: Int, kvHeads: Int, headDim: Int) {
        precondition(heads > 0 && kvHeads > 0 && heads % kvHeads == 0,
                     "heads \(heads) not a multiple of kv heads \(kvHeads)")
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

// MARK: - A decoder run's attention, in the C kernels

/// Key counts up to which `causalAttentionPattern(q:…)` and `attentionMix(pattern:cachedValues:…)` run in the C
/// kernels (`arbiter_attention_scores_variant`, `arbiter_attention_mix_variant`): every head of a run in one
/// call, with no packing — for a small model's runs (head width 16, a few to a few dozen queries) about twice as
/// fast as a pair of sgemm calls per head, whose packing costs more than the products (measured on this
/// project's machine: 7 µs against 18 µs for 7 queries × 16 keys × 12 heads). Past it, OpenBLAS's cache blocking
/// wins (a 7B layer's 650 keys: 0.5 s against 0.35 s), and the per-head sgemm calls run.
public let attentionKernelMaxKeys = 256

/// Keys or values of an attention call: `cached` rows (a prefix) then `own` rows, row-major `[·, width]` (width
/// = KV·D), read in place — slices of the tensors they sit in, no copies.
public struct AttentionRows {
    public var cached: ArraySlice<Float>
    public var own: ArraySlice<Float>
    public let width: Int

    public init(cached: ArraySlice<Float> = [], own: ArraySlice<Float>, width: Int) {
        precondition(width > 0 && cached.count % width == 0 && own.count % width == 0,
                     "AttentionRows: \(cached.count) + \(own.count) values are not rows of \(width)")
        self.cached = cached
        self.own = own
        self.width = width
    }

    /// The rows of `own` `[T, width]` after `cached`.
    public init(cached: ArraySlice<Float> = [], own: Tensor) {
        self.init(cached: cached, own: own.scalars[...], width: own.columns)
    }

    public var cachedRows: Int { cached.count / width }
    public var rows: Int { (cached.count + own.count) / width }

    /// The rows as one tensor `[P + T, width]`.
    public var joined: Tensor { Tensor(shape: [rows, width], scalars: Array(cached) + Array(own)) }

    /// Calls `body` with pointers to the cached rows and to the own rows.
    func withPointers<R>(_ body: (UnsafePointer<Float>, UnsafePointer<Float>) -> R) -> R {
        own.withUnsafeBufferPointer { o in
            cached.withUnsafeBufferPointer { c in body(c.baseAddress ?? o.baseAddress!, o.baseAddress!) }
        }
    }
}

/// Which build of the attention kernels runs: the best for this CPU, or one named (for tests).
public enum AttentionKernelVariant: Int32, Sendable, CaseIterable {
    case best = -1
    case baseline = 0
    case fma = 1

    /// The variants this CPU can run.
    public static var available: [AttentionKernelVariant] { arbiter_has_fma() != 0 ? [.baseline, .fma] : [.baseline] }
}

/// The causal attention pattern `[H, T, S]` of queries q `[T, H·D]` (query i at position i + queryOffset, with
/// S = queryOffset + T) over `keys`: the softmax of scale · q·kᵀ over keys 0...i + queryOffset, 0 after — as
/// `attentionScores` then `causalAttentionPattern(inPlace:)`, for callers that do not look at the scores.
/// The queries are rows of width H·D read in place (`AttentionRows` of the query heads).
public func causalAttentionPattern(q: AttentionRows, keys: AttentionRows, heads: AttentionHeads, scale: Float,
                                   queryOffset: Int, variant: AttentionKernelVariant = .best) -> Tensor {
    let t = q.rows, s = keys.rows, d = heads.headDim
    precondition(q.width == heads.heads * d && q.cached.isEmpty && keys.width == heads.kvHeads * d
                     && s == queryOffset + t,
                 "causalAttentionPattern: \(t) queries × \(q.width), keys \(s) × \(keys.width), "
                     + "offset \(queryOffset)")
    guard s <= attentionKernelMaxKeys || variant != .best else {
        var scores = attentionScores(q: q.joined, k: keys.joined, heads: heads, scale: scale)
        causalAttentionPattern(inPlace: &scores, queryOffset: queryOffset)
        return scores
    }
    return Tensor(shape: [heads.heads, t, s]) { sp in
        // The kernel writes every score a query can see; the softmax then writes every entry.
        scoresKernel(q: q, keys: keys, heads: heads, scale: scale, causalOffset: queryOffset, variant: variant, sp)
        arbiter_softmax_causal(sp, 0, heads.heads * t, t, s, queryOffset)
    }
}

/// Unmasked scores `[H, T, S]` of queries q (rows of H·D) over `keys`, with the arithmetic of the kernel
/// (`arbiter_attention_scores_variant`) up to `attentionKernelMaxKeys` keys (always for a variant other than
/// `.best`), per-head sgemm calls past it — the same bits as the scores `causalAttentionPattern(q:…)` uses.
public func attentionScores(q: AttentionRows, keys: AttentionRows, heads: AttentionHeads, scale: Float,
                            variant: AttentionKernelVariant = .best) -> Tensor {
    precondition(q.width == heads.heads * heads.headDim && q.cached.isEmpty
                     && keys.width == heads.kvHeads * heads.headDim,
                 "attentionScores: queries of \(q.width), keys of \(keys.width)")
    guard keys.rows <= attentionKernelMaxKeys || variant != .best else {
        return attentionScores(q: q.joined, k: keys.joined, heads: heads, scale: scale)
    }
    return Tensor(shape: [heads.heads, q.rows, keys.rows]) { sp in
        scoresKernel(q: q, keys: keys, heads: heads, scale: scale, causalOffset: -1, variant: variant, sp)
    }
}

private func scoresKernel(q: AttentionRows, keys: AttentionRows, heads: AttentionHeads, scale: Float,
                          causalOffset: Int, variant: AttentionKernelVariant, _ out: UnsafeMutablePointer<Float>) {
    let t = q.rows, s = keys.rows
    let status = q.own.withUnsafeBufferPointer { qp in
        keys.withPointers { cached, own in
            arbiter_attention_scores_variant(variant.rawValue, qp.baseAddress!, q.width, cached, keys.cachedRows,
                                             own, keys.width, t, s, heads.heads, heads.kvHeads, heads.headDim, scale,
                                             causalOffset, out)
        }
    }
    // Scratch of S·D floats: failing to get it is running out of memory, as a failed array allocation is.
    precondition(status == 0, "attention scores: out of memory for \(s) keys × \(heads.headDim)")
}

/// z `[T, H·D]` = pattern `[H, T, S]` · `values` per head, with the arithmetic of the kernel
/// (`arbiter_attention_mix_variant`) up to `attentionKernelMaxKeys` keys (always for a variant other than
/// `.best`), per-head sgemm calls past it.
public func attentionMix(pattern: Tensor, values: AttentionRows, heads: AttentionHeads,
                         variant: AttentionKernelVariant = .best) -> Tensor {
    precondition(pattern.rank == 3 && pattern.shape[0] == heads.heads, "attentionMix: bad pattern \(pattern.shape)")
    let t = pattern.shape[1], s = pattern.shape[2], d = heads.headDim
    precondition(values.rows == s && values.width == heads.kvHeads * d, "attentionMix: values \(values.rows)")
    guard s <= attentionKernelMaxKeys || variant != .best else {
        return attentionMix(pattern: pattern, v: values.joined, heads: heads)
    }
    return Tensor(shape: [t, heads.heads * d]) { zp in
        pattern.scalars.withUnsafeBufferPointer { pp in
            values.withPointers { cached, own in
                arbiter_attention_mix_variant(variant.rawValue, pp.baseAddress!, cached, values.cachedRows, own,
                                              values.width, t, s, heads.heads, heads.kvHeads, d, zp, heads.heads * d)
            }
        }
    }
}
