// compare(_:to:tolerance:label:) itself: the judge of every other test must be right.
import ArbiterTensor
import PropertyBased
import Testing

@Suite("Comparison")
struct ComparisonTests {
    static let strict = Tolerance(atol: 1e-3, rtol: 0, nmse: 1, reason: "test tolerance")

    static func vector(_ values: [Float]) -> Tensor { Tensor(shape: [values.count], scalars: values) }

    @Test("any NaN fails, on either side, even when both are NaN")
    func nanFails() {
        for (a, r): ([Float], [Float]) in [([.nan, 1], [0, 1]), ([0, 1], [0, .nan]), ([.nan], [.nan])] {
            let report = compare(Self.vector(a), to: Self.vector(r), tolerance: Self.strict, label: "nan")
            #expect(!report.passed && report.nanCount == 1 && report.violations == 1, "\(report)")
        }
    }

    @Test("infinities must agree in sign; matching infinities pass")
    func infinities() {
        #expect(compare(Self.vector([.infinity, -.infinity, 1]), to: Self.vector([.infinity, -.infinity, 1]),
                        tolerance: Self.strict, label: "same").passed)
        for (a, r): (Float, Float) in [(.infinity, -.infinity), (-.infinity, .infinity), (.infinity, 1e30), (3, -.infinity)] {
            let report = compare(Self.vector([a]), to: Self.vector([r]), tolerance: Self.strict, label: "inf")
            #expect(!report.passed && report.violations == 1 && report.maxAbsoluteDifference == .infinity, "\(report)")
        }
    }

    @Test("violations count elements beyond atol + rtol·|reference|")
    func violationCounting() {
        let tolerance = Tolerance(atol: 0.1, rtol: 0.1, nmse: 1, reason: "test")
        // allowed: 0.1 + 0.1·|r| → r = 0: 0.1, r = 10: 1.1, r = -5: 0.6
        let reference = Self.vector([0, 0, 10, 10, -5, -5])
        let actual = Self.vector([0.09, 0.11, 11.05, 11.2, -5.5, -4.3])
        let report = compare(actual, to: reference, tolerance: tolerance, label: "count")
        #expect(report.violations == 3 && !report.passed, "\(report)")
        #expect(compare(Self.vector([0.09, 11.05, -5.5]), to: Self.vector([0, 10, -5]), tolerance: tolerance, label: "ok").passed)
    }

    @Test("NMSE is Σ(a−r)²/Σr² and is checked on its own")
    func nmse() {
        let report = compare(Self.vector([1, 2, 3]), to: Self.vector([1, 2, 4]),
                             tolerance: Tolerance(atol: 2, nmse: 0.05, reason: "test"), label: "nmse")
        #expect(abs(report.nmse - 1.0 / 21.0) < 1e-12)
        #expect(report.violations == 0 && report.passed)
        let tight = compare(Self.vector([1, 2, 3]), to: Self.vector([1, 2, 4]),
                            tolerance: Tolerance(atol: 2, nmse: 0.04, reason: "test"), label: "nmse")
        #expect(tight.violations == 0 && !tight.passed, "NMSE above its bound must fail alone")
        // An all-zero reference: 0 when equal, infinite otherwise.
        #expect(compare(Self.vector([0, 0]), to: Self.vector([0, 0]), tolerance: Self.strict, label: "zeros").nmse == 0)
        #expect(compare(Self.vector([0, 1e-4]), to: Self.vector([0, 0]), tolerance: Self.strict, label: "zeros").nmse == .infinity)
    }

    @Test("worst elements are the largest differences, in decreasing order, with multi-indices")
    func worstOrdering() async {
        await propertyCheck(count: 50, input: generator { rng in
            randomTensor([pick([1, 2, 3], &rng), pick([1, 4, 7], &rng)], &rng)
        }) { reference in
            var rng = SplitMix64(seed: UInt64(reference.count))
            let actual = Tensor(shape: reference.shape, scalars: reference.scalars.map { $0 + Float.random(in: -1...1, using: &rng) })
            let report = compare(actual, to: reference, tolerance: Self.strict, label: "worst")
            let differences = zip(actual.scalars, reference.scalars).map { abs($0 - $1) }
            let expected = differences.filter { $0 > 0 }.sorted(by: >).prefix(5)
            let worst = report.worst.map(\.difference)
            #expect(worst == Array(expected), "\(worst) vs \(Array(expected))")
            #expect(report.maxAbsoluteDifference == differences.max())
            for element in report.worst {
                let flat = zip(element.index, reference.shape).reduce(0) { $0 * $1.1 + $1.0 }
                #expect(element.actual == actual.scalars[flat] && element.reference == reference.scalars[flat])
            }
            let violations = differences.filter { $0 > Self.strict.atol }.count
            #expect(report.violations == violations && report.passed == (violations == 0))
        }
    }

    @Test("equal finite tensors pass with zero tolerance; shape mismatches fail")
    func identityAndShapes() async {
        await propertyCheck(count: 30, input: generator { randomTensor([pick(testSizes, &$0)], in: -1e30...1e30, &$0) }) { x in
            let report = compare(x, to: x, tolerance: Tolerance(atol: 0, nmse: 0, reason: "identical"), label: "self")
            #expect(report.passed && report.maxAbsoluteDifference == 0 && report.worst.isEmpty, "\(report)")
        }
        let report = compare(Tensor(zeros: [2, 3]), to: Tensor(zeros: [3, 2]), tolerance: Self.strict, label: "shape")
        #expect(!report.passed && !report.shapeMatches)
        #expect(report.description.contains("shape [2, 3] differs from reference [3, 2]"))
    }

    @Test("a failing report names the label, the tolerance's reason and the worst element")
    func description() {
        let report = compare(Tensor(shape: [1, 2], scalars: [0, 5]), to: Tensor(shape: [1, 2], scalars: [0, 4]),
                             tolerance: Tolerance(atol: 0.5, nmse: 1, reason: "why this bound"), label: "blocks.0.hook_attn_out")
        let text = report.description
        #expect(text.contains("blocks.0.hook_attn_out") && text.contains("MISMATCH") && text.contains("why this bound"))
        #expect(text.contains("[0, 1] got 5.0 want 4.0"), "\(text)")
    }
}
