// Naive reference kernels (in the spirit of llm.c's test_gpt2.c and llama.cpp's test-backend-ops):
// plain loops in Double, written for obviously-correct reading, not for speed. Tests compare every
// optimized kernel in ArbiterTensor with its reference here; nothing in the engine calls them.

/// Namespace of the naive Double-precision reference kernels. Inputs are the same Float32 tensors the
/// optimized kernels take; every intermediate is Double; results are rounded to Float32 once, at the end.
public enum ReferenceKernels {}

extension ReferenceKernels {
    /// C[m, n] = Σ_p A[m, p] · B[p, n] for `a` `[m, k]` and `b` `[k, n]` (triple loop).
    public static func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2 && a.shape[1] == b.shape[0],
                     "reference matmul: \(a.shape) × \(b.shape)")
        let m = a.shape[0], k = a.shape[1], n = b.shape[1]
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k { sum += Double(a.scalars[i * k + p]) * Double(b.scalars[p * n + j]) }
                c[i * n + j] = Float(sum)
            }
        }
        return Tensor(shape: [m, n], scalars: c)
    }

    /// y[r, o] = Σ_i x[r, i] · W[o, i] + b[o], as `torch.nn.Linear`: `weight` is `[outFeatures, inFeatures]`
    /// row-major Float32 values (already widened from the stored dtype). Leading dimensions of `x` are kept.
    public static func linear(_ x: Tensor, weight: [Float], outFeatures: Int, bias: [Float]? = nil) -> Tensor {
        let n = x.rows, inFeatures = x.columns
        precondition(weight.count == outFeatures * inFeatures, "reference linear: weight has \(weight.count) values")
        precondition(bias.map { $0.count == outFeatures } ?? true, "reference linear: bias size")
        var y = [Float](repeating: 0, count: n * outFeatures)
        for r in 0..<n {
            for o in 0..<outFeatures {
                var sum = bias.map { Double($0[o]) } ?? 0
                for i in 0..<inFeatures {
                    sum += Double(x.scalars[r * inFeatures + i]) * Double(weight[o * inFeatures + i])
                }
                y[r * outFeatures + o] = Float(sum)
            }
        }
        var shape = x.shape.isEmpty ? [1] : x.shape
        shape[shape.count - 1] = outFeatures
        return Tensor(shape: shape, scalars: y)
    }
}
