// Matrix products: activations (Float32) times weights in their stored dtype.

/// rows of widened weight kept at once for F16/BF16 weights: bounds scratch memory to
/// `linearWidenBlockRows × in_features` floats regardless of model size.
public let linearWidenBlockRows = 256

/// y[n, out] = x[n, in] · Wᵀ + b, where W is `[out, in]` as in `torch.nn.Linear`.
/// F32 weights go straight to BLAS from the map; F16/BF16 weights are widened block by block.
public func linear(_ x: Tensor, weight: StoredTensor, bias: StoredTensor? = nil) -> Tensor {
    let n = x.rows, inFeatures = x.columns
    precondition(weight.shape.count == 2 && weight.shape[1] == inFeatures,
                 "linear: \(weight.name) has shape \(weight.shape), input has \(inFeatures) features")
    let outFeatures = weight.shape[0]
    var shape = x.shape
    shape[shape.count - 1] = outFeatures
    var out = Tensor(shape: shape) { op in
        x.scalars.withUnsafeBufferPointer { xp in
            linearInto(x: xp.baseAddress!, n: n, weight: weight, out: op)
        }
    }
    if let bias {
        precondition(bias.count == outFeatures,
                     "linear: bias \(bias.name) has \(bias.count) elements, want \(outFeatures)")
        let b = bias.toTensor().scalars
        out.scalars.withUnsafeMutableBufferPointer { op in
            for r in 0..<n {
                let row = op.baseAddress! + r * outFeatures
                for j in 0..<outFeatures { row[j] += b[j] }
            }
        }
    }
    return out
}

/// out[n, out] = x[n, in] · Wᵀ (no bias), writing into caller memory.
public func linearInto(x: UnsafePointer<Float>, n: Int, weight: StoredTensor, out: UnsafeMutablePointer<Float>) {
    linearInto(x: x, n: n, weight: weight, outputs: 0..<weight.shape[0], out: out, ldo: weight.shape[0])
}

/// out[n, j] = x[n, in] · W[outputs.lowerBound + j]ᵀ for the output features `outputs` only (a column block
/// of the full product), row stride `ldo` ≥ `outputs.count`. Each weight row is widened once per call.
/// A weight marked for bf16 compute (`StoredTensor.forBFloat16Compute`) is multiplied in bf16 arithmetic by
/// `BFloat16GEMM` when the CPU has AVX512-BF16, and widened as any other BF16 weight otherwise.
public func linearInto(x: UnsafePointer<Float>, n: Int, weight: StoredTensor, outputs: Range<Int>,
                       out: UnsafeMutablePointer<Float>, ldo: Int) {
    let inFeatures = weight.shape[1]
    precondition(outputs.lowerBound >= 0 && outputs.upperBound <= weight.shape[0] && ldo >= outputs.count,
                 "linear: outputs \(outputs) of \(weight.name) \(weight.shape), ldo \(ldo)")
    guard n > 0, !outputs.isEmpty else { return }
    if weight.computesInBFloat16, weight.dtype == .bfloat16, BFloat16GEMM.isAvailable {
        BFloat16GEMM.multiply(x: x, n: n, weight: weight, outputs: outputs, out: out, ldo: ldo)
        return
    }
    if let w = weight.float32Pointer {
        BLAS.sgemm(transB: true, m: n, n: outputs.count, k: inFeatures, a: x, lda: inFeatures,
                   b: w + outputs.lowerBound * inFeatures, ldb: inFeatures, c: out, ldc: ldo)
        return
    }
    let block = min(linearWidenBlockRows, outputs.count)
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(block * inFeatures, 1))
    defer { scratch.deallocate() }
    var start = outputs.lowerBound
    while start < outputs.upperBound {
        let end = min(start + block, outputs.upperBound)
        weight.widenRows(start..<end, into: scratch)
        BLAS.sgemm(transB: true, m: n, n: end - start, k: inFeatures, a: x, lda: inFeatures,
                   b: scratch, ldb: inFeatures, c: out + (start - outputs.lowerBound), ldc: ldo)
        start = end
    }
}

/// C[m, n] = A[m, k] · B[k, n] for Float32 tensors.
public func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.rank == 2 && b.rank == 2 && a.shape[1] == b.shape[0], "matmul: \(a.shape) × \(b.shape)")
    let m = a.shape[0], k = a.shape[1], n = b.shape[1]
    return Tensor(shape: [m, n]) { cp in
        a.scalars.withUnsafeBufferPointer { ap in
            b.scalars.withUnsafeBufferPointer { bp in
                BLAS.sgemm(m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: n, c: cp, ldc: n)
            }
        }
    }
}
