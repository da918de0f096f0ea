// bf16 compute: the product of Float32 activations and BF16 weights in bf16 arithmetic on CPUs with
// AVX512-BF16 (the C kernel `arbiter_gemm_bf16`), as PyTorch's bf16 matmul: activations rounded to bf16, pairs of
// products added into f32 accumulators (VDPBF16PS). `ReferenceKernels.linearBFloat16` is the same arithmetic,
// written out.
import CKernels
import Foundation

public enum BFloat16GEMM {
    /// Whether this CPU has AVX512-BF16, so that `linearInto` computes bf16-compute weights in bf16.
    /// Without it they go through the widening path (f32 arithmetic on the bf16 weights).
    /// `ARBITER_NO_AVX512BF16=1` makes it false, to run that path (and its tests) on a CPU that has it.
    public static let isAvailable: Bool = arbiter_has_avx512bf16() != 0
        && ProcessInfo.processInfo.environment["ARBITER_NO_AVX512BF16"] != "1"

    /// Output columns per thread below which splitting the product costs more than it saves.
    static let minimumColumnsPerThread = 64

    /// out[r, j] = x[r, :] · W[outputs.lowerBound + j, :]ᵀ in bf16 arithmetic (see the file comment), row stride
    /// `ldo`, for a BF16 `weight`. Each output depends only on its row of x and of W, in a fixed order: the result
    /// is the same whatever the number of rows, the column block or the threads. Requires `isAvailable`.
    public static func multiply(x: UnsafePointer<Float>, n: Int, weight: StoredTensor, outputs: Range<Int>,
                                out: UnsafeMutablePointer<Float>, ldo: Int) {
        precondition(isAvailable && weight.dtype == .bfloat16 && weight.shape.count == 2,
                     "bf16 GEMM: \(weight.name) (\(weight.dtype)), AVX512-BF16 \(isAvailable ? "present" : "absent")")
        let inFeatures = weight.shape[1], pairs = (inFeatures + 1) / 2
        guard n > 0, !outputs.isEmpty else { return }
        let packed = UnsafeMutablePointer<UInt32>.allocate(capacity: max(n * pairs, 1))
        defer { packed.deallocate() }
        precondition(arbiter_bf16_pack_rows(x, n, inFeatures, inFeatures, packed) == 0, "bf16 GEMM: packing failed")
        let rows = weight.bytes.assumingMemoryBound(to: UInt16.self)
        // Threads take whole groups of 16 outputs (the kernel's vector width).
        let groups = (outputs.count + 15) / 16
        let work = n * inFeatures * 16
        let perThread = max(1, minimumColumnsPerThread / 16)
        Parallel.forEachRange(groups, costPerItem: groups >= 2 * perThread ? work : 0) { part in
            let first = part.lowerBound * 16, end = min(part.upperBound * 16, outputs.count)
            let status = arbiter_gemm_bf16(packed, n, inFeatures, rows + (outputs.lowerBound + first) * inFeatures,
                                           end - first, out + first, ldo)
            precondition(status == 0, "bf16 GEMM: out of memory for the 512 KB weight panel")
        }
    }
}
