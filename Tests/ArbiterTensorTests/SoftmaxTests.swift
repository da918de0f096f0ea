// softmax, softmaxRows and logSoftmax against the Double reference, special values included.
import ArbiterTensor
import Foundation
import PropertyBased
import Testing

@Suite("Softmax")
struct SoftmaxTests {
    /// float32 softmax: each exp(x − max) is within ~2 ulp (x − max is exact for the entries that matter, those
    /// within a factor 2 of the max), the sum of ≤ 100 terms adds ≤ 100·ε relative, the division 1 ulp:
    /// ≲ 1e-5 relative worst case, measured ≤ 5e-7. atol covers tiny probabilities in float32 subnormals.
    static let probabilities = Tolerance(atol: 1e-7, rtol: 4e-6, nmse: 1e-10,
                                         reason: "float32 exp, sum over ≤ 100 terms and division: ~n·ε relative")
    /// Rows sum to 1 up to the float32 rounding of n ≤ 100 probabilities and their sum: n·ε ≈ 6e-6.
    static let rowSum: Float = 1e-5

    /// How one row of a random softmax case is filled.
    enum RowKind: CaseIterable { case moderate, large, someNegativeInfinity, allNegativeInfinity, nan, positiveInfinity }

    struct Case: Sendable, CustomStringConvertible {
        let x: Tensor
        var description: String { "x \(x.shape) \(x.scalars.prefix(8))…" }
    }

    static func randomCase(_ rng: inout SplitMix64, kinds: [RowKind] = RowKind.allCases) -> Case {
        let rows = pick([1, 2, 3, 7, 17], &rng), columns = pick(testSizes + [100], &rng)
        var scalars = [Float]()
        for _ in 0..<rows {
            var row = randomTensor([columns], in: -10...10, &rng).scalars
            switch pick(kinds, &rng) {
            case .moderate: break
            case .large: row = randomTensor([columns], in: -1e4...1e4, &rng).scalars
            case .someNegativeInfinity: for j in row.indices where Bool.random(using: &rng) { row[j] = -.infinity }
            case .allNegativeInfinity: row = [Float](repeating: -.infinity, count: columns)
            case .nan: row[Int.random(in: 0..<columns, using: &rng)] = .nan
            case .positiveInfinity: for j in row.indices where Int.random(in: 0..<3, using: &rng) == 0 { row[j] = .infinity }
            }
            scalars += row
        }
        return Case(x: Tensor(shape: [rows, columns], scalars: scalars))
    }

    /// Checks that `actual` is NaN on the reference's NaN rows, then returns both with those rows zeroed so
    /// that `compare` (for which any NaN fails) can judge the rest.
    static func separatingNaNRows(_ actual: Tensor, _ reference: Tensor, sourceLocation: SourceLocation = #_sourceLocation) -> (Tensor, Tensor) {
        var a = actual, r = reference
        for row in 0..<reference.rows where reference.row(row).contains(where: { $0.isNaN }) {
            let allNaN = isAllNaN(actual.row(row))
            #expect(allNaN, "row \(row) should be all NaN: \(Array(actual.row(row)))", sourceLocation: sourceLocation)
            for j in 0..<reference.columns { a.scalars[row * a.columns + j] = 0; r.scalars[row * r.columns + j] = 0 }
        }
        return (a, r)
    }

    @Test("softmax equals the reference on moderate, 1e4-large, -inf, all -inf, NaN and +inf rows")
    func softmaxMatchesReference() async {
        await propertyCheck(count: 100, input: generator { Self.randomCase(&$0) }) { c in
            let (y, reference) = Self.separatingNaNRows(softmax(c.x), ReferenceKernels.softmax(c.x))
            expectClose(y, reference, Self.probabilities, "softmax \(c)")
        }
    }

