// VectorExp against exp in Double: ulp error over a dense sweep of the whole normal range, the special
// values, and the lane independence the softmax and activations rely on.
import ArbiterTensor
import CKernels
import Foundation
import PropertyBased
import Testing

@Suite("VectorExp")
struct VectorExpTests {
    /// Error in units in the last place of the correctly rounded float32 result.
    static func ulpError(_ y: Float, _ x: Float) -> Double {
        let exact = Foundation.exp(Double(x))
        let rounded = Float(exact)
        return abs(Double(y) - exact) / Double(rounded.ulp)
    }

    /// Cephes' expf polynomial with a two-part ln 2: measured worst 0.96 ulp (x ≈ 4.54); 1.5 leaves room for
    /// the last-bit differences of FMA contraction on other targets.
    static let maximumUlp = 1.5

    @Test("≤ 1.5 ulp over every 97th float of the normal range [−87.3, 88.7]")
    func denseSweep() {
        let lower = Float(-87.33), upper = Float(88.72)
        var worst = 0.0, worstX: Float = 0
        var lanes = SIMD8<Float>(), filled = 0
        func flush() {
            let y = VectorExp.exp(lanes)
            for i in 0..<filled {
                let e = Self.ulpError(y[i], lanes[i])
                if e > worst { worst = e; worstX = lanes[i] }
            }
            filled = 0
        }
        // Walk the bit patterns of both signs: negative floats from −0 down to `lower`, positive up to `upper`.
        for (start, end) in [(Float(0).bitPattern, upper.bitPattern), ((-Float(0)).bitPattern, lower.bitPattern)] {
            var bits = start
            while bits <= end {
                lanes[filled] = Float(bitPattern: bits)
                filled += 1
                if filled == 8 { flush() }
                bits &+= 97
            }
        }
        flush()
        #expect(worst <= Self.maximumUlp, "worst \(worst) ulp at x = \(worstX)")
    }

    @Test("special values: ±inf, NaN, overflow edge and the subnormal range")
    func specialValues() {
        let x = SIMD8<Float>(-.infinity, .infinity, .nan, 88.8, -90, -1000, 0, 1)
        let y = VectorExp.exp(x)
        #expect(y[0] == 0)
        #expect(y[1] == .infinity)
        #expect(y[2].isNaN)
        #expect(y[3] == .infinity)
        #expect(y[5] == 0)
        #expect(y[6] == 1)
        #expect(Self.ulpError(y[7], 1) <= Self.maximumUlp)
        #expect(VectorExp.exp(Float(88.72)).isFinite)
        // Subnormal results: within one step of the smallest subnormal of exp in Double.
        let step = Double(Float.leastNonzeroMagnitude)
        var worst = 0.0
        for x in stride(from: Float(-87.4), through: -104, by: -0.0625) {
            worst = max(worst, abs(Double(VectorExp.exp(x)) - Foundation.exp(Double(x))) / step)
        }
        #expect(y[4] > 0 && worst <= 1, "subnormal error \(worst) steps")
        #expect(VectorExp.exp(Float(-104)) == 0)
    }

    @Test("a lane's result does not depend on the other lanes; the scalar form equals the lanes")
    func laneIndependence() async {
        await propertyCheck(count: 200, input: generator { rng in
            (0..<9).map { _ in Float.random(in: -100...100, using: &rng) }
        }) { values in
            let lanes = SIMD8<Float>(values[0..<8])
            let y = VectorExp.exp(lanes)
            var shuffled = lanes
            shuffled[3] = values[8]
            let y2 = VectorExp.exp(shuffled)
            var agree = true
            for i in 0..<8 where i != 3 { agree = agree && y[i].bitPattern == y2[i].bitPattern }
            let scalarAgrees = (0..<8).allSatisfy { VectorExp.exp(values[$0]).bitPattern == y[$0].bitPattern }
            #expect(agree)
            #expect(scalarAgrees)
        }
    }

