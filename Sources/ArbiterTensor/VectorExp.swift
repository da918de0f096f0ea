// exp over eight lanes at once, for the softmax and the SiLU/quick_gelu activations: those ran one libm
// `expf` call per element, which cost as much as the matrix products of a small model's forward pass
// (head_dim 16: the attention scores hold as many exps as their GEMM holds multiply-adds / 16).
//
// Method (Cephes `expf`): n = round(x·log2 e); r = x − n·ln 2 in two parts (C1 + C2 = ln 2, C1 exact in
// few bits so n·C1 is exact); e^r by a degree-7 polynomial on |r| ≤ ln2/2; 2^n as the product of two
// floats built in the exponent bits.
// Accuracy: ≤ 1 ulp from exp(x) for x in [−87.3, 88.7] (worst 0.96 ulp over every 97th float of the range,
// `VectorExpTests`); subnormal results (x down to −103.9) within one subnormal step. Special values:
//   x > 88.72 → +inf;  −inf and x < −103.9 → 0;  NaN → NaN (as expf).
// The array kernels (`expShifted`, `sigmoidScaled`, and the softmax row) run the same operations in C
// (Sources/CKernels), built for AVX2 and for the baseline, the AVX2 build chosen at run time when the CPU has
// it; this Swift SIMD8 version is their reference and the single-value path.
// Written without lane masks except float compares against a scalar, without `roundps` (the 1.5·2²³
// rounding trick) and without float→int conversion (n comes from the bits), so Swift's SIMD8 lowers to
// plain vector code on any x86-64 or arm64 baseline (integer-vector compares and pointwiseMin/Max are
// scalarised by the compiler: a first version using them ran slower than scalar libm `expf`).

import CKernels

public enum VectorExp {
    @usableFromInline static let log2e: Float = 1.44269504088896341
    @usableFromInline static let c1: Float = 0.693359375
    @usableFromInline static let c2: Float = -2.12194440e-4
    @usableFromInline static let magic: Float = 12_582_912  // 1.5 · 2²³
    @usableFromInline static let clampLow: Float = -110   // e^−110 < half the smallest subnormal
    @usableFromInline static let clampHigh: Float = 89    // e^89 > Float.greatestFiniteMagnitude

    /// e^x lane by lane (see the header for accuracy and special values).
    @inlinable @inline(__always)
    public static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        // Clamp to [−110, 89]: beyond, e^x is 0 or +inf in float32 and the arithmetic below gives exactly that.
        // (Float compares with a scalar replacement vectorise; NaN compares false and flows through as NaN.)
        let clamped = x.replacing(with: clampLow, where: x .< clampLow)
            .replacing(with: clampHigh, where: x .> clampHigh)
        let shifted = clamped * log2e + magic          // round to nearest, n in the low mantissa bits
        let n = shifted - magic
        let r = (clamped - n * c1) - n * c2
        var p = SIMD8<Float>(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        p = p * (r * r) + r + 1
        // 2^n = 2^h · 2^(n−h) with h = ⌊n/2⌋: both factors are normal floats for n in [−159, 128], so the
        // products overflow to +inf, round into the subnormals, or underflow to 0 exactly as e^x does.
        let nBits = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- Int32(bitPattern: magic.bitPattern)
        let h = nBits &>> 1
        let first = unsafeBitCast((h &+ 127) &<< 23, to: SIMD8<Float>.self)
        let second = unsafeBitCast((nBits &- h &+ 127) &<< 23, to: SIMD8<Float>.self)
        return (p * first) * second
    }

    /// e^x of one value by the same method (bit-identical to the lanes of `exp(_: SIMD8)`).
    @inlinable
    public static func exp(_ x: Float) -> Float { exp(SIMD8(repeating: x))[0] }

    /// `values[i] = e^(values[i] − shift)` for `count` values in place; returns their sum (summed in eight
    /// lanes, then the lanes in order, so the result does not depend on where the array sits in memory).
    /// Runs in C (`CKernels`), with AVX2 when the CPU has it; bit-identical to `exp(_: SIMD8)` lane by lane.
    @inlinable
    public static func expShifted(_ values: UnsafeMutablePointer<Float>, count: Int, shift: Float) -> Float {
        arbiter_exp_shifted(values, count, shift)
    }

    /// `x[i] = x[i] / (1 + e^(−k·x[i]))` (times `factor[i]` when given) for `count` values in place: SiLU for
    /// k = 1, quick_gelu for k = 1.702. In C like `expShifted`; bit-identical to the same formula over
    /// `exp(_: SIMD8)`.
    @inlinable
    public static func sigmoidScaled(_ x: UnsafeMutablePointer<Float>, factor: UnsafePointer<Float>?, count: Int,
                                     k: Float) {
        arbiter_sigmoid_scaled(x, factor, count, k)
    }

    /// Which build of the C kernels this CPU runs: "avx2" or "baseline".
    public static var kernelVariant: String { String(cString: arbiter_kernel_variant()) }
}
