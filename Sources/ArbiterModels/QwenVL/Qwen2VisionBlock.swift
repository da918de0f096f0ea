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

struct Qwen2VisionBlock: QwenVisionBlock, @unchecked Sendable {
    let norm1: StoredTensor, norm1Bias: StoredTensor, norm2: StoredTensor, norm2Bias: StoredTensor
    let attention: QwenVisionAttention
    let mlp: Qwen2VisionMLP

    init(_ w: inout WeightStore, prefix p: String, config c: QwenVisionConfiguration) throws {
        norm1 = try w.take("\(p).norm1.weight", shape: [c.width]); norm1Bias = try w.take("\(p).norm1.bias", shape: [c.width])
        norm2 = try w.take("\(p).norm2.weight", shape: [c.width]); norm2Bias = try w.take("\(p).norm2.bias", shape: [c.width])
        attention = try QwenVisionAttention(&w, prefix: "\(p).attn", config: c)
        mlp = try Qwen2VisionMLP(&w, prefix: "\(p).mlp", config: c)
    }

    func callAsFunction(_ residual: Tensor, rotary: RotaryTables, segments: [Int], layer l: Int,
                        names n: LayerHookNames, hooks: HookRun?) throws -> Tensor {
        var x = residual
        try hooks.visit(n.residPre, layer: l, &x)
        var h = layerNorm(x, weight: norm1, bias: norm1Bias, eps: 1e-6)
        try hooks.visit(n.ln1, layer: l, &h)
        var attnOut = try attention(h, rotary: rotary, segments: segments, layer: l, names: n, hooks: hooks)
        try hooks.visit(n.attnOut, layer: l, &attnOut)
        add(&x, attnOut)
        try hooks.visit(n.residMid, layer: l, &x)
        var h2 = layerNorm(x, weight: norm2, bias: norm2Bias, eps: 1e-6)
        try hooks.visit(n.ln2, layer: l, &h2)
        var mlpOut = try mlp(h2, layer: l, names: n, hooks: hooks)
        try hooks.visit(n.mlpOut, layer: l, &mlpOut)
        add(&x, mlpOut)
        try hooks.visit(n.residPost, layer: l, &x)
        return x
    }

    static func hookNames(_ n: LayerHookNames) -> [String] {
        [n.residPre, n.ln1, n.q, n.k, n.v, n.rotQ, n.rotK, n.attnScores, n.pattern, n.z, n.attnOut, n.residMid,
         n.ln2, n.mlpPre, n.mlpPost, n.mlpOut, n.residPost]
    }
}
