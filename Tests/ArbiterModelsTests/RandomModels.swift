// Random Llama-family decoders built in code, for property-based tests of engine invariants.
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation

/// The random decoders' generator: SplitMix64 seeded one step ahead (its stream skips SplitMix64's first
/// output for the same seed), with normal draws.
typealias SeededGenerator = SplitMix64

extension SplitMix64 {
    /// SplitMix64 seeded `seed + γ`, as the random models have always been drawn (the same stream as
    /// `SplitMix64(seed:)` after one output, which `SplitMix64Tests` pins).
    init(randomModelSeed seed: UInt64) { self.init(seed: seed &+ 0x9E37_79B9_7F4A_7C15) }

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
        var rng = SeededGenerator(randomModelSeed: seed)
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
        var rng = SeededGenerator(randomModelSeed: seed)
        return (0..<count).map { _ in Int.random(in: 0..<37, using: &rng) }
    }
}
