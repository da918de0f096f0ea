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
    /// Qwen3-VL's `mrope_interleaved`: the sections' axes take turns frequency by frequency
    /// (`PositionIDs.rotaryTables`).
    public var mropeInterleaved: Bool
    /// Qwen3's per-head RMSNorm of queries and keys (`q_norm`, `k_norm`); set by the families whose decoder has it.
    public var qkNorm: Bool

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
        self.mropeInterleaved = false
        self.qkNorm = false
    }

    /// The `model_type`s of the text decoders this configuration describes (top level or `text_config`).
    static let decoderTypes = ["llama", "qwen2", "qwen2_vl", "qwen2_5_vl", "qwen2_vl_text", "qwen2_5_vl_text",
                               "qwen3_vl_text"]

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "llama"
        // A text decoder of another architecture (a LLaVA whose text_config is "mamba", say) must not be run as
        // a Llama: refuse what this decoder is not.
        guard Self.decoderTypes.contains(type) else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.modelType], debugDescription:
                "model_type '\(type)' is not a decoder Arbiter runs (\(Self.decoderTypes.joined(separator: ", ")))"))
        }
        let isQwen = type.hasPrefix("qwen2")
        modelType = type
        vocabularySize = try c.decodeIfPresent(Int.self, forKey: .vocabularySize) ?? 32000
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? 4096
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? 11008
        layers = try c.decodeIfPresent(Int.self, forKey: .layers) ?? 32
        attentionHeads = try c.decodeIfPresent(Int.self, forKey: .attentionHeads) ?? 32
        keyValueHeads = try c.decodeIfPresent(Int.self, forKey: .keyValueHeads) ?? attentionHeads
        // transformers 5 floors `hidden_size // num_attention_heads` without requiring divisibility (q_proj is
        // then narrower than the residual stream, and o_proj maps it back), so a remainder is not refused.
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim)
            ?? (attentionHeads > 0 ? hiddenSize / attentionHeads : 0)
        rmsNormEps = Float(try c.decodeIfPresent(Double.self, forKey: .rmsNormEps) ?? 1e-6)
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "silu"
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self,
                                                      forKey: .maxPositionEmbeddings) ?? (isQwen ? 32768 : 2048)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        let attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false
        qkvBias = isQwen ? true : attentionBias
        outputBias = isQwen ? false : attentionBias
        mlpBias = try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? false

        // Rotary: rope_parameters (new) takes precedence over rope_scaling + rope_theta (legacy).
        let parameters = try c.decodeIfPresent(RopeJSON.self, forKey: .ropeParameters)
        let scaling = try c.decodeIfPresent(RopeJSON.self, forKey: .ropeScaling)
        let legacyTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta)
        let source = parameters ?? scaling
        let sourcePath: [CodingKey] = c.codingPath + [parameters != nil ? CodingKeys.ropeParameters : .ropeScaling]
        func corrupted(_ path: [CodingKey], _ problem: String) -> DecodingError {
            .dataCorrupted(.init(codingPath: path, debugDescription: problem))
        }
        let partialPath: [CodingKey]
        let partial: Double
        if let top = try c.decodeIfPresent(Double.self, forKey: .partialRotaryFactor) {
            (partialPath, partial) = (c.codingPath + [CodingKeys.partialRotaryFactor], top)
        } else {
            partialPath = sourcePath + [AnyKey("partial_rotary_factor")]
            partial = parameters?.partialRotaryFactor ?? 1
        }
        // Outside (0, 1] the rotary dimension would exceed head_dim or vanish.
        guard partial > 0, partial <= 1 else { throw corrupted(partialPath, "must be in (0, 1], found \(partial)") }
        // Qwen2-VL writes `"type": "mrope"`: default frequencies applied per position section.
        let rawType = source?.ropeType ?? source?.type ?? "default"
        let typeName = rawType == "mrope" ? "default" : rawType
        guard let ropeType = RopeType(rawValue: typeName) else {
            throw corrupted(sourcePath, "unsupported rope type '\(typeName)'; supported: "
                + RopeType.allCases.map(\.rawValue).joined(separator: ", "))
        }
        // transformers' rope validation: the keys each type needs (`_check_received_keys`).
        let required: [(String, Bool)] = switch ropeType {
        case .default: []
        case .linear, .dynamic: [("factor", source?.factor != nil)]
        case .llama3: [("factor", source?.factor != nil), ("low_freq_factor", source?.lowFreqFactor != nil),
                       ("high_freq_factor", source?.highFreqFactor != nil),
                       ("original_max_position_embeddings", source?.originalMaxPositionEmbeddings != nil)]
        }
        if let (missing, _) = required.first(where: { !$0.1 }) {
            throw corrupted(sourcePath + [AnyKey(missing)], "is required for rope_type '\(typeName)'")
        }
        let theta = parameters?.ropeTheta ?? legacyTheta ?? 10000
        rope = RopeParameters(
            type: ropeType, theta: theta, dimension: Checked.truncating(Double(headDim) * partial),
            factor: source?.factor ?? 1, lowFreqFactor: source?.lowFreqFactor ?? 1,
            highFreqFactor: source?.highFreqFactor ?? 4,
            originalMaxPositions: source?.originalMaxPositionEmbeddings ?? maxPositionEmbeddings)
        if let (field, problem) = rope.parameterProblem() {
            let thetaPath: [CodingKey] = parameters?.ropeTheta != nil
                ? sourcePath + [AnyKey("rope_theta")] : c.codingPath + [CodingKeys.ropeTheta]
            throw corrupted(field == "rope_theta" ? thetaPath : sourcePath + [AnyKey(field)], problem)
        }
        mropeSection = source?.mropeSection
        mropeInterleaved = source?.mropeInterleaved ?? false
        qkNorm = false
        // Against the rotary dimension only when the sizes give one: a zero or negative size is reported by
        // `validate` as itself, not as an mrope_section that does not fit.
        if let section = mropeSection,
           let problem = Self.mropeProblem(section, rotaryDimension: rope.dimension > 0 ? rope.dimension : nil) {
            throw corrupted(sourcePath + [AnyKey("mrope_section")], problem)
        }
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

    /// Checks sizes and head arithmetic; `file` names the config in the error and `section` (such as
    /// "text_config.") the object holding these fields.
    public func validate(file: String, section: String = "") throws {
        func fail(_ problem: String) -> ModelError { .invalidConfiguration(file: file, problem: problem) }
        for (name, value) in [("vocab_size", vocabularySize), ("hidden_size", hiddenSize),
                              ("intermediate_size", intermediateSize), ("num_hidden_layers", layers),
                              ("num_attention_heads", attentionHeads), ("num_key_value_heads", keyValueHeads),
                              ("head_dim", headDim), ("max_position_embeddings", maxPositionEmbeddings)]
            where value <= 0 {
            // A head_dim derived from hidden_size / num_attention_heads names both.
            let derived = name == "head_dim" && attentionHeads > 0 && hiddenSize / attentionHeads == headDim
                ? " (\(section)hidden_size \(hiddenSize) / \(section)num_attention_heads \(attentionHeads))" : ""
            throw fail("\(section)\(name) must be positive, got \(value)\(derived)")
        }
        guard attentionHeads % keyValueHeads == 0 else {
            throw fail("\(section)num_attention_heads \(attentionHeads) is not a multiple of "
                + "\(section)num_key_value_heads \(keyValueHeads)")
        }
        guard rope.dimension > 0, rope.dimension % 2 == 0, rope.dimension <= headDim else {
            throw fail("rotary dimension \(rope.dimension) (\(section)head_dim × partial_rotary_factor) must be even "
                + "and at most \(section)head_dim \(headDim)")
        }
        guard rmsNormEps > 0, rmsNormEps.isFinite else {
            throw fail("\(section)rms_norm_eps must be positive and finite, got \(rmsNormEps)")
        }
        if let (field, problem) = rope.parameterProblem() { throw fail("rope \(section)\(field) \(problem)") }
        if rope.type == .dynamic && rope.dimension <= 2 {
            throw fail("dynamic rope needs a rotary dimension above 2, got \(rope.dimension)")
        }
        if let mrope = mropeSection, let problem = Self.mropeProblem(mrope, rotaryDimension: rope.dimension) {
            throw fail("\(section)mrope_section \(problem)")
        }
        guard Activation(rawValue: hiddenAct) != nil else {
            throw fail("unsupported activation '\(hiddenAct)' (\(section)hidden_act); supported: "
                + Activation.allCases.map(\.rawValue).joined(separator: ", "))
        }
        _ = try parameterCount(file: file, section: section)
    }

    /// `mrope_section` must hold three non-negative widths (temporal, height, width frequencies) adding up to
    /// half the rotary dimension; the sum is computed with overflow checks, so widths that wrap around to the
    /// right total are refused too. Nil when fine.
    static func mropeProblem(_ section: [Int], rotaryDimension: Int?) -> String? {
        guard section.count == 3 else {
            return "must have 3 entries (temporal, height, width), found \(section.count): \(section)"
        }
        if let negative = section.first(where: { $0 < 0 }) { return "entries must not be negative, found \(negative)" }
        guard let rotaryDimension else {
            return Checked.sum(section) == nil ? "\(section) sums to more than \(Int.max)" : nil
        }
        guard let sum = Checked.sum(section), sum == rotaryDimension / 2 else {
            let total = Checked.sum(section).map(String.init) ?? "more than \(Int.max)"
            return "\(section) sums to \(total), want half the rotary dimension \(rotaryDimension / 2)"
        }
        return nil
    }

    /// Weights the configuration implies (embedding, head, layers, final norm), computed with overflow checks;
    /// throws naming the product that overflows.
    public func parameterCount(file: String, section s: String = "") throws -> Int {
        let embedding = try Checked.product("\(s)vocab_size × \(s)hidden_size", [vocabularySize, hiddenSize],
                                            file: file)
        let layer = try parametersPerLayer(file: file, section: s)
        let layerTotal = try Checked.product("\(s)num_hidden_layers × weights per layer", [layers, layer], file: file)
        return try Checked.sum("the parameter count", [embedding, tieWordEmbeddings ? 0 : embedding, layerTotal,
                                                       hiddenSize], file: file)
    }

    /// Weights of one decoder layer (projections, MLP, two norms; biases are too small to matter).
    func parametersPerLayer(file: String, section s: String = "") throws -> Int {
        // q and o: hidden × heads·head_dim each; k and v: hidden × kv_heads·head_dim each.
        let queries = try Checked.product("2 × \(s)hidden_size × \(s)num_attention_heads × \(s)head_dim",
                                          [2, hiddenSize, attentionHeads, headDim], file: file)
        let keys = try Checked.product("2 × \(s)hidden_size × \(s)num_key_value_heads × \(s)head_dim",
                                       [2, hiddenSize, keyValueHeads, headDim], file: file)
        let mlp = try Checked.product("3 × \(s)hidden_size × \(s)intermediate_size",
                                      [3, hiddenSize, intermediateSize], file: file)
        return try Checked.sum("the weights of one layer", [queries, keys, mlp, hiddenSize, hiddenSize], file: file)
    }

    public var attentionHeadLayout: AttentionHeads {
        AttentionHeads(heads: attentionHeads, kvHeads: keyValueHeads, headDim: headDim)
    }
}

