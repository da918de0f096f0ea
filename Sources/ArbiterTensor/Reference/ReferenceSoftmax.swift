// Reference softmax and log-softmax in Double, with the special values handled exactly as
// `softmaxRows` and `logSoftmax` document it.
import Foundation

extension ReferenceKernels {
    /// Softmax over the last dimension, in Double:
    /// - a NaN anywhere in a row makes the whole row NaN;
    /// - a row with `+inf` entries shares the mass equally among them, everything else 0;
    /// - a row whose entries are all `-inf` becomes all zeros (Arbiter's documented choice; torch gives NaN);
    /// - otherwise exp(x − max) / Σ exp(x − max), where `-inf` entries get exactly 0.
    public static func softmax(_ x: Tensor) -> Tensor {
        var y = [Float](repeating: 0, count: x.count)
        let columns = x.columns
        for r in 0..<x.rows {
            let row = (0..<columns).map { Double(x.scalars[r * columns + $0]) }
            for (j, p) in softmaxRow(row).enumerated() { y[r * columns + j] = Float(p) }
        }
        return Tensor(shape: x.shape, scalars: y)
    }

    /// One row of `softmax`, in Double.
    public static func softmaxRow(_ row: [Double]) -> [Double] {
        if row.contains(where: { $0.isNaN }) { return row.map { _ in .nan } }
        let positiveInfinities = row.filter { $0 == .infinity }.count
        if positiveInfinities > 0 { return row.map { $0 == .infinity ? 1 / Double(positiveInfinities) : 0 } }
        guard let maximum = row.max(), maximum > -.infinity else { return row.map { _ in 0 } }
        let exps = row.map { $0 == -.infinity ? 0 : exp($0 - maximum) }
        let sum = exps.reduce(0, +)
        return exps.map { $0 / sum }
    }

    /// log-softmax over the last dimension, in Double: x − max − log Σ exp(x − max). Special values as
    /// torch: `-inf` entries stay `-inf`; a row holding a NaN or a `+inf`, or only `-inf`, becomes all NaN.
    public static func logSoftmax(_ x: Tensor) -> Tensor {
        var y = [Float](repeating: 0, count: x.count)
        let columns = x.columns
        for r in 0..<x.rows {
            let row = (0..<columns).map { Double(x.scalars[r * columns + $0]) }
            let maximum = row.max() ?? -.infinity
            let undefined = row.contains { $0.isNaN || $0 == .infinity } || maximum == -.infinity
            let logSum = log(row.reduce(0.0) { $0 + ($1 == -.infinity ? 0 : exp($1 - maximum)) })
            for j in 0..<columns {
                y[r * columns + j] = undefined ? .nan : Float(row[j] - maximum - logSum)
            }
        }
        return Tensor(shape: x.shape, scalars: y)
    }
}
