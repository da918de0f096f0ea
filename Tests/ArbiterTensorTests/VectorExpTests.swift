// VectorExp against exp in Double: ulp error over a dense sweep of the whole normal range, the special
// values, and the lane independence the softmax and activations rely on.
import ArbiterTensor
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
}
