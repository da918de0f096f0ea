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
        gate = try w.take("\(p).gate_proj.weight", shape: [m, d]); gateBias = try w.take("\(p).gate_proj.bias", shape: [m])
        up = try w.take("\(p).up_proj.weight", shape: [m, d]); upBias = try w.take("\(p).up_proj.bias", shape: [m])
        down = try w.take("\(p).down_proj.weight", shape: [d, m]); downBias = try w.take("\(p).down_proj.bias", shape: [d])
        activation = try Activation(named: c.hiddenAct)
    }

    func callAsFunction(_ x: Tensor, layer l: Int, names n: LayerHookNames, hooks: HookRun?) throws -> Tensor {
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

struct Qwen2_5VisionBlock: QwenVisionBlock, @unchecked Sendable {
    let norm1: StoredTensor, norm2: StoredTensor
    let attention: QwenVisionAttention
    let mlp: Qwen2_5VisionMLP

    init(_ w: inout WeightStore, prefix p: String, config c: QwenVisionConfiguration) throws {
        norm1 = try w.take("\(p).norm1.weight", shape: [c.width])
        norm2 = try w.take("\(p).norm2.weight", shape: [c.width])
        attention = try QwenVisionAttention(&w, prefix: "\(p).attn", config: c)
        mlp = try Qwen2_5VisionMLP(&w, prefix: "\(p).mlp", config: c)
    }

    func callAsFunction(_ residual: Tensor, rotary: RotaryTables, segments: [Int], layer l: Int,
                        names n: LayerHookNames, hooks: HookRun?) throws -> Tensor {
        var x = residual
        try hooks.visit(n.residPre, layer: l, &x)
        var h = rmsNorm(x, weight: norm1, eps: 1e-6)
        try hooks.visit(n.ln1, layer: l, &h)
        var attnOut = try attention(h, rotary: rotary, segments: segments, layer: l, names: n, hooks: hooks)
        try hooks.visit(n.attnOut, layer: l, &attnOut)
        add(&x, attnOut)
        try hooks.visit(n.residMid, layer: l, &x)
        var h2 = rmsNorm(x, weight: norm2, eps: 1e-6)
        try hooks.visit(n.ln2, layer: l, &h2)
        var mlpOut = try mlp(h2, layer: l, names: n, hooks: hooks)
        try hooks.visit(n.mlpOut, layer: l, &mlpOut)
        add(&x, mlpOut)
        try hooks.visit(n.residPost, layer: l, &x)
        return x
    }

    static func hookNames(_ n: LayerHookNames) -> [String] {
        [n.residPre, n.ln1, n.q, n.k, n.v, n.rotQ, n.rotK, n.attnScores, n.pattern, n.z, n.attnOut, n.residMid,
         n.ln2, n.mlpPre, n.mlpPreLinear, n.mlpPost, n.mlpOut, n.residPost]
    }
}
