// bf16 compute (`BFloat16GEMM`, the AVX512-BF16 kernel of Sources/CKernels) against its scalar reference
// (`ReferenceKernels.linearBFloat16`) bit for bit, and against the f32 path within the bound of the error
// analysis. On a CPU without AVX512-BF16 the reference is checked on its own (pinned cases, the error bound)
// and bf16-compute weights must take the widening path bit for bit; every test records which path ran.
// `ARBITER_NO_AVX512BF16=1 swift test --filter BFloat16GEMMTests` runs that case on a CPU with AVX512-BF16.
import ArbiterTensor
import Foundation
import PropertyBased
import Testing

@Suite("bf16 compute")
struct BFloat16GEMMTests {
    /// Which implementation the tests exercised on this CPU (attached to each test's results).
    static var path: String {
        BFloat16GEMM.isAvailable ? "bf16 path: AVX512-BF16 kernel (checked against the reference)"
            : "bf16 path: none on this CPU (no AVX512-BF16): reference checked alone, widening path used"
    }

    static func recordPath() { Attachment.record(path, named: "bf16-path.txt") }

    /// A BF16 weight `[rows, columns]` holding `bits`, `offset` bytes past an aligned address, marked for bf16
    /// compute, and the same bytes unmarked (the widening path).
    static func weights(_ bits: [UInt16], rows: Int, columns: Int,
                        offset: Int = 0) -> (bf16: StoredTensor, plain: StoredTensor) {
        let buffer = ByteBuffer(byteCount: offset + 2 * bits.count)
        for (i, b) in bits.enumerated() { buffer.base.storeBytes(of: b, toByteOffset: offset + 2 * i, as: UInt16.self) }
        let plain = StoredTensor(name: "w", dtype: .bfloat16, shape: [rows, columns],
                                 bytes: UnsafeRawPointer(buffer.base + offset), owner: buffer)
        return (plain.forBFloat16Compute()!, plain)
    }

