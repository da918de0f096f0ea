// Reference activations: the exact formulas of transformers' ACT2FN, evaluated in Double.
import Foundation

extension ReferenceKernels {
    /// `activation` at `x`, in Double.
    public static func activation(_ activation: Activation, _ x: Double) -> Double {
        switch activation {
        case .silu, .swish:
            return x * sigmoid(x)                                                  // SiLUActivation
        case .gelu:
            return 0.5 * x * (1 + erf(x / 2.0.squareRoot()))                       // GELUActivation (erf)
        case .geluPytorchTanh, .geluNew:
            let inner = (2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)  // NewGELUActivation
            return 0.5 * x * (1 + tanh(inner))
        case .quickGelu:
            return x * sigmoid(1.702 * x)                                          // QuickGELUActivation
        case .relu:
            return max(x, 0)
        }
    }

    /// `activation` applied to every element.
    public static func activation(_ activation: Activation, _ x: Tensor) -> Tensor {
        Tensor(shape: x.shape, scalars: x.scalars.map { Float(Self.activation(activation, Double($0))) })
    }

    /// 1 / (1 + e^−x) without overflow for large |x|.
    static func sigmoid(_ x: Double) -> Double {
        x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x))
    }
}