    @Test("expShifted: in-place e^(x − shift) for any count, with the padded tail summing to the same total")
    func expShifted() async {
        await propertyCheck(count: 100, input: generator { rng in
            (0..<pick([1, 3, 7, 8, 9, 17, 100], &rng)).map { _ in Float.random(in: -30...5, using: &rng) }
        }) { values in
            var out = values
            let shift: Float = 5
            let sum = out.withUnsafeMutableBufferPointer { VectorExp.expShifted($0.baseAddress!, count: $0.count, shift: shift) }
            let exact = values.map { Foundation.exp(Double($0 - shift)) }
            let worst = zip(out, exact).map { abs(Double($0) - $1) / max($1, 1e-30) }.max() ?? 0
            let sumError = abs(Double(sum) - exact.reduce(0, +)) / exact.reduce(0, +)
            #expect(worst <= 3e-7, "relative error \(worst)")
            #expect(sumError <= 1e-6, "sum relative error \(sumError)")
        }
    }

    /// Every 7th float of both signs over [−120, 100] plus the special values, as 8-lane batches.
    static let sweep: [Float] = {
        var values: [Float] = [-.infinity, .infinity, .nan, -0.0, 0, 88.72, 88.73, -103.9, -104, -110, -111, 89, 90,
                               .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude]
        for (start, end) in [(Float(0).bitPattern, Float(100).bitPattern), ((-Float(0)).bitPattern, Float(-120).bitPattern)] {
            var bits = start
            while bits <= end { values.append(Float(bitPattern: bits)); bits &+= 7919 }
        }
        return values
    }()

    /// The C kernels: what this CPU runs (AVX2 here) and the baseline build other CPUs run.
    static let cKernels: [(String, @Sendable (UnsafeMutablePointer<Float>, Int, Float) -> Float)] = [
        ("dispatched (\(VectorExp.kernelVariant))", { VectorExp.expShifted($0, count: $1, shift: $2) }),
        ("baseline", { arbiter_exp_shifted_baseline($0, $1, $2) }),
    ]

    @Test("the C kernels (AVX2 and baseline builds) are bit-identical to the Swift SIMD8 exp, specials included")
    func cKernelsEqualSwiftReference() {
        #expect(["avx2", "baseline"].contains(VectorExp.kernelVariant))
        let values = Self.sweep
        for (name, kernel) in Self.cKernels {
            var out = values
            _ = out.withUnsafeMutableBufferPointer { kernel($0.baseAddress!, $0.count, 0) }
            var mismatches: [(Float, Float, Float)] = []
            for (i, x) in values.enumerated() {
                let reference = VectorExp.exp(x)
                let same = reference.bitPattern == out[i].bitPattern || (reference.isNaN && out[i].isNaN)
                if !same && mismatches.count < 5 { mismatches.append((x, out[i], reference)) }
            }
            #expect(mismatches.isEmpty, "\(name) kernel: (x, C, Swift) \(mismatches)")
            // The sum: eight lane sums, then the lanes in order, as the Swift reference.
            let finite = values.filter { $0.isFinite && $0 < 80 && $0 > -120 }
            var lanes = SIMD8<Float>(repeating: 0)
            var chunk = [Float]()
            for x in finite + Array(repeating: -.infinity, count: (8 - finite.count % 8) % 8) {
                chunk.append(x)
                if chunk.count == 8 { lanes += VectorExp.exp(SIMD8(chunk)); chunk = [] }
            }
            var expected: Float = 0
            for lane in 0..<8 { expected += lanes[lane] }
            var copy = finite
            let sum = copy.withUnsafeMutableBufferPointer { kernel($0.baseAddress!, $0.count, 0) }
            #expect(sum.bitPattern == expected.bitPattern, "\(name): sum \(sum) vs \(expected)")
        }
    }

    @Test("the baseline build of the SiLU kernel equals the dispatched one bit for bit")
    func sigmoidBaselineEqualsDispatched() async {
        await propertyCheck(count: 40, input: generator { rng in
            (0..<pick([1, 7, 8, 9, 33], &rng)).map { _ in Float.random(in: -40...40, using: &rng) }
        }) { values in
            for k: Float in [1, 1.702] {
                let factor = values.map { 1 - $0 / 8 }
                var dispatched = values, baseline = values
                dispatched.withUnsafeMutableBufferPointer { VectorExp.sigmoidScaled($0.baseAddress!, factor: factor, count: $0.count, k: k) }
                baseline.withUnsafeMutableBufferPointer { arbiter_sigmoid_scaled_baseline($0.baseAddress!, factor, $0.count, k) }
                #expect(dispatched.map(\.bitPattern) == baseline.map(\.bitPattern), "k \(k)")
            }
        }
    }

