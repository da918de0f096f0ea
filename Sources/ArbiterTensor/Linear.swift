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
        precondition(bias.count == outFeatures, "linear: bias \(bias.name) has \(bias.count) elements, want \(outFeatures)")
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
    let outFeatures = weight.shape[0], inFeatures = weight.shape[1]
    if let w = weight.float32Pointer {
        BLAS.sgemm(transB: true, m: n, n: outFeatures, k: inFeatures, a: x, lda: inFeatures,
                   b: w, ldb: inFeatures, c: out, ldc: outFeatures)
        return
    }
    let block = min(linearWidenBlockRows, outFeatures)
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(block * inFeatures, 1))
    defer { scratch.deallocate() }
    var start = 0
    while start < outFeatures {
        let end = min(start + block, outFeatures)
        weight.widenRows(start..<end, into: scratch)
        BLAS.sgemm(transB: true, m: n, n: end - start, k: inFeatures, a: x, lda: inFeatures,
                   b: scratch, ldb: inFeatures, c: out + start, ldc: outFeatures)
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
