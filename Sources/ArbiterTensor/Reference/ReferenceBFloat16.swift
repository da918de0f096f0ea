// Reference of bf16 compute (`BFloat16GEMM`): the arithmetic of VDPBF16PS, one scalar step at a time.

extension ReferenceKernels {
    /// y[r, o] = x[r, :] · W[o, :]ᵀ in bf16 compute, for `weightBits` `[outFeatures, inFeatures]` bf16 bit
    /// patterns (as `torch.nn.Linear`), each output computed on its own:
    /// 1. x is rounded to bf16 (nearest even; a subnormal f32 becomes a signed zero), as VCVTNE2PS2BF16;
    /// 2. the features are taken in pairs (2p, 2p + 1); an odd count ends with a pair whose second half is 0 in
    ///    both operands;
    /// 3. one accumulator starts at +0 and, for p = 0, 1, … in order, takes the pair as VDPBF16PS does (Intel
    ///    SDM): acc = fma(x[2p+1], w[2p+1], acc), then acc = fma(x[2p], w[2p], acc) — each a fused multiply-add
    ///    rounded to nearest even, with subnormal bf16 inputs read as 0 and a subnormal result flushed to 0.
    /// The product of two bf16 values is exact in Float, so `Float.addingProduct` (one rounding) is that step.
    public static func linearBFloat16(_ x: Tensor, weightBits: [UInt16], outFeatures: Int) -> Tensor {
        let n = x.rows, inFeatures = x.columns
        precondition(weightBits.count == outFeatures * inFeatures, "reference bf16 linear: \(weightBits.count) weights")
        var y = [Float](repeating: 0, count: n * outFeatures)
        let rows = (0..<n).map { r in (0..<inFeatures).map { roundedActivation(x.scalars[r * inFeatures + $0]) } }
        for o in 0..<outFeatures {
            let weights = (0..<inFeatures).map { flushedSubnormal(bfloat16Float(weightBits[o * inFeatures + $0])) }
            for r in 0..<n {
                var accumulator: Float = 0
                for p in 0..<(inFeatures + 1) / 2 {
                    let even = 2 * p, odd = 2 * p + 1
                    let xOdd: Float = odd < inFeatures ? rows[r][odd] : 0
                    let wOdd: Float = odd < inFeatures ? weights[odd] : 0
                    accumulator = flushedSubnormal(accumulator.addingProduct(xOdd, wOdd))
                    accumulator = flushedSubnormal(accumulator.addingProduct(rows[r][even], weights[even]))
                }
                y[r * outFeatures + o] = accumulator
            }
        }
        var shape = x.shape.isEmpty ? [1] : x.shape
        shape[shape.count - 1] = outFeatures
        return Tensor(shape: shape, scalars: y)
    }

    /// An activation as VCVTNE2PS2BF16 rounds it: subnormals to signed zero, others to nearest even bf16.
    public static func roundedActivation(_ value: Float) -> Float {
        value.isSubnormal ? Float(sign: value.sign, exponent: 0, significand: 0)
            : flushedSubnormal(bfloat16Float(bfloat16Bits(value)))
    }

    /// The Float a bf16 bit pattern stands for (its bits are the high half of the Float's).
    static func bfloat16Float(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// A subnormal value replaced by zero of the same sign (DAZ/FTZ), others unchanged.
    static func flushedSubnormal(_ value: Float) -> Float {
        value.isSubnormal ? Float(sign: value.sign, exponent: 0, significand: 0) : value
    }
}
