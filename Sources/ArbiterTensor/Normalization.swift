// RMSNorm (Llama, Qwen2) and LayerNorm (CLIP), computed in Float32 with Double accumulation.
import Foundation

/// RMSNorm as `LlamaRMSNorm`: y = x / sqrt(mean(x²) + eps) · weight, over the last dimension.
public func rmsNorm(_ x: Tensor, weight: StoredTensor, eps: Float) -> Tensor {
    let columns = x.columns
    precondition(weight.count == columns, "rmsNorm: \(weight.name) has \(weight.count) elements, want \(columns)")
    let w = weight.toTensor().scalars
    var y = x
    y.scalars.withUnsafeMutableBufferPointer { p in
        for r in 0..<x.rows {
            let row = p.baseAddress! + r * columns
            var sum: Float = 0
            for j in 0..<columns { sum += row[j] * row[j] }
            let scale = 1 / (sum / Float(columns) + eps).squareRoot()
            for j in 0..<columns { row[j] = w[j] * (row[j] * scale) }
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
            var mean: Float = 0
            for j in 0..<columns { mean += row[j] }
            mean /= Float(columns)
            var variance: Float = 0
            for j in 0..<columns { let d = row[j] - mean; variance += d * d }
            variance /= Float(columns)
            let scale = 1 / (variance + eps).squareRoot()
            for j in 0..<columns { row[j] = (row[j] - mean) * scale * w[j] + b[j] }
        }
    }
    return y
}
