// Configuration of Llama-family text decoders (`model_type` "llama" and "qwen2"), decoded from a
// Hugging Face config.json. Mirrors transformers' LlamaConfig / Qwen2Config, including both ways the
// rotary settings appear in the wild: legacy `rope_theta` + `rope_scaling` at the top level, and the
// newer `rope_parameters` object (transformers ≥ 5).
import ArbiterTensor
import Foundation

public struct DecoderConfiguration: Codable, Sendable, Equatable {
    public var modelType: String
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var attentionHeads: Int
    public var keyValueHeads: Int
    public var headDim: Int
    public var rmsNormEps: Float
    public var hiddenAct: String
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    /// Bias on q/k/v projections (Qwen2 always; Llama when `attention_bias`).
    public var qkvBias: Bool
    /// Bias on the output projection (Llama's `attention_bias` also covers o_proj; Qwen2 never).
    public var outputBias: Bool
    public var mlpBias: Bool
    public var rope: RopeParameters
    /// Multimodal rotary sections (Qwen2-VL `mrope_section`), when present.
    public var mropeSection: [Int]?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case vocabularySize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case layers = "num_hidden_layers"
        case attentionHeads = "num_attention_heads"
        case keyValueHeads = "num_key_value_heads"
        case headDim = "head_dim"
        case rmsNormEps = "rms_norm_eps"
        case hiddenAct = "hidden_act"
        case maxPositionEmbeddings = "max_position_embeddings"
        case tieWordEmbeddings = "tie_word_embeddings"
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
        case ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling"
        case ropeParameters = "rope_parameters"
        case partialRotaryFactor = "partial_rotary_factor"
    }

    /// Memberwise initializer for tests and tiny models built in code.
    public init(modelType: String = "llama", vocabularySize: Int, hiddenSize: Int, intermediateSize: Int,
                layers: Int, attentionHeads: Int, keyValueHeads: Int? = nil, headDim: Int? = nil,
                rmsNormEps: Float = 1e-6, hiddenAct: String = "silu", maxPositionEmbeddings: Int = 2048,
                tieWordEmbeddings: Bool = false, qkvBias: Bool = false, outputBias: Bool = false,
                mlpBias: Bool = false, rope: RopeParameters? = nil) {
        self.modelType = modelType
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layers = layers
        self.attentionHeads = attentionHeads
        self.keyValueHeads = keyValueHeads ?? attentionHeads
        let hd = headDim ?? (attentionHeads > 0 ? hiddenSize / attentionHeads : 0)
        self.headDim = hd
        self.rmsNormEps = rmsNormEps
        self.hiddenAct = hiddenAct
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
        self.qkvBias = qkvBias
        self.outputBias = outputBias
        self.mlpBias = mlpBias
        self.rope = rope ?? RopeParameters(theta: 10000, dimension: hd, originalMaxPositions: maxPositionEmbeddings)
        self.mropeSection = nil
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "llama"
        let isQwen = type.hasPrefix("qwen2")
        modelType = type
        vocabularySize = try c.decodeIfPresent(Int.self, forKey: .vocabularySize) ?? 32000
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? 4096
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? 11008
        layers = try c.decodeIfPresent(Int.self, forKey: .layers) ?? 32
        attentionHeads = try c.decodeIfPresent(Int.self, forKey: .attentionHeads) ?? 32
        keyValueHeads = try c.decodeIfPresent(Int.self, forKey: .keyValueHeads) ?? attentionHeads
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim)
            ?? (attentionHeads > 0 ? hiddenSize / attentionHeads : 0)
        rmsNormEps = Float(try c.decodeIfPresent(Double.self, forKey: .rmsNormEps) ?? 1e-6)
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "silu"
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? (isQwen ? 32768 : 2048)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        let attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false
        qkvBias = isQwen ? true : attentionBias
        outputBias = isQwen ? false : attentionBias
        mlpBias = try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? false

        // Rotary: rope_parameters (new) takes precedence over rope_scaling + rope_theta (legacy).
        let parameters = try c.decodeIfPresent(RopeJSON.self, forKey: .ropeParameters)
        let scaling = try c.decodeIfPresent(RopeJSON.self, forKey: .ropeScaling)
        let legacyTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta)
        let partial = try c.decodeIfPresent(Double.self, forKey: .partialRotaryFactor)
            ?? parameters?.partialRotaryFactor ?? 1
        let source = parameters ?? scaling
        // Qwen2-VL writes `"type": "mrope"`: default frequencies applied per position section.
        let rawType = source?.ropeType ?? source?.type ?? "default"
        let typeName = rawType == "mrope" ? "default" : rawType
        guard let ropeType = RopeType(rawValue: typeName) else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: [parameters != nil ? CodingKeys.ropeParameters : CodingKeys.ropeScaling],
                debugDescription: "unsupported rope type '\(typeName)'; supported: \(RopeType.allCases.map(\.rawValue).joined(separator: ", "))"))
        }
        let theta = parameters?.ropeTheta ?? legacyTheta ?? 10000
        rope = RopeParameters(
            type: ropeType, theta: theta, dimension: Int(Double(headDim) * partial),
            factor: source?.factor ?? 1, lowFreqFactor: source?.lowFreqFactor ?? 1,
            highFreqFactor: source?.highFreqFactor ?? 4,
            originalMaxPositions: source?.originalMaxPositionEmbeddings ?? maxPositionEmbeddings)
        mropeSection = source?.mropeSection
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(modelType, forKey: .modelType)
        try c.encode(vocabularySize, forKey: .vocabularySize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(layers, forKey: .layers)
        try c.encode(attentionHeads, forKey: .attentionHeads)
        try c.encode(keyValueHeads, forKey: .keyValueHeads)
        try c.encode(headDim, forKey: .headDim)
        try c.encode(Double(rmsNormEps), forKey: .rmsNormEps)
        try c.encode(hiddenAct, forKey: .hiddenAct)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encode(qkvBias, forKey: .attentionBias)
        try c.encode(mlpBias, forKey: .mlpBias)
        try c.encode(RopeJSON(rope), forKey: .ropeParameters)
    }

    /// Checks sizes and head arithmetic; `file` names the config in the error.
    public func validate(file: String) throws {
        func fail(_ problem: String) -> ModelError { .invalidConfiguration(file: file, problem: problem) }
        for (name, value) in [("vocab_size", vocabularySize), ("hidden_size", hiddenSize),
                              ("intermediate_size", intermediateSize), ("num_hidden_layers", layers),
                              ("num_attention_heads", attentionHeads), ("num_key_value_heads", keyValueHeads),
                              ("head_dim", headDim)] where value <= 0 {
            throw fail("\(name) must be positive, got \(value)")
        }
        guard attentionHeads % keyValueHeads == 0 else {
            throw fail("num_attention_heads \(attentionHeads) is not a multiple of num_key_value_heads \(keyValueHeads)")
        }
        guard rope.dimension > 0, rope.dimension % 2 == 0, rope.dimension <= headDim else {
            throw fail("rotary dimension \(rope.dimension) must be even and at most head_dim \(headDim)")
        }
        guard rmsNormEps > 0, rmsNormEps.isFinite else { throw fail("rms_norm_eps must be positive, got \(rmsNormEps)") }
        guard rope.theta > 0, rope.theta.isFinite, rope.factor > 0 else {
            throw fail("rope theta \(rope.theta) and factor \(rope.factor) must be positive")
        }
        if rope.type == .llama3 && rope.highFreqFactor == rope.lowFreqFactor {
            throw fail("llama3 rope needs high_freq_factor ≠ low_freq_factor")
        }
        if rope.type == .dynamic && rope.dimension <= 2 {
            throw fail("dynamic rope needs a rotary dimension above 2")
        }
        if let section = mropeSection, section.reduce(0, +) * 2 != rope.dimension {
            throw fail("mrope_section \(section) sums to \(section.reduce(0, +)), want half the rotary dimension \(rope.dimension / 2)")
        }
        guard Activation(rawValue: hiddenAct) != nil else {
            throw fail("unsupported activation '\(hiddenAct)' (hidden_act); supported: \(Activation.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    public var attentionHeadLayout: AttentionHeads {
        AttentionHeads(heads: attentionHeads, kvHeads: keyValueHeads, headDim: headDim)
    }
}

/// The rotary object of a config (`rope_parameters` or legacy `rope_scaling`).
struct RopeJSON: Codable, Equatable {
    var ropeType: String?
    var type: String?
    var ropeTheta: Double?
    var factor: Double?
    var lowFreqFactor: Double?
    var highFreqFactor: Double?
    var originalMaxPositionEmbeddings: Int?
    var partialRotaryFactor: Double?
    var mropeSection: [Int]?

    enum CodingKeys: String, CodingKey {
        case ropeType = "rope_type", type, ropeTheta = "rope_theta", factor
        case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
        case partialRotaryFactor = "partial_rotary_factor"
        case mropeSection = "mrope_section"
    }

    init(_ p: RopeParameters) {
        ropeType = p.type.rawValue
        ropeTheta = p.theta
        factor = p.factor
        lowFreqFactor = p.lowFreqFactor
        highFreqFactor = p.highFreqFactor
        originalMaxPositionEmbeddings = p.originalMaxPositions
    }
}
