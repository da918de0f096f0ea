// Elementwise activations named as in transformers' ACT2FN.
import Foundation

public enum Activation: String, Sendable, Codable, CaseIterable {
    case silu
    case swish
    case gelu                  // exact, erf-based
    case geluPytorchTanh = "gelu_pytorch_tanh"
    case geluNew = "gelu_new"  // tanh approximation
    case quickGelu = "quick_gelu"
    case relu

    /// Applies the activation to one value.
    @inline(__always)
    public func callAsFunction(_ x: Float) -> Float {
        switch self {
        case .silu, .swish: return x / (1 + VectorExp.exp(-x))
        case .gelu: return 0.5 * x * (1 + erff(x * 0.70710678118654752))
        case .geluPytorchTanh, .geluNew:
            let inner: Float = 0.7978845608028654 * (x + 0.044715 * x * x * x)
            return 0.5 * x * (1 + tanhf(inner))
        case .quickGelu: return x / (1 + VectorExp.exp(-1.702 * x))
        case .relu: return max(x, 0)
        }
    }

    /// The activations built on exp, run eight lanes at a time by the C kernels (`VectorExp.sigmoidScaled`,
    /// bit-identical to `callAsFunction`, which uses the same `VectorExp` method).
    var isVectorised: Bool { self == .silu || self == .swish || self == .quickGelu }

    /// Applies the activation in place.
    public func apply(_ x: inout Tensor) {
        let f = self
        x.scalars.withUnsafeMutableBufferPointer { p in
            nonisolated(unsafe) let base = p.baseAddress!
            Parallel.forEachRange(p.count, costPerItem: 16) { range in
                if f.isVectorised {
                    f.vectorised(base, nil, range)
                } else {
                    for i in range { base[i] = f(base[i]) }
                }
            }
        }
    }

    /// The gated unit of Llama/Qwen2 MLPs in place: gate[i] = act(gate[i]) · up[i].
    public func applyGated(_ gate: inout Tensor, up: Tensor) {
        precondition(gate.shape == up.shape, "applyGated: gate \(gate.shape) and up \(up.shape) differ")
        let f = self
        gate.scalars.withUnsafeMutableBufferPointer { g in
            up.scalars.withUnsafeBufferPointer { u in
                nonisolated(unsafe) let gp = g.baseAddress!, upp = u.baseAddress!
                Parallel.forEachRange(g.count, costPerItem: 16) { range in
                    if f.isVectorised {
                        f.vectorised(gp, upp, range)
                    } else {
                        for i in range { gp[i] = f(gp[i]) * upp[i] }
                    }
                }
            }
        }
    }

    /// x[i] = act(x[i]) (· factor[i] when given) over `range`, eight lanes at a time (in C, see `VectorExp`).
    @inline(__always)
    private func vectorised(_ x: UnsafeMutablePointer<Float>, _ factor: UnsafePointer<Float>?, _ range: Range<Int>) {
        VectorExp.sigmoidScaled(x + range.lowerBound, factor: factor.map { $0 + range.lowerBound }, count: range.count,
                                k: self == .quickGelu ? 1.702 : 1)
    }

    public init(named name: String) throws {
        guard let a = Activation(rawValue: name) else {
            throw TensorError.unsupported("unsupported activation '\(name)'; supported: "
                                          + "\(Activation.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self = a
    }
}
