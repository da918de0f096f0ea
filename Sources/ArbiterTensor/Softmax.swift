// Numerically stable softmax over rows, aware of -inf (masked) entries.
import Foundation
import CKernels

/// Softmax over each of `rows` rows of `columns` values (row stride `stride`), in place.
/// Max-subtracted, so large logits do not overflow. `-inf` entries get probability exactly 0.
/// A row whose entries are all `-inf` has no defined distribution: it becomes all zeros (documented
/// choice; torch would give NaN). A NaN anywhere in a row makes the whole row NaN, so it is never hidden.
public func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, columns: Int, stride: Int? = nil) {
    let stride = stride ?? columns
    nonisolated(unsafe) let x = x
    Parallel.forEachRange(rows, costPerItem: columns * 4) { range in
        for r in range { softmaxRow(x + r * stride, columns: columns) }
    }
}

/// Softmax of one row in place (see `softmaxRows` for the special values): in C (`CKernels`), with AVX2 when
/// the CPU has it. Trailing `-inf` entries (a causal mask's future keys) are set to 0 without an exp (except
/// those completing the last group of eight); the rest go through the `VectorExp` method eight lanes at a time.
@inline(__always)
func softmaxRow(_ row: UnsafeMutablePointer<Float>, columns: Int) {
    arbiter_softmax_row(row, columns)
}

/// The attention pattern of `[H, T, S]` scores with no causal mask written, in place: query `i` (absolute
/// position `i + queryOffset`) gets the softmax of keys `0...i+queryOffset`, and 0 for later keys, which
/// are not read — bit for bit `applyCausalMask` then `attentionPattern(inPlace:)`, without writing the mask
/// or scanning the masked entries (`arbiter_softmax_causal`).
public func causalAttentionPattern(inPlace scores: inout Tensor, queryOffset: Int = 0) {
    precondition(scores.rank == 3 && queryOffset >= 0,
                 "causalAttentionPattern: want [heads, T, S], got \(scores.shape)")
    let t = scores.shape[1], s = scores.shape[2], rows = scores.rows
    scores.scalars.withUnsafeMutableBufferPointer { p in
        nonisolated(unsafe) let x = p.baseAddress!
        Parallel.forEachRange(rows, costPerItem: s * 4) { range in
            arbiter_softmax_causal(x, range.lowerBound, range.upperBound, t, s, queryOffset)
        }
    }
}

/// Softmax over the last dimension of a tensor.
public func softmax(_ x: Tensor) -> Tensor {
    var y = x
    softmax(inPlace: &y)
    return y
}

/// Softmax over the last dimension, in place (no copy of the tensor).
public func softmax(inPlace x: inout Tensor) {
    let rows = x.rows, columns = x.columns
    x.scalars.withUnsafeMutableBufferPointer { softmaxRows($0.baseAddress!, rows: rows, columns: columns) }
}

/// log-softmax over the last dimension (stable: x - max - log Σ exp(x - max)). Special values as torch:
/// `-inf` entries stay `-inf`; a row holding a NaN or `+inf`, or only `-inf`, becomes all NaN.
public func logSoftmax(_ x: Tensor) -> Tensor {
    var y = x
    let columns = x.columns
    y.scalars.withUnsafeMutableBufferPointer { p in
        for r in 0..<x.rows {
            let row = p.baseAddress! + r * columns
            var maximum = -Float.infinity
            for j in 0..<columns where row[j] > maximum { maximum = row[j] }
            var sum: Double = 0
            for j in 0..<columns { sum += Double(expf(row[j] - maximum)) }
            let shift = maximum + Float(log(sum))
            for j in 0..<columns { row[j] -= shift }
        }
    }
    return y
}