    @Test("SiLU, the gated unit and quick_gelu in C equal the scalar activation bit for bit, any count and offset")
    func activationKernelsEqualScalar() async {
        await propertyCheck(count: 60, input: generator { rng in
            (0..<pick([1, 5, 8, 13, 64, 101], &rng)).map { _ in Float.random(in: -30...30, using: &rng) }
        }) { values in
            for activation in [Activation.silu, .quickGelu] {
                var x = Tensor(shape: [values.count], scalars: values)
                activation.apply(&x)
                let up = values.map { $0 * 0.5 - 1 }
                var gate = Tensor(shape: [values.count], scalars: values)
                activation.applyGated(&gate, up: Tensor(shape: [values.count], scalars: up))
                for i in values.indices {
                    let reference = activation(values[i])
                    #expect(x.scalars[i].bitPattern == reference.bitPattern, "\(activation) at \(values[i])")
                    #expect(gate.scalars[i].bitPattern == (reference * up[i]).bitPattern, "gated \(activation) at \(values[i])")
                }
            }
        }
        // Specials go through the same formula: NaN stays NaN, −inf gives −0·… = NaN as x/(1+inf) = −inf/inf.
        var specials = Tensor(shape: [4], scalars: [.nan, .infinity, -.infinity, 0])
        Activation.silu.apply(&specials)
        let reference = [Float.nan, .infinity, -.infinity, 0].map { Activation.silu($0) }
        #expect(zip(specials.scalars, reference).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) })
    }
}

