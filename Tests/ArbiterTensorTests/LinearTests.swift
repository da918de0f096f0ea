// matmul and linear (F32 / F16 / BF16 weights, aligned or not) against the Double reference.
import ArbiterTensor
import PropertyBased
import Testing

@Suite("Linear and matmul")
struct LinearTests {
    /// Inputs and weights are uniform in [-1, 1] and k ≤ 33 (matmul) or ≤ 65 (linear): float32 accumulation
    /// of k products is bounded by k·ε·Σ|aᵢbᵢ| ≤ 65²·6e-8 ≈ 2.5e-4 in the worst case and is ~√k·ε·|y| ≲ 1e-6
    /// in practice (measured ≤ 3e-7); 5e-6 is several times that yet far below any indexing mistake (O(0.1)).
    static let accumulation = Tolerance(atol: 5e-6, rtol: 5e-6, nmse: 1e-6,
                                        reason: "float32 accumulation over k ≤ 65 products of values in [-1, 1]")

    struct MatmulCase: Sendable, CustomStringConvertible {
        let a: Tensor, b: Tensor
        var description: String { "a \(a.shape), b \(b.shape)" }
    }

    @Test("matmul equals the triple loop for odd and even shapes")
    func matmulMatchesReference() async {
        await propertyCheck(count: 80, input: generator { rng in
            let m = pick(testSizes, &rng), k = pick(testSizes, &rng), n = pick(testSizes, &rng)
            return MatmulCase(a: randomTensor([m, k], &rng), b: randomTensor([k, n], &rng))
        }) { c in
            expectClose(matmul(c.a, c.b), ReferenceKernels.matmul(c.a, c.b), Self.accumulation, "matmul \(c)")
        }
    }

