// Random Llama-family decoders built in code, for property-based tests of engine invariants.
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation

struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func normal(_ std: Float) -> Float {
        let u1 = max(Float.random(in: 0..<1, using: &self), 1e-7), u2 = Float.random(in: 0..<1, using: &self)
        return std * (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

/// Shape of a random decoder.
struct RandomDecoderSpec: Sendable, CustomStringConvertible {
    var layers: Int
    var kvHeads: Int
    var groups: Int
    var headDim: Int
    var qkvBias: Bool
    var seed: UInt64

    var heads: Int { kvHeads * groups }
    var description: String { "layers \(layers), heads \(heads)/\(kvHeads)kv×\(headDim), bias \(qkvBias), seed \(seed)" }

    func make() throws -> LlamaDecoder {
        let d = heads * headDim, m = 2 * d + 3, vocab = 37
        let config = DecoderConfiguration(
            modelType: qkvBias ? "qwen2" : "llama", vocabularySize: vocab, hiddenSize: d, intermediateSize: m,
            layers: layers, attentionHeads: heads, keyValueHeads: kvHeads, headDim: headDim, rmsNormEps: 1e-5,
            qkvBias: qkvBias, rope: RopeParameters(theta: 10000, dimension: headDim))
        var store = WeightStore(weights(), source: "random decoder (\(description))")
        let decoder = try LlamaDecoder(configuration: config, weights: &store)
        try store.finish()
        return decoder
    }

    /// The decoder's weights, by checkpoint name (the same on every call).
    func weights() -> [String: StoredTensor] {
        let d = heads * headDim, m = 2 * d + 3, vocab = 37
        var rng = SeededGenerator(seed: seed)
        var tensors: [String: StoredTensor] = [:]
        func add(_ name: String, _ shape: [Int], std: Float = 0.3, mean: Float = 0) {
            let n = shape.reduce(1, *)
            tensors[name] = StoredTensor(name: name, Tensor(shape: shape, scalars: (0..<n).map { _ in mean + rng.normal(std) }))
        }
        add("model.embed_tokens.weight", [vocab, d], std: 1)
        for l in 0..<layers {
            let p = "model.layers.\(l)"
            add("\(p).input_layernorm.weight", [d], std: 0.1, mean: 1)
            add("\(p).post_attention_layernorm.weight", [d], std: 0.1, mean: 1)
            add("\(p).self_attn.q_proj.weight", [heads * headDim, d])
            add("\(p).self_attn.k_proj.weight", [kvHeads * headDim, d])
            add("\(p).self_attn.v_proj.weight", [kvHeads * headDim, d])
            add("\(p).self_attn.o_proj.weight", [d, heads * headDim])
            if qkvBias {
                add("\(p).self_attn.q_proj.bias", [heads * headDim])
                add("\(p).self_attn.k_proj.bias", [kvHeads * headDim])
                add("\(p).self_attn.v_proj.bias", [kvHeads * headDim])
            }
            add("\(p).mlp.gate_proj.weight", [m, d])
            add("\(p).mlp.up_proj.weight", [m, d])
            add("\(p).mlp.down_proj.weight", [d, m])
        }
        add("model.norm.weight", [d], std: 0.1, mean: 1)
        add("lm_head.weight", [vocab, d])
        return tensors
    }

    /// Random token ids for this model.
    func ids(count: Int, seed: UInt64) -> [Int] {
        var rng = SeededGenerator(seed: seed)
        return (0..<count).map { _ in Int.random(in: 0..<37, using: &rng) }
    }
}