@Suite("C softmax row")
struct CSoftmaxTests {
    @Test("the AVX2 and baseline builds of the softmax row are bit-identical on rows with every special value")
    func buildsAgree() async {
        await propertyCheck(count: 150, input: generator { rng in
            SoftmaxTests.randomCase(&rng).x.scalars + (Bool.random(using: &rng) ? [-.infinity, -.infinity] : [])
        }) { row in
            var dispatched = row, baseline = row
            dispatched.withUnsafeMutableBufferPointer { softmaxRows($0.baseAddress!, rows: 1, columns: $0.count) }
            baseline.withUnsafeMutableBufferPointer { arbiter_softmax_row_baseline($0.baseAddress!, $0.count) }
            #expect(dispatched.map(\.bitPattern) == baseline.map(\.bitPattern) || zip(dispatched, baseline).allSatisfy {
                $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN)
            }, "\(VectorExp.kernelVariant) vs baseline on \(row.prefix(10))…")
        }
    }

    /// The softmax of a row whose entries from `valid` on are −inf, as the kernel defines it: the maximum of
    /// the valid prefix, e^(x − max) by the Swift `SIMD8` exp eight lanes at a time with the last group
    /// padded with −inf, the lane sums added in lane order, every value times 1/sum, the masked entries 0.
    static func paddedReference(_ row: [Float], valid: Int) -> [Float] {
        let maximum = row[..<valid].max()!
        var out = [Float](repeating: 0, count: row.count), lanes = SIMD8<Float>(repeating: 0)
        for start in stride(from: 0, to: valid, by: 8) {
            var group = SIMD8<Float>(repeating: -.infinity)
            for j in start..<min(start + 8, valid) { group[j - start] = row[j] }
            let e = VectorExp.exp(group - SIMD8(repeating: maximum))
            for j in start..<min(start + 8, valid) { out[j] = e[j - start] }
            lanes += e
        }
        var total: Float = 0
        for lane in 0..<8 { total += lanes[lane] }
        let inverse = 1 / total
        for j in 0..<valid { out[j] *= inverse }
        return out
    }

    @Test("causally masked rows of every length and mask position equal the padded Swift reference bit for bit")
    func maskedRowsEqualPaddedReference() {
        // The kernel runs its vector loops over the masked tail up to the next multiple of 8 when the row
        // has it (instead of copying a padded group): every split of a row into valid prefix and −inf tail.
        var rng = SplitMix64(seed: 7)
        for columns in 1...41 {
            let row = (0..<columns).map { _ in Float.random(in: -12...12, using: &rng) }
            for valid in 1...columns {
                let masked = Array(row[..<valid]) + [Float](repeating: -.infinity, count: columns - valid)
                let reference = Self.paddedReference(masked, valid: valid)
                var dispatched = masked, baseline = masked
                dispatched.withUnsafeMutableBufferPointer { softmaxRows($0.baseAddress!, rows: 1, columns: columns) }
                baseline.withUnsafeMutableBufferPointer { arbiter_softmax_row_baseline($0.baseAddress!, columns) }
                #expect(dispatched.map(\.bitPattern) == reference.map(\.bitPattern), "\(VectorExp.kernelVariant), \(valid) of \(columns) valid")
                #expect(baseline.map(\.bitPattern) == reference.map(\.bitPattern), "baseline, \(valid) of \(columns) valid")
            }
        }
    }

    /// A random `[H, T, S]` score block (S ≥ T) with the special values of `SoftmaxTests.randomCase` in some
    /// rows, and garbage (NaN, ±inf, huge values) in the entries a causal mask hides.
    static func randomScores(_ rng: inout SplitMix64) -> (scores: Tensor, offset: Int) {
        let heads = pick([1, 2, 3], &rng), t = pick([1, 2, 5, 9, 16, 17], &rng), offset = pick([0, 0, 1, 7, 20], &rng)
        let s = t + offset
        var scalars = [Float]()
        for _ in 0..<(heads * t) {
            var row = (0..<s).map { _ in Float.random(in: -12...12, using: &rng) }
            switch Int.random(in: 0..<8, using: &rng) {
            case 0: row[Int.random(in: 0..<s, using: &rng)] = .nan
            case 1: for j in row.indices where Bool.random(using: &rng) { row[j] = -.infinity }
            case 2: for j in row.indices where Int.random(in: 0..<3, using: &rng) == 0 { row[j] = .infinity }
            case 3: row = [Float](repeating: -.infinity, count: s)
            default: break
            }
            scalars += row
        }
        var x = Tensor(shape: [heads, t, s], scalars: scalars)
        for r in 0..<(heads * t) {
            for j in (r % t + offset + 1)..<s {
                x.scalars[r * s + j] = pick([.nan, .infinity, -.infinity, 3e38, 0], &rng)
            }
        }
        return (x, offset)
    }

    @Test("the causal pattern (AVX2 and baseline builds) equals the masked softmax bit for bit, specials included")
    func causalPatternEqualsMaskedSoftmax() async {
        // Same operations in the same order as the row kernel on the masked row (the masked tail adds e^−inf = 0
        // to the lane sums, which changes no bit), so no tolerance: any difference is a bug.
        await propertyCheck(count: 200, input: generator { Self.randomScores(&$0) }) { scores, offset in
            var masked = scores
            applyCausalMask(&masked, queryOffset: offset)
            let reference = softmax(masked)
            var dispatched = scores, baseline = scores
            causalAttentionPattern(inPlace: &dispatched, queryOffset: offset)
            baseline.scalars.withUnsafeMutableBufferPointer {
                arbiter_softmax_causal_baseline($0.baseAddress!, 0, scores.rows, scores.shape[1], scores.shape[2],
                                                offset)
            }
            func same(_ a: Tensor, _ b: Tensor) -> Bool {
                zip(a.scalars, b.scalars).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
            }
            #expect(same(dispatched, reference), "\(VectorExp.kernelVariant): \(scores.shape), offset \(offset)")
            #expect(same(baseline, reference), "baseline: \(scores.shape), offset \(offset)")
            // And the masked softmax is the Double reference's up to float32 rounding.
            let (y, expected) = SoftmaxTests.separatingNaNRows(dispatched, ReferenceKernels.softmax(masked))
            expectClose(y, expected, SoftmaxTests.probabilities, "causal pattern \(scores.shape)")
        }
    }
}
