// rmsNorm and layerNorm against the Double reference, with stored weights in every dtype.
import ArbiterTensor
import PropertyBased
import Testing

@Suite("Normalization")
struct NormalizationTests {
    /// Sums are accumulated in Double, so the only float32 errors are a few roundings per element
    /// (scale, x·scale, w·(…)): ≲ 4 ulp relative.
    static let normalized = Tolerance(atol: 2e-7, rtol: 1e-6, nmse: 1e-10,
                                      reason: "Double accumulation, ≲ 4 float32 roundings per element")
    /// A unit-weight RMSNorm output has RMS sqrt(ms / (ms + eps)); with ms ≥ 1e-2 and eps ≤ 1e-5 that is
    /// within 5e-4 of 1, plus float32 rounding.
    static let unitRMS: Float = 1e-3

    struct Case: Sendable, CustomStringConvertible {
        let x: Tensor, weight: [Float], bias: [Float]?, dtype: DType, eps: Float
        var description: String { "x \(x.shape), \(dtype.rawValue) weight, bias \(bias != nil), eps \(eps)" }
    }

    static func randomCase(_ rng: inout SplitMix64, unitWeight: Bool = false) -> Case {
        let rows = pick([1, 2, 3, 7], &rng), columns = pick(testSizes + [65, 128], &rng)
        let range: ClosedRange<Float> = pick([-1...1, -10...10, -1000...1000, 99...101], &rng)
        return Case(x: randomTensor(Bool.random(using: &rng) ? [rows, columns] : [2, rows, columns], in: range, &rng),
                    weight: unitWeight ? [Float](repeating: 1, count: columns) : randomTensor([columns], in: -2...2, &rng).scalars,
                    bias: unitWeight || Bool.random(using: &rng) ? nil : randomTensor([columns], &rng).scalars,
                    dtype: pick(DType.allCases, &rng), eps: pick([1e-5, 1e-6], &rng))
    }

    @Test("rmsNorm equals the reference")
    func rmsNormMatchesReference() async {
        await propertyCheck(count: 80, input: generator { Self.randomCase(&$0) }) { c in
            let (w, held) = storedTensor("norm.weight", c.weight, shape: [c.x.columns], dtype: c.dtype, offset: 1)
            expectClose(rmsNorm(c.x, weight: w, eps: c.eps),
                        ReferenceKernels.rmsNorm(c.x, weight: held, eps: Double(c.eps)), Self.normalized, "rmsNorm \(c)")
        }
    }

    @Test("rmsNorm of a row is the same bits alone and stacked with any number of other rows")
    func rmsNormRowIndependent() async {
        // Rows are normalised four at a time; each row's result must not depend on its neighbours (a batch
        // of stacked runs must give every run the bits it gets alone).
        await propertyCheck(count: 40, input: generator { rng in
            randomTensor([pick([1, 3, 4, 5, 8, 9, 13], &rng), pick([1, 7, 64, 65, 128], &rng)], in: -50...50, &rng)
        }) { x in
            let (w, _) = storedTensor("norm.weight", (0..<x.columns).map { 1 + Float($0 % 5) / 8 }, shape: [x.columns], dtype: .float32)
            let stacked = rmsNorm(x, weight: w, eps: 1e-6)
            for r in 0..<x.rows {
                let alone = rmsNorm(Tensor(shape: [1, x.columns], scalars: Array(x.row(r))), weight: w, eps: 1e-6)
                #expect(Array(stacked.row(r)).map(\.bitPattern) == alone.scalars.map(\.bitPattern), "row \(r) of \(x.shape)")
            }
        }
    }

    @Test("rmsNorm with unit weight gives rows of RMS ≈ 1")
    func rmsNormUnitRMS() async {
        await propertyCheck(count: 50, input: generator { Self.randomCase(&$0, unitWeight: true) }) { c in
            let (w, _) = storedTensor("norm.weight", c.weight, shape: [c.x.columns], dtype: .float32)
            let y = rmsNorm(c.x, weight: w, eps: c.eps)
            for r in 0..<y.rows {
                let meanSquare = c.x.row(r).reduce(0.0) { $0 + Double($1) * Double($1) } / Double(c.x.columns)
                guard meanSquare >= 1e-2 else { continue }
                let rms = (y.row(r).reduce(0.0) { $0 + Double($1) * Double($1) } / Double(y.columns)).squareRoot()
                #expect(abs(Float(rms) - 1) <= Self.unitRMS, "row \(r) has RMS \(rms)")
            }
        }
    }

    @Test("layerNorm equals the reference, with and without bias, including rows with a large mean")
    func layerNormMatchesReference() async {
        await propertyCheck(count: 80, input: generator { Self.randomCase(&$0) }) { c in
            let columns = c.x.columns
            let (w, heldW) = storedTensor("ln.weight", c.weight, shape: [columns], dtype: c.dtype)
            let bias = c.bias.map { storedTensor("ln.bias", $0, shape: [columns], dtype: c.dtype, offset: 2) }
            expectClose(layerNorm(c.x, weight: w, bias: bias?.0, eps: c.eps),
                        ReferenceKernels.layerNorm(c.x, weight: heldW, bias: bias?.1, eps: Double(c.eps)),
                        Self.normalized, "layerNorm \(c)")
        }
    }

    @Test("layerNorm with unit weight and no bias gives rows of mean 0 and variance ≈ 1")
    func layerNormMoments() async {
        await propertyCheck(count: 50, input: generator { Self.randomCase(&$0, unitWeight: true) }) { c in
            guard c.x.columns > 1 else { return }
            let (w, _) = storedTensor("ln.weight", c.weight, shape: [c.x.columns], dtype: .float32)
            let y = layerNorm(c.x, weight: w, bias: nil, eps: c.eps)
            for r in 0..<y.rows {
                let xs = c.x.row(r).map(Double.init)
                let xMean = xs.reduce(0, +) / Double(xs.count)
                guard xs.map({ ($0 - xMean) * ($0 - xMean) }).reduce(0, +) / Double(xs.count) >= 1e-2 else { continue }
                let ys = y.row(r).map(Double.init)
                let mean = ys.reduce(0, +) / Double(ys.count)
                let variance = ys.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(ys.count)
                #expect(abs(mean) <= 1e-5, "row \(r) has mean \(mean)")
                #expect(abs(variance - 1) <= Double(Self.unitRMS), "row \(r) has variance \(variance)")
            }
        }
    }

    @Test("pinned: rmsNorm([3, 4]) = [3, 4] / sqrt(12.5); layerNorm([1, 2, 3]) = [-√1.5, 0, √1.5]")
    func pinned() {
        let (w2, _) = storedTensor("w", [1, 2], shape: [2], dtype: .float32)
        expectClose(rmsNorm(Tensor(shape: [1, 2], scalars: [3, 4]), weight: w2, eps: 0),
                    Tensor(shape: [1, 2], scalars: [Float(3 / 12.5.squareRoot()), Float(8 / 12.5.squareRoot())]),
                    Self.normalized, "rmsNorm [3, 4]")
        let (w3, _) = storedTensor("w", [1, 1, 1], shape: [3], dtype: .float32)
        let (b3, _) = storedTensor("b", [0, 5, 0], shape: [3], dtype: .float32)
        expectClose(layerNorm(Tensor(shape: [3], scalars: [1, 2, 3]), weight: w3, bias: b3, eps: 0),
                    Tensor(shape: [3], scalars: [-Float(1.5.squareRoot()), 5, Float(1.5.squareRoot())]),
                    Self.normalized, "layerNorm [1, 2, 3]")
    }
}
