// The Qwen2-VL vision block: LayerNorm → full attention → LayerNorm → fc1 → activation (quick_gelu) → fc2.
// Mirrors transformers/models/qwen2_vl/modeling_qwen2_vl.py (VisionMlp, Qwen2VLVisionBlock), eager attention,
// Float32.
import ArbiterFormats
import ArbiterTensor
import Foundation

// MARK: - MLP

struct Qwen2VisionMLP: @unchecked Sendable {
    let fc1: StoredTensor, fc1Bias: StoredTensor, fc2: StoredTensor, fc2Bias: StoredTensor
    let activation: Activation

    init(_ w: inout WeightStore, prefix p: String, config c: QwenVisionConfiguration) throws {
        let d = c.width, m = c.intermediateSize
        fc1 = try w.take("\(p).fc1.weight", shape: [m, d]); fc1Bias = try w.take("\(p).fc1.bias", shape: [m])
        fc2 = try w.take("\(p).fc2.weight", shape: [d, m]); fc2Bias = try w.take("\(p).fc2.bias", shape: [d])
        activation = try Activation(named: c.hiddenAct)
    }

    func callAsFunction(_ x: Tensor, layer l: Int, names n: LayerHookNames, hooks: HookRun?) throws -> Tensor {
        var pre = linear(x, weight: fc1, bias: fc1Bias)
        try hooks.visit(n.mlpPre, layer: l, &pre)
        activation.apply(&pre)
        try hooks.visit(n.mlpPost, layer: l, &pre)
        return linear(pre, weight: fc2, bias: fc2Bias)
    }
}

// MARK: - Block

extension Qwen2VisionMLP: BlockMLP {
    static let hookPoints: [BlockHook] = [.mlpPre, .mlpPost]

    func callAsFunction(_ x: Tensor, layer l: Int, names n: LayerHookNames, visits: RunHooks) throws -> Tensor {
        try self(x, layer: l, names: n, hooks: visits.hooks)
    }
}

/// LayerNorm → full attention → LayerNorm → fc1 → activation → fc2.
typealias Qwen2VisionBlock = HookedBlock<QwenVisionAttention, Qwen2VisionMLP>

extension HookedBlock where Attention == QwenVisionAttention, MLP == Qwen2VisionMLP {
    init(_ w: inout WeightStore, prefix p: String, config c: QwenVisionConfiguration) throws {
        let norm1 = try BlockNorm.layer(&w, "\(p).norm1", width: c.width, eps: 1e-6)
        let norm2 = try BlockNorm.layer(&w, "\(p).norm2", width: c.width, eps: 1e-6)
        self.init(norm1: norm1, attention: try QwenVisionAttention(&w, prefix: "\(p).attn", config: c), norm2: norm2,
                  mlp: try Qwen2VisionMLP(&w, prefix: "\(p).mlp", config: c), hooksNorms: true)
    }
}
