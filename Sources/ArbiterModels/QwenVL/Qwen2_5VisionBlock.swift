// The Qwen2.5-VL vision block: RMSNorm → attention (windowed or full) → RMSNorm → SwiGLU MLP with biases.
// Mirrors transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py (Qwen2_5_VLMLP with bias, Qwen2_5_VLVisionBlock),
// eager attention, Float32.
import ArbiterFormats
import ArbiterTensor
import Foundation

// MARK: - MLP

struct Qwen2_5VisionMLP: @unchecked Sendable {
    let gate: StoredTensor, gateBias: StoredTensor, up: StoredTensor, upBias: StoredTensor
    let down: StoredTensor, downBias: StoredTensor
    let activation: Activation

    init(_ w: inout WeightStore, prefix p: String, config c: QwenVisionConfiguration) throws {
        let d = c.width, m = c.intermediateSize
        gate = try w.take("\(p).gate_proj.weight", shape: [m, d]); gateBias = try w.take("\(p).gate_proj.bias",
                                                                                         shape: [m])
        up = try w.take("\(p).up_proj.weight", shape: [m, d]); upBias = try w.take("\(p).up_proj.bias", shape: [m])
        down = try w.take("\(p).down_proj.weight", shape: [d, m]); downBias = try w.take("\(p).down_proj.bias",
                                                                                         shape: [d])
        activation = try Activation(named: c.hiddenAct)
    }

    func callAsFunction(_ x: Tensor, layer l: Int, names n: LayerHookNames, visits hooks: RunHooks) throws -> Tensor {
        var g = linear(x, weight: gate, bias: gateBias)
        try hooks.visit(n.mlpPre, layer: l, &g)
        var u = linear(x, weight: up, bias: upBias)
        try hooks.visit(n.mlpPreLinear, layer: l, &u)
        let act = activation
        g.scalars.withUnsafeMutableBufferPointer { gp in
            u.scalars.withUnsafeBufferPointer { upp in
                for i in gp.indices { gp[i] = act(gp[i]) * upp[i] }
            }
        }
        try hooks.visit(n.mlpPost, layer: l, &g)
        return linear(g, weight: down, bias: downBias)
    }
}

// MARK: - Block

extension Qwen2_5VisionMLP: BlockMLP {
    static let hookPoints: [BlockHook] = [.mlpPre, .mlpPreLinear, .mlpPost]
}

/// RMSNorm → attention (windowed or full) → RMSNorm → SwiGLU MLP.
typealias Qwen2_5VisionBlock = HookedBlock<QwenVisionAttention, Qwen2_5VisionMLP>

extension HookedBlock where Attention == QwenVisionAttention, MLP == Qwen2_5VisionMLP {
    init(_ w: inout WeightStore, prefix p: String, config c: QwenVisionConfiguration) throws {
        let norm1 = try BlockNorm.rms(&w, "\(p).norm1", width: c.width, eps: 1e-6)
        let norm2 = try BlockNorm.rms(&w, "\(p).norm2", width: c.width, eps: 1e-6)
        self.init(norm1: norm1, attention: try QwenVisionAttention(&w, prefix: "\(p).attn", config: c), norm2: norm2,
                  mlp: try Qwen2_5VisionMLP(&w, prefix: "\(p).mlp", config: c), hooksNorms: true)
    }
}
