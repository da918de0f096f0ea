// Reference RMSNorm and LayerNorm in Double, straight from their definitions.

extension ReferenceKernels {
    /// RMSNorm (`LlamaRMSNorm`): y = w · x / sqrt(mean(x²) + eps) over the last dimension.
    public static func rmsNorm(_ x: Tensor, weight: [Float], eps: Double) -> Tensor {
        let columns = x.columns
        precondition(weight.count == columns, "reference rmsNorm: weight size")
        var y = [Float](repeating: 0, count: x.count)
        for r in 0..<x.rows {
            var sumSquares = 0.0
            for j in 0..<columns { let v = Double(x.scalars[r * columns + j]); sumSquares += v * v }
            let rms = (sumSquares / Double(columns) + eps).squareRoot()
            for j in 0..<columns {
                y[r * columns + j] = Float(Double(weight[j]) * Double(x.scalars[r * columns + j]) / rms)
            }
        }
        return Tensor(shape: x.shape, scalars: y)
    }

    /// LayerNorm (`torch.nn.LayerNorm`): y = (x − mean) / sqrt(var + eps) · w + b, biased variance.
    public static func layerNorm(_ x: Tensor, weight: [Float], bias: [Float]?, eps: Double) -> Tensor {
        let columns = x.columns
        precondition(weight.count == columns && (bias.map { $0.count == columns } ?? true),
                     "reference layerNorm: sizes")
        var y = [Float](repeating: 0, count: x.count)
        for r in 0..<x.rows {
            var mean = 0.0
            for j in 0..<columns { mean += Double(x.scalars[r * columns + j]) }
            mean /= Double(columns)
            var variance = 0.0
            for j in 0..<columns { let d = Double(x.scalars[r * columns + j]) - mean; variance += d * d }
            variance /= Double(columns)
            let std = (variance + eps).squareRoot()
            for j in 0..<columns {
                let normalized = (Double(x.scalars[r * columns + j]) - mean) / std
                y[r * columns + j] = Float(normalized * Double(weight[j]) + Double(bias?[j] ?? 0))
            }
        }
        return Tensor(shape: x.shape, scalars: y)
    }
}