    /// `linearInto` over `outputs` with row stride `ldo`; the columns past `outputs.count` of each row must keep
    /// their sentinel, which is checked here.
    static func product(_ x: Tensor, _ weight: StoredTensor, outputs: Range<Int>, ldo: Int,
                        sourceLocation: SourceLocation = #_sourceLocation) -> [Float] {
        let sentinel = Float(bitPattern: 0x7FC0_1234)
        var out = [Float](repeating: sentinel, count: x.rows * ldo)
        x.scalars.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                linearInto(x: xp.baseAddress!, n: x.rows, weight: weight, outputs: outputs, out: op.baseAddress!,
                           ldo: ldo)
            }
        }
        var block: [Float] = []
        for r in 0..<x.rows {
            block += out[(r * ldo)..<(r * ldo + outputs.count)]
            let padding = out[(r * ldo + outputs.count)..<((r + 1) * ldo)]
            #expect(padding.allSatisfy { $0.bitPattern == sentinel.bitPattern },
                    "row \(r): columns past the block were written", sourceLocation: sourceLocation)
        }
        return block
    }

    // MARK: the reference's arithmetic, pinned by hand (every CPU; the kernel too where it runs)

    struct Pinned: Sendable, CustomStringConvertible {
        let name: String
        let x: [Float]
        let w: [UInt16]
        let expected: Float
        var description: String { name }
    }

    static let pinned: [Pinned] = [
        // Pair 0 leaves 2^24; pair 1 adds its odd product (+1: 2^24 + 1 ties to 2^24) then its even one (−1):
        // 2^24 − 1. Even half first would give 2^24; one rounding of the pair's sum would give 2^24 too.
        Pinned(name: "odd half of a pair first, each step rounded", x: [4096, 4096, -1, 1],
               w: [0x4580, 0x0000, 0x3F80, 0x3F80], expected: 16_777_215),
        // 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: to even, 1. 1 + 3·2^-8 goes up to 1 + 2^-6.
        Pinned(name: "activation rounded to nearest even (down)", x: [1 + 0x1p-8], w: [0x3F80], expected: 1),
        Pinned(name: "activation rounded to nearest even (up)", x: [1 + 3 * 0x1p-8], w: [0x3F80], expected: 1 + 0x1p-6),
        // A subnormal bf16 weight (2^-133) is read as 0: without that, 2^100 · 2^-133 = 2^-33.
        Pinned(name: "subnormal weight read as zero", x: [0x1p100], w: [0x0001], expected: 0),
        // A subnormal f32 activation becomes 0 when rounded: without that, 2^-133 · 2^100 = 2^-33.
        Pinned(name: "subnormal activation rounded to zero", x: [0x1p-133], w: [0x7180], expected: 0),
        // 2^-70 · −2^-70 = −2^-140 is subnormal: flushed to a zero of its sign.
        Pinned(name: "subnormal result flushed to −0", x: [0x1p-70], w: [0x9C80], expected: -0.0),
        // The second half of an odd row's last pair is 0 in both operands: 3 · 5 = 15.
        Pinned(name: "odd feature count", x: [1, 2, 3], w: [0x0000, 0x0000, 0x40A0], expected: 15),
    ]

    @Test("the reference's steps (pair order, rounding, flushing) on hand-computed cases", arguments: pinned)
    func pinnedCases(_ c: Pinned) {
        Self.recordPath()
        let x = Tensor(shape: [1, c.x.count], scalars: c.x)
        let reference = ReferenceKernels.linearBFloat16(x, weightBits: c.w, outFeatures: 1).scalars[0]
        #expect(reference.bitPattern == c.expected.bitPattern, "\(c): reference gives \(reference), want \(c.expected)")
        let (bf16, plain) = Self.weights(c.w, rows: 1, columns: c.x.count)
        let product = Self.product(x, bf16, outputs: 0..<1, ldo: 1)[0]
        if BFloat16GEMM.isAvailable {
            #expect(product.bitPattern == c.expected.bitPattern,
                    "\(c): the kernel gives \(product), want \(c.expected)")
        } else {
            let widened = Self.product(x, plain, outputs: 0..<1, ldo: 1)[0]
            #expect(product.bitPattern == widened.bitPattern,
                    "\(c): \(product) differs from the widening path's \(widened)")
        }
    }

    // MARK: kernel = reference, bit for bit

    struct Case: Sendable, CustomStringConvertible {
        let x: Tensor
        let bits: [UInt16]
        let outFeatures: Int
        let outputs: Range<Int>
        let extraColumns: Int
        let offset: Int
        var description: String {
            "x \(x.shape), W [\(outFeatures), \(x.columns)] at byte offset \(offset), outputs \(outputs), "
                + "ldo = count + \(extraColumns)"
        }
    }

    /// A value in ±[2^-20, 2^20): magnitudes that differ so that the order of the additions shows in the bits;
    /// one in 64 is a subnormal.
    static func spread(_ rng: inout SplitMix64) -> Float {
        if Int.random(in: 0..<64, using: &rng) == 0 { return Float.random(in: -0x1p-130...0x1p-130, using: &rng) }
        let scale = Float(sign: .plus, exponent: Int.random(in: -20..<20, using: &rng), significand: 1)
        return Float.random(in: -1...1, using: &rng) * scale
    }

    /// Feature counts around the kernel's widths: pairs (2), vectors of 32 bf16, a cache block of 256 pairs.
    static let inChoices = [1, 2, 3, 31, 32, 33, 64, 65, 511, 513, 600]
    /// Output counts around 16 (a vector), 64 (a micro-kernel) and 512 (a panel).
    static let outChoices = [1, 15, 16, 17, 64, 65, 130, 520]

    @Test("AVX512-BF16 kernel = reference bit for bit: odd sizes, n = 1, output blocks, ldo > outputs, unaligned W")
    func kernelMatchesReference() async {
        Self.recordPath()
        await propertyCheck(count: 40, input: generator { rng in
            let n = pick([1, 2, 5, 6, 7, 13], &rng), inFeatures = pick(Self.inChoices, &rng)
            let outFeatures = pick(Self.outChoices, &rng)
            let lower = Int.random(in: 0..<outFeatures, using: &rng)
            let upper = Int.random(in: (lower + 1)...outFeatures, using: &rng)
            let x = Tensor(shape: [n, inFeatures], scalars: (0..<(n * inFeatures)).map { _ in Self.spread(&rng) })
            let bits = (0..<(outFeatures * inFeatures)).map { _ in floatToBFloat16(Self.spread(&rng)) }
            let outputs = Bool.random(using: &rng) ? 0..<outFeatures : lower..<upper
            return Case(x: x, bits: bits, outFeatures: outFeatures, outputs: outputs,
                        extraColumns: pick([0, 1, 7], &rng), offset: pick([0, 1, 2, 6], &rng))
        }) { c in
            let (bf16, plain) = Self.weights(c.bits, rows: c.outFeatures, columns: c.x.columns, offset: c.offset)
            let ldo = c.outputs.count + c.extraColumns
            let product = Self.product(c.x, bf16, outputs: c.outputs, ldo: ldo)
            if BFloat16GEMM.isAvailable {
                let rows = Array(c.bits[(c.outputs.lowerBound * c.x.columns)..<(c.outputs.upperBound * c.x.columns)])
                let reference = ReferenceKernels.linearBFloat16(c.x, weightBits: rows,
                                                                outFeatures: c.outputs.count).scalars
                let differing = zip(product, reference).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(differing == 0, "\(c): \(differing) of \(product.count) outputs differ from the reference")
            } else {
                let widened = Self.product(c.x, plain, outputs: c.outputs, ldo: ldo)
                #expect(zip(product, widened).allSatisfy { $0.bitPattern == $1.bitPattern },
                        "\(c): without AVX512-BF16 a bf16-compute weight must take the widening path")
            }
        }
    }

    /// The kernel's property (one accumulator per output, in a fixed order); OpenBLAS's sgemm, which the
    /// widening path calls, depends on the row count in its last bits, so without AVX512-BF16 the test checks
    /// that a bf16-compute weight takes that path bit for bit instead.
    @Test("the kernel's result does not depend on the threads or the rows multiplied together")
    func independentOfSplit() {
        Self.recordPath()
        var rng = SplitMix64(seed: 23)
        let n = 9, inFeatures = 700, outFeatures = 300
        let x = Tensor(shape: [n, inFeatures], scalars: (0..<(n * inFeatures)).map { _ in Self.spread(&rng) })
        let bits = (0..<(outFeatures * inFeatures)).map { _ in floatToBFloat16(Self.spread(&rng)) }
        let (bf16, plain) = Self.weights(bits, rows: outFeatures, columns: inFeatures)
        let whole = Self.product(x, bf16, outputs: 0..<outFeatures, ldo: outFeatures)
        guard BFloat16GEMM.isAvailable else {
            let widened = Self.product(x, plain, outputs: 0..<outFeatures, ldo: outFeatures)
            #expect(whole.map(\.bitPattern) == widened.map(\.bitPattern), "not the widening path's result")
            return
        }
        let serial = Parallel.serially { Self.product(x, bf16, outputs: 0..<outFeatures, ldo: outFeatures) }
        #expect(whole.map(\.bitPattern) == serial.map(\.bitPattern), "one thread and several differ")
        for r in [0, 4, 8] {
            let row = Tensor(shape: [1, inFeatures],
                             scalars: Array(x.scalars[(r * inFeatures)..<((r + 1) * inFeatures)]))
            let alone = Self.product(row, bf16, outputs: 0..<outFeatures, ldo: outFeatures)
            let inWhole = whole[(r * outFeatures)..<((r + 1) * outFeatures)]
            #expect(alone.map(\.bitPattern) == inWhole.map(\.bitPattern),
                    "row \(r) alone differs from row \(r) of the \(n)-row product")
        }
    }

    // MARK: bf16 compute against the f32 path

    /// Error analysis, per output y = Σᵢ xᵢwᵢ over k = in features, with S = Σᵢ |xᵢwᵢ|: rounding xᵢ to
    /// bf16 (8 significant bits, round to nearest) moves each product by at most u = 2^-8 of itself, so the sum by at
    /// most u·S; f32 accumulation of k exact products (VDPBF16PS: products of bf16 are exact, each step one
    /// rounding) adds at most k·2^-24·S (first-order bound of recursive summation), and OpenBLAS's f32 sum of the
    /// same length as much again. Weights rounded to bf16 at load (F32 checkpoints) add another u·S.
    static func bound(features k: Int, roundedWeights: Bool, s: Double) -> Double {
        let u = 0x1p-8
        return ((roundedWeights ? 2 * u + u * u : u) + 2.01 * Double(k) * 0x1p-24) * s
    }

    @Test("bf16 compute stays within the error bound of the f32 path (bf16 weights, and f32 weights rounded at load)",
          arguments: [(1, 33), (7, 1000), (3, 4096)])
    func withinBoundOfFloat32(n: Int, inFeatures: Int) {
        Self.recordPath()
        var rng = SplitMix64(seed: UInt64(n * 100_003 + inFeatures))
        let outFeatures = 37
        let x = Tensor(shape: [n, inFeatures],
                       scalars: (0..<(n * inFeatures)).map { _ in Float.random(in: -1...1, using: &rng) })
        let values = (0..<(outFeatures * inFeatures)).map { _ in Float.random(in: -1...1, using: &rng) }
        for roundedWeights in [false, true] {
            // The f32 path multiplies the weights as stored: bf16 ones (widened), or the f32 originals.
            let (stored, held) = storedTensor("w", values, shape: [outFeatures, inFeatures],
                                              dtype: roundedWeights ? .float32 : .bfloat16)
            let bf16 = stored.forBFloat16Compute()!
            let exact = Self.product(x, stored, outputs: 0..<outFeatures, ldo: outFeatures)
            let bits = (0..<(outFeatures * inFeatures)).map { floatToBFloat16(held[$0]) }
            let computed = BFloat16GEMM.isAvailable ? Self.product(x, bf16, outputs: 0..<outFeatures, ldo: outFeatures)
                : ReferenceKernels.linearBFloat16(x, weightBits: bits, outFeatures: outFeatures).scalars
            var worst = 0.0, largest = 0.0
            for r in 0..<n {
                for o in 0..<outFeatures {
                    var s = 0.0
                    for i in 0..<inFeatures {
                        s += abs(Double(x.scalars[r * inFeatures + i]) * Double(held[o * inFeatures + i]))
                    }
                    let error = abs(Double(computed[r * outFeatures + o]) - Double(exact[r * outFeatures + o]))
                    let limit = Self.bound(features: inFeatures, roundedWeights: roundedWeights, s: s)
                    #expect(error <= limit,
                            "x [\(n), \(inFeatures)], output (\(r), \(o)): |Δ| \(error) > bound \(limit)")
                    worst = max(worst, error / limit)
                    largest = max(largest, error)
                }
            }
            // The activations really were rounded: bf16 compute differs from f32 somewhere, by far more than
            // f32 rounding alone would.
            #expect(largest > 1e-4, "bf16 compute equals the f32 path (largest |Δ| \(largest)): nothing was rounded?")
            Attachment.record("in \(inFeatures), rounded weights \(roundedWeights): largest |Δ| \(largest), "
                              + "at most \(worst) of the bound", named: "bf16-error.txt")
        }
    }

    // MARK: weights for bf16 compute

    @Test("forBFloat16Compute: BF16 kept as stored, F32/F16 rounded to nearest even, too large refused")
    func roundingAtLoad() {
        let values: [Float] = [1, -2.5, 1 + 0x1p-8, 1 + 3 * 0x1p-8, 3.14159, -65504, 1e-3, .nan, .infinity]
        for dtype in DType.allCases {
            let (stored, held) = storedTensor("t", values, shape: [values.count], dtype: dtype, offset: 2)
            let rounded = stored.forBFloat16Compute()!
            #expect(rounded.dtype == .bfloat16 && rounded.computesInBFloat16 && rounded.shape == stored.shape)
            #expect(!stored.computesInBFloat16, "\(dtype): a plain tensor is not marked")
            for (i, v) in held.enumerated() {
                let bits = rounded.bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                let want = ReferenceKernels.bfloat16Bits(v)
                #expect(bits == want || (v.isNaN && bfloat16ToFloat(bits).isNaN),
                        "\(dtype) value \(v): bf16 bits \(String(bits, radix: 16)), want \(String(want, radix: 16))")
            }
            if dtype == .bfloat16 { #expect(rounded.bytes == stored.bytes, "a BF16 tensor is used as stored") }
        }
        let (huge, _) = storedTensor("huge", [1, 3.4e38], shape: [2], dtype: .float32)
        #expect(huge.forBFloat16Compute() == nil, "3.4e38 rounds to infinity in bf16 and must be refused")
    }
}