    @Test("softmax rows without NaN are non-negative and sum to 1 (or are all zero when fully masked)")
    func softmaxRowInvariants() async {
        await propertyCheck(count: 100, input: generator { Self.randomCase(&$0, kinds: [.moderate, .large, .someNegativeInfinity, .allNegativeInfinity, .positiveInfinity]) }) { c in
            let y = softmax(c.x)
            for r in 0..<y.rows {
                let row = y.row(r), input = c.x.row(r)
                // Predicates are computed outside `#expect`: with a closure inside `#expect(...)` here, Swift 6.3
                // ran that closure's body for the next closure below (macro closure-discriminator collision).
                let inUnitInterval = row.allSatisfy { $0 >= 0 && $0 <= 1 }
                #expect(inUnitInterval, "row \(r) has values outside [0, 1]")
                let sum = row.reduce(0, +)
                let fullyMasked = input.allSatisfy { $0 == -.infinity }
                if fullyMasked {
                    #expect(sum == 0, "fully masked row \(r) should be zeros")
                } else {
                    #expect(abs(sum - 1) <= Self.rowSum, "row \(r) sums to \(sum)")
                }
                for j in input.indices where input[j] == -.infinity { #expect(row[j] == 0, "masked entry \(r),\(j) is \(row[j])") }
            }
        }
    }

    @Test("softmaxRows with a row stride leaves the gaps between rows untouched")
    func softmaxRowsStride() async {
        await propertyCheck(count: 50, input: generator { rng -> (Case, Int) in
            (Self.randomCase(&rng, kinds: [.moderate, .someNegativeInfinity]), pick([0, 1, 5], &rng))
        }) { c, gap in
            let rows = c.x.rows, columns = c.x.columns, stride = columns + gap
            var padded = [Float](repeating: 42, count: rows * stride)
            for r in 0..<rows { for j in 0..<columns { padded[r * stride + j] = c.x.scalars[r * columns + j] } }
            padded.withUnsafeMutableBufferPointer { softmaxRows($0.baseAddress!, rows: rows, columns: columns, stride: stride) }
            var packed = [Float]()
            for r in 0..<rows {
                packed += padded[(r * stride)..<(r * stride + columns)]
                let gapUntouched = padded[(r * stride + columns)..<((r + 1) * stride)].allSatisfy { $0 == 42 }
                #expect(gapUntouched, "gap after row \(r) was written")
            }
            expectClose(Tensor(shape: c.x.shape, scalars: packed), ReferenceKernels.softmax(c.x), Self.probabilities, "strided softmax \(c)")
        }
    }

    @Test("pinned softmax values and special rows")
    func pinned() {
        // softmax([0, ln 3]) = [1, 3] / 4
        expectClose(softmax(Tensor(shape: [2], scalars: [0, Float(log(3.0))])), Tensor(shape: [2], scalars: [0.25, 0.75]),
                    Self.probabilities, "softmax [0, ln 3]")
        // Shift invariance at 1e4: the same as [0, 1, -1] (no overflow)
        let large = softmax(Tensor(shape: [3], scalars: [10_000, 10_001, 9_999]))
        let small = softmax(Tensor(shape: [3], scalars: [0, 1, -1]))
        expectClose(large, small, Self.probabilities, "softmax at 1e4 vs at 0")
        #expect(softmax(Tensor(shape: [2, 3], scalars: [-.infinity, -.infinity, -.infinity, -.infinity, 0, -.infinity])).scalars
                == [0, 0, 0, 0, 1, 0])
        #expect(softmax(Tensor(shape: [4], scalars: [.infinity, 0, .infinity, -.infinity])).scalars == [0.5, 0, 0.5, 0])
        #expect(isAllNaN(softmax(Tensor(shape: [3], scalars: [1, .nan, -.infinity])).scalars))
        #expect(softmax(Tensor(shape: [1], scalars: [-3])).scalars == [1])
    }

    /// log-softmax output is x − (max + log Σ): float32 rounds that shift to ulp(|max|), so the error is
    /// ~2·ulp of the input magnitude: 2e-6 for |x| ≤ 10, 2e-3 for |x| ≤ 1e4 (the same as torch's float32).
    static let logProbabilitiesModerate = Tolerance(atol: 2e-6, rtol: 1e-6, nmse: 1e-10,
                                                    reason: "x − (max + log Σ) rounded at ulp(10) ≈ 1e-6")
    static let logProbabilitiesLarge = Tolerance(atol: 2e-3, rtol: 1e-6, nmse: 1e-10,
                                                 reason: "x − (max + log Σ) rounded at ulp(1e4) ≈ 1e-3")

    @Test("logSoftmax equals the reference (moderate and 1e4-large rows, -inf entries, undefined rows NaN)")
    func logSoftmaxMatchesReference() async {
        await propertyCheck(count: 100, input: generator { Self.randomCase(&$0) }) { c in
            let (y, reference) = Self.separatingNaNRows(logSoftmax(c.x), ReferenceKernels.logSoftmax(c.x))
            let magnitude = c.x.scalars.filter(\.isFinite).map(abs).max() ?? 0
            expectClose(y, reference, magnitude > 10 ? Self.logProbabilitiesLarge : Self.logProbabilitiesModerate, "logSoftmax \(c)")
        }
    }

    @Test("pinned logSoftmax values (torch 2.13 float32) and torch's special-value behaviour")
    func logSoftmaxPinned() {
        // torch.log_softmax(torch.tensor([-inf, 0., 1.]), -1) = [-inf, -1.31326162815094, -0.31326165795326233]
        let y = logSoftmax(Tensor(shape: [3], scalars: [-.infinity, 0, 1]))
        expectClose(y, Tensor(shape: [3], scalars: [-.infinity, -1.31326162815094, -0.31326165795326233]),
                    Self.logProbabilitiesModerate, "logSoftmax [-inf, 0, 1]")
        // torch gives NaN rows for [-inf, -inf], [inf, 0] and [nan, 0]
        for row: [Float] in [[-.infinity, -.infinity], [.infinity, 0], [.nan, 0]] {
            #expect(isAllNaN(logSoftmax(Tensor(shape: [2], scalars: row)).scalars), "logSoftmax \(row)")
            #expect(isAllNaN(ReferenceKernels.logSoftmax(Tensor(shape: [2], scalars: row)).scalars), "reference logSoftmax \(row)")
        }
    }
}
