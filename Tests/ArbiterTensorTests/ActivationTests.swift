// Activations against their exact formulas in Double.
import ArbiterTensor
import PropertyBased
import Testing

@Suite("Activations")
struct ActivationTests {
    /// float32 expf/erff/tanhf are within ~2 ulp (rtol 1e-6 ≈ 8 ulp); where the formula cancels (1 + tanh or
    /// 1 + erf near −1 for negative inputs) the absolute error is ~|x|·ulp(1)/2 until 1 + tanh rounds to 0:
    /// ≲ 1e-7 for |x| ≤ 20, more for |x| up to 1e3 (the same as torch's float32 kernels).
    static let elementwise = Tolerance(atol: 3e-7, rtol: 1e-6, nmse: 1e-10,
                                       reason: "float32 libm within a few ulp; cancellation near −1 gives |x|·ε")
    static let largeInputs = Tolerance(atol: 1e-5, rtol: 1e-6, nmse: 1e-10,
                                       reason: "as elementwise, with |x| up to 1e3: cancellation error |x|·ε/2 ≈ 6e-5")

    struct Case: Sendable, CustomStringConvertible {
        let activation: Activation, x: Tensor
        var description: String { "\(activation.rawValue) on \(x.shape)" }
    }

    @Test("every activation equals its formula in Double", arguments: Activation.allCases)
    func matchesReference(activation: Activation) async {
        await propertyCheck(count: 30, input: generator { rng in
            Case(activation: activation, x: randomTensor([pick(testSizes, &rng), pick([16, 17, 33], &rng)],
                                                         in: pick([-1...1, -20...20], &rng), &rng))
        }) { c in
            var y = c.x
            c.activation.apply(&y)
            expectClose(y, ReferenceKernels.activation(c.activation, c.x), Self.elementwise, "\(c)")
            let scalarForm = c.x.scalars.map { c.activation($0) }
            #expect(y.scalars == scalarForm, "apply differs from the scalar form")
        }
        var rng = SplitMix64(seed: 7)
        let large = randomTensor([1000], in: -1000...1000, &rng)
        var y = large
        activation.apply(&y)
        expectClose(y, ReferenceKernels.activation(activation, large), Self.largeInputs, "\(activation.rawValue) on |x| ≤ 1e3")
    }

    @Test("pinned activation values")
    func pinned() {
        // Values from Python's math module: x·σ(x), 0.5x(1+erf(x/√2)), 0.5x(1+tanh(√(2/π)(x+0.044715x³))), x·σ(1.702x)
        let expected: [(Activation, Float, Double)] = [
            (.silu, 1, 0.7310585786300049), (.swish, -2, -0.2384058440442351),
            (.gelu, 1, 0.8413447460685429), (.geluPytorchTanh, 1, 0.8411919906082768), (.geluNew, -1, -0.15880800939172324),
            (.quickGelu, 1, 0.8457957659328212), (.relu, -3, 0), (.relu, 2.5, 2.5),
        ]
        for (activation, x, y) in expected {
            #expect(abs(Double(activation(x)) - y) <= 1e-6, "\(activation.rawValue)(\(x)) = \(activation(x)), want \(y)")
            #expect(abs(ReferenceKernels.activation(activation, Double(x)) - y) <= 1e-12)
        }
    }

    @Test("activation names parse as in config.json and unknown names throw")
    func names() throws {
        #expect(try Activation(named: "gelu_pytorch_tanh") == .geluPytorchTanh)
        #expect(try Activation(named: "silu") == .silu)
        #expect(throws: TensorError.self) { try Activation(named: "mish") }
    }
}