    @Test("matmul of hand-computed 2×3 · 3×2")
    func matmulPinned() {
        let a = Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [3, 2], scalars: [7, 8, 9, 10, 11, 12])
        #expect(matmul(a, b).scalars == [58, 64, 139, 154])
        #expect(ReferenceKernels.matmul(a, b).scalars == [58, 64, 139, 154])
    }

    struct LinearCase: Sendable, CustomStringConvertible {
        let x: Tensor
        let outFeatures: Int
        let dtype: DType
        let weightOffset: Int
        let weightValues: [Float]
        let bias: [Float]?
        var description: String {
            "x \(x.shape), out \(outFeatures), \(dtype.rawValue) weight at byte offset \(weightOffset), bias \(bias != nil)"
        }
    }

    /// out_features beyond `linearWidenBlockRows` (256) so several widening blocks run, including a last partial one.
    static let outFeatureChoices = [1, 3, 17, 255, 256, 257, 300, 513]

    @Test("linear with F32/F16/BF16 weights, aligned and misaligned, several widening blocks")
    func linearMatchesReference() async {
        await propertyCheck(count: 60, input: generator { rng in
            let tokens = pick([1, 2, 3, 7], &rng), inFeatures = pick(testSizes + [65], &rng)
            let outFeatures = pick(Self.outFeatureChoices, &rng)
            let shape = Bool.random(using: &rng) ? [tokens, inFeatures] : [2, tokens, inFeatures]
            return LinearCase(x: randomTensor(shape, &rng), outFeatures: outFeatures,
                              dtype: pick(DType.allCases, &rng), weightOffset: pick([0, 1, 2, 4], &rng),
                              weightValues: randomTensor([outFeatures * inFeatures], &rng).scalars,
                              bias: Bool.random(using: &rng) ? randomTensor([outFeatures], &rng).scalars : nil)
        }) { c in
            let inFeatures = c.x.columns
            let (weight, heldWeight) = storedTensor("w", c.weightValues, shape: [c.outFeatures, inFeatures],
                                                    dtype: c.dtype, offset: c.weightOffset)
            let storedBias = c.bias.map { storedTensor("b", $0, shape: [c.outFeatures], dtype: c.dtype, offset: 1) }
            let y = linear(c.x, weight: weight, bias: storedBias?.0)
            let reference = ReferenceKernels.linear(c.x, weight: heldWeight, outFeatures: c.outFeatures, bias: storedBias?.1)
            expectClose(y, reference, Self.accumulation, "linear \(c)")
        }
    }

    @Test("a block of output features (streamed logits) equals those columns of the reference, any dtype and range")
    func outputBlockMatchesReference() async {
        await propertyCheck(count: 60, input: generator { rng in
            let tokens = pick([1, 2, 5], &rng), inFeatures = pick(testSizes + [65], &rng)
            let outFeatures = pick(Self.outFeatureChoices, &rng)
            let lower = Int.random(in: 0...outFeatures, using: &rng)
            let upper = Int.random(in: lower...outFeatures, using: &rng)
            return (LinearCase(x: randomTensor([tokens, inFeatures], &rng), outFeatures: outFeatures,
                               dtype: pick(DType.allCases, &rng), weightOffset: pick([0, 2], &rng),
                               weightValues: randomTensor([outFeatures * inFeatures], &rng).scalars, bias: nil),
                    lower..<upper, Int.random(in: 0...3, using: &rng))
        }) { input in
            let (c, outputs, padding) = input
            let (weight, heldWeight) = storedTensor("w", c.weightValues, shape: [c.outFeatures, c.x.columns],
                                                    dtype: c.dtype, offset: c.weightOffset)
            let reference = ReferenceKernels.linear(c.x, weight: heldWeight, outFeatures: c.outFeatures)
            // Row stride wider than the block: the padding must stay untouched.
            let ldo = outputs.count + padding
            var out = [Float](repeating: 12345, count: max(c.x.rows * ldo, 1))
            c.x.scalars.withUnsafeBufferPointer { xp in
                out.withUnsafeMutableBufferPointer { op in
                    linearInto(x: xp.baseAddress!, n: c.x.rows, weight: weight, outputs: outputs, out: op.baseAddress!, ldo: ldo)
                }
            }
            let block = (0..<c.x.rows).flatMap { r in out[(r * ldo)..<(r * ldo + outputs.count)] }
            let expected = (0..<c.x.rows).flatMap { r in outputs.map { reference.scalars[r * c.outFeatures + $0] } }
            expectClose(Tensor(shape: [c.x.rows, outputs.count], scalars: block),
                        Tensor(shape: [c.x.rows, outputs.count], scalars: expected), Self.accumulation,
                        "linear outputs \(outputs), ldo \(ldo), \(c)")
            let untouched = (0..<c.x.rows).allSatisfy { r in out[(r * ldo + outputs.count)..<(r * ldo + ldo)].allSatisfy { $0 == 12345 } }
            #expect(untouched, "padding written: \(c), outputs \(outputs)")
        }
    }

    @Test("a misaligned F32 weight has no zero-copy pointer and goes through the widening path")
    func misalignedF32() {
        var rng = SystemRandomNumberGenerator()
        let x = randomTensor([3, 5], &rng)
        let values = randomTensor([300 * 5], &rng).scalars
        let (aligned, _) = storedTensor("w", values, shape: [300, 5], dtype: .float32, offset: 0)
        let (misaligned, _) = storedTensor("w", values, shape: [300, 5], dtype: .float32, offset: 1)
        #expect(aligned.float32Pointer != nil)
        #expect(misaligned.float32Pointer == nil)
        let reference = ReferenceKernels.linear(x, weight: values, outFeatures: 300)
        expectClose(linear(x, weight: aligned, bias: nil), reference, Self.accumulation, "aligned F32 linear")
        expectClose(linear(x, weight: misaligned, bias: nil), reference, Self.accumulation, "misaligned F32 linear")
    }

    @Test("linear keeps a rank-1 input rank-1")
    func rankOne() {
        let (w, _) = storedTensor("w", [1, 2, 3, 4, 5, 6], shape: [3, 2], dtype: .float16)
        let y = linear(Tensor(shape: [2], scalars: [1, -1]), weight: w, bias: nil)
        #expect(y.shape == [3] && y.scalars == [-1, -1, -1])
        #expect(ReferenceKernels.linear(Tensor(shape: [2], scalars: [1, -1]), weight: [1, 2, 3, 4, 5, 6], outFeatures: 3) == y)
    }

    @Test("linear with no input features gives the bias")
    func emptyInner() {
        let x = Tensor(shape: [2, 0], scalars: [])
        let (w, _) = storedTensor("w", [], shape: [3, 0], dtype: .bfloat16)
        let (b, _) = storedTensor("b", [1, 2, 3], shape: [3], dtype: .float32)
        #expect(linear(x, weight: w, bias: b).scalars == [1, 2, 3, 1, 2, 3])
    }
}