extension RopeParameters {
    /// The first field out of range for this rope type, as (config key, problem); nil when all are fine.
    /// transformers only warns about some of these; here each would give frequencies of zero, infinity or NaN
    /// (llama3 divides by `high_freq_factor - low_freq_factor` and by each factor) or a silently changed model.
    func parameterProblem() -> (field: String, problem: String)? {
        func positive(_ name: String, _ value: Double) -> (String, String)? {
            value > 0 && value.isFinite ? nil : (name, "must be positive and finite, found \(value)")
        }
        if let problem = positive("rope_theta", theta) { return problem }
        switch type {
        case .default:
            return nil
        case .linear:
            return positive("factor", factor)
        case .dynamic, .llama3:
            if let problem = positive("factor", factor) { return problem }
            if type == .llama3 {
                if let problem = positive("low_freq_factor", lowFreqFactor) { return problem }
                guard highFreqFactor.isFinite, highFreqFactor > lowFreqFactor else {
                    return ("high_freq_factor", "must be finite and above low_freq_factor \(lowFreqFactor), "
                        + "found \(highFreqFactor)")
                }
            }
            guard originalMaxPositions > 0 else {
                return ("original_max_position_embeddings", "must be positive, found \(originalMaxPositions)"
                    + (type == .dynamic ? " (max_position_embeddings when absent)" : ""))
            }
            return nil
        }
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
    var mropeInterleaved: Bool?

    enum CodingKeys: String, CodingKey {
        case ropeType = "rope_type", type, ropeTheta = "rope_theta", factor
        case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
        case partialRotaryFactor = "partial_rotary_factor"
        case mropeSection = "mrope_section", mropeInterleaved = "mrope_interleaved"
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
