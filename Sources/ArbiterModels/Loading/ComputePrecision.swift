// The arithmetic of the matrix products: f32 (the default) or bf16 compute (opt-in).
import ArbiterFormats
import ArbiterTensor
import Foundation

/// How a model's weights are multiplied. `.float32` (the default): weights in their stored dtype, F16/BF16
/// widened to f32, f32 arithmetic (OpenBLAS) — every golden file is made so. `.bfloat16`: the weights are held
/// as bf16 (F32/F16 checkpoints rounded to bf16 once at load, as `model.to(torch.bfloat16)`; BF16 ones read as
/// stored) and the matrix products run in bf16 arithmetic on CPUs with AVX512-BF16 (`BFloat16GEMM`: activations
/// rounded to bf16, f32 accumulation), or widened to f32 on other CPUs. Norms, attention and activations stay
/// f32 either way. Selected with `ARBITER_COMPUTE=bf16` (the CLI and `ModelSession` read it) or by passing it.
public enum ComputePrecision: String, Sendable, CaseIterable {
    case float32 = "f32"
    case bfloat16 = "bf16"

    /// The environment variable that selects the precision.
    public static let environmentVariable = "ARBITER_COMPUTE"

    /// The precision `environment[ARBITER_COMPUTE]` names: f32 when unset or empty; other values are refused.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> ComputePrecision {
        guard let text = environment[environmentVariable], !text.isEmpty else { return .float32 }
        guard let precision = ComputePrecision(rawValue: text.lowercased()) else {
            let allowed = allCases.map(\.rawValue).joined(separator: " or ")
            throw ModelError.invalidInput("\(environmentVariable)=\(text) is not a compute precision (want \(allowed))")
        }
        return precision
    }

    /// The tensors of `checkpoint` for this precision: as stored for `.float32`; every tensor as bf16 marked for
    /// bf16 compute for `.bfloat16`. Throws when a value of the checkpoint is too large for bf16, naming the file
    /// (`source`) and the tensor.
    public func tensors(_ tensors: [String: StoredTensor], source: String) throws -> [String: StoredTensor] {
        guard self == .bfloat16 else { return tensors }
        var converted: [String: StoredTensor] = [:]
        for (name, tensor) in tensors {
            guard let rounded = tensor.forBFloat16Compute() else {
                throw FormatError(.unsupported, file: source, "tensor \"\(name)\" (\(tensor.dtype.rawValue)) has a "
                                  + "value of magnitude ≥ 3.3961e38 that bf16 rounds to infinity; it cannot run with "
                                  + "\(Self.environmentVariable)=bf16")
            }
            converted[name] = rounded
        }
        return converted
    }
}
