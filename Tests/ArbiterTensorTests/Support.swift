// Shared helpers of the kernel tests: random shapes and tensors, stored tensors in every dtype and
// alignment, and the comparison expectation.
import ArbiterTensor
import PropertyBased
import Testing

/// Dimension sizes drawn by the property tests: 1, odd sizes that defeat vector widths and BLAS blocking,
/// and a few even ones.
let testSizes = [1, 2, 3, 4, 7, 8, 16, 17, 33]

/// A uniformly chosen element of a non-empty array.
func pick<T>(_ choices: [T], _ rng: inout some RandomNumberGenerator) -> T {
    choices[Int.random(in: 0..<choices.count, using: &rng)]
}

/// A tensor of uniform values in `range`.
func randomTensor(_ shape: [Int], in range: ClosedRange<Float> = -1...1, _ rng: inout some RandomNumberGenerator) -> Tensor {
    Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Float.random(in: range, using: &rng) })
}

/// A generator without shrinking built from a closure; every case is a function of the property checker's
/// seed, so a failure's printed `.fixedSeed` replays the exact case. Case builders get a concrete SplitMix64
/// seeded from the checker's generator (opening the checker's `any SeededRandomNumberGenerator` inside closures
/// crashes the Swift 6.3 compiler).
func generator<T>(_ make: @Sendable @escaping (inout SplitMix64) -> T) -> Generator<T, Shrink.None<T>> {
    Generator(run: { rng in
        var local = SplitMix64(seed: rng.next())
        return make(&local)
    })
}

/// Expects `actual` to pass `compare` against `reference`, printing the comparison report otherwise.
///
/// NMSE bounds in the suites: NMSE catches systematic drift over a whole tensor, elementwise atol/rtol catch
/// single bad elements. Where outputs are relative-accurate (softmax, norms, activations, inv_freq) the bound is
/// 1e-10 ≈ (10 × rtol)²; where outputs are sums that can cancel (matmul, linear, scores, mix) a 1×1 output of
/// size ~1e-4 legitimately reaches NMSE ~1e-6, so those bounds are 1e-6.
func expectClose(_ actual: Tensor, _ reference: Tensor, _ tolerance: Tolerance, _ label: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    let report = compare(actual, to: reference, tolerance: tolerance, label: label)
    #expect(report.passed, "\(report)", sourceLocation: sourceLocation)
}

/// Heap bytes at a 16-byte aligned address that a `StoredTensor` can keep alive as its owner.
final class ByteBuffer: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    init(byteCount: Int) { base = .allocate(byteCount: max(byteCount, 1), alignment: 16) }
    deinit { base.deallocate() }
}

/// A stored tensor holding `values` rounded to `dtype` (round to nearest even), `offset` bytes past an aligned
/// address: offset 1 or 2 leaves an F32 tensor misaligned, so `float32Pointer` is nil and kernels take the
/// widening path. Returns the tensor and the Float32 values it really holds (decoded by the reference).
func storedTensor(_ name: String, _ values: [Float], shape: [Int], dtype: DType, offset: Int = 0) -> (StoredTensor, [Float]) {
    let buffer = ByteBuffer(byteCount: offset + values.count * dtype.byteSize)
    let start = buffer.base + offset
    var held = [Float]()
    for (i, v) in values.enumerated() {
        switch dtype {
        case .float32:
            start.storeBytes(of: v.bitPattern, toByteOffset: 4 * i, as: UInt32.self)
            held.append(v)
        case .float16:
            let bits = Float16(v).bitPattern
            start.storeBytes(of: bits, toByteOffset: 2 * i, as: UInt16.self)
            held.append(Float(ReferenceKernels.float16Value(bits)))
        case .bfloat16:
            let bits = ReferenceKernels.bfloat16Bits(v)
            start.storeBytes(of: bits, toByteOffset: 2 * i, as: UInt16.self)
            held.append(Float(ReferenceKernels.bfloat16Value(bits)))
        }
    }
    return (StoredTensor(name: name, dtype: dtype, shape: shape, bytes: UnsafeRawPointer(start), owner: buffer), held)
}

/// Whether two floats have the same bits, or are both NaN.
func sameFloat(_ a: Float, _ b: Float) -> Bool {
    a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN)
}

/// Whether every value is NaN. (Test code computes such predicates before `#expect`: a closure written
/// inside `#expect(...)` can collide with a neighbouring closure's discriminator in Swift 6.3 and the
/// wrong closure body runs; see the comment in SoftmaxTests.softmaxRowInvariants.)
func isAllNaN(_ values: some Sequence<Float>) -> Bool {
    values.allSatisfy { $0.isNaN }
}
