// RMSNorm (Llama, Qwen2) and LayerNorm (CLIP), computed in Float32 with Double accumulation.
import Foundation

/// RMSNorm as `LlamaRMSNorm`: y = x / sqrt(mean(x²) + eps) · weight, over the last dimension.
public func rmsNorm(_ x: Tensor, weight: StoredTensor, eps: Float) -> Tensor {
    let columns = x.columns
    precondition(weight.count == columns, "rmsNorm: \(weight.name) has \(weight.count) elements, want \(columns)")
    let w = weight.toTensor().scalars
    var y = x
    y.scalars.withUnsafeMutableBufferPointer { p in
        nonisolated(unsafe) let base = p.baseAddress!
        Parallel.forEachRange(x.rows, costPerItem: columns * 3) { rows in
            func normalize(_ row: UnsafeMutablePointer<Float>, sum: Double) {
                let scale = Float(1 / (sum / Double(columns) + Double(eps)).squareRoot())
                for j in 0..<columns { row[j] = w[j] * (row[j] * scale) }
            }
            // Each row's sum of squares is one chain of Double additions in column order (its bits must not
            // depend on the row count); four rows' chains run side by side so the adds' latency overlaps.
            var r = rows.lowerBound
            while r + 4 <= rows.upperBound {
                let a = base + r * columns, b = a + columns, c = b + columns, d = c + columns
                var sa: Double = 0, sb: Double = 0, sc: Double = 0, sd: Double = 0
                for j in 0..<columns {
                    let va = Double(a[j]), vb = Double(b[j]), vc = Double(c[j]), vd = Double(d[j])
                    sa += va * va; sb += vb * vb; sc += vc * vc; sd += vd * vd
                }
                normalize(a, sum: sa); normalize(b, sum: sb); normalize(c, sum: sc); normalize(d, sum: sd)
                r += 4
            }
            for r in r..<rows.upperBound {
                let row = base + r * columns
                var sum: Double = 0
                for j in 0..<columns { let v = Double(row[j]); sum += v * v }
                normalize(row, sum: sum)
            }
        }
    }
    return y
}

/// LayerNorm as `torch.nn.LayerNorm`: (x - mean) / sqrt(var + eps) · weight + bias (biased variance).
public func layerNorm(_ x: Tensor, weight: StoredTensor, bias: StoredTensor?, eps: Float) -> Tensor {
    let columns = x.columns
    precondition(weight.count == columns, "layerNorm: \(weight.name) has \(weight.count) elements, want \(columns)")
    let w = weight.toTensor().scalars
    let b = bias?.toTensor().scalars ?? [Float](repeating: 0, count: columns)
    var y = x
    y.scalars.withUnsafeMutableBufferPointer { p in
        for r in 0..<x.rows {
            let row = p.baseAddress! + r * columns
            // Mean and variance in Double: rows with a large mean (|mean| ≫ std) keep their precision.
            var mean: Double = 0
            for j in 0..<columns { mean += Double(row[j]) }
            mean /= Double(columns)
            var variance: Double = 0
            for j in 0..<columns { let d = Double(row[j]) - mean; variance += d * d }
            variance /= Double(columns)
            let scale = 1 / (variance + Double(eps)).squareRoot()
            for j in 0..<columns { row[j] = Float((Double(row[j]) - mean) * scale) * w[j] + b[j] }
        }
    }
    return y
}
