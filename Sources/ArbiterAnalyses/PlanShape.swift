// The shapes `VerifyPlan` counts with: a model's decoder and vision tower, read from config.json alone (no
// weights needed), and the FLOPs of its pieces. A multiply-add is 2 FLOPs.
import ArbiterFormats
import ArbiterModels
import Foundation

/// The vision tower of an image model, as far as its cost goes.
public struct PlanVisionShape: Sendable, Codable, Equatable {
    /// Layers run per image (LLaVA: up to the deepest feature layer).
    public var layers: Int
    public var width: Int
    public var intermediate: Int
    /// Weight matrices of one MLP: 2 (fc1/fc2) or 3 (SwiGLU).
    public var mlpMatrices: Int
    /// Input features of one patch (channels · patch², · temporal patch for Qwen-VL).
    public var patchFeatures: Int
    /// Tokens inside the tower per prompt image token (LLaVA: (grid² + 1) / grid²; Qwen-VL: merge²).
    public var sequencePerImageToken: Double
    /// Projector / patch merger FLOPs per image token.
    public var projectorFLOPsPerToken: Double
    /// Prompt tokens of one image of the generated data (LLaVA: the tower's grid; Qwen-VL: a 56-pixel image,
    /// the size `ModelSession.imageSize` generates for it).
    public var imageTokens: Int

    /// FLOPs of the tower and projector for an image of `imageTokens` prompt tokens (attention over the whole
    /// image in every layer: Qwen2.5-VL's windowed layers cost less, so this is its upper bound).
    public func flops(imageTokens: Int) -> Double {
        guard imageTokens > 0 else { return 0 }
        let n = (Double(imageTokens) * sequencePerImageToken).rounded(), w = Double(width)
        let perRow = 2 * 4 * w * w + 2 * Double(mlpMatrices) * w * Double(intermediate)
        let perLayer = n * perRow + 4 * w * n * n
        return 2 * n * Double(patchFeatures) * w + Double(layers) * perLayer
            + Double(imageTokens) * projectorFLOPsPerToken
    }
}

/// A model's shape for the plan: the decoder's sizes, the vision tower's (nil for a text model), and the bytes
/// of its weights.
public struct PlanModelShape: Sendable, Codable, Equatable {
    public var modelType: String
    public var layers: Int
    public var hidden: Int
    public var heads: Int
    public var keyValueHeads: Int
    public var headDim: Int
    public var intermediate: Int
    public var vocabulary: Int
    public var vision: PlanVisionShape?
    /// Bytes of the weights as stored (the checkpoint's size when there is one, else counted from the config
    /// at its `torch_dtype`/`dtype`): memory-mapped, so they count once towards the peak.
    public var weightBytes: Int
    /// The decoder configuration (the calibration builds layers of these shapes).
    public var decoder: DecoderConfiguration

    public init(modelType: String, decoder c: DecoderConfiguration, vision: PlanVisionShape?, weightBytes: Int? = nil,
                dtypeBytes: Int = 4) {
        self.modelType = modelType
        layers = c.layers
        hidden = c.hiddenSize
        heads = c.attentionHeads
        keyValueHeads = c.keyValueHeads
        headDim = c.headDim
        intermediate = c.intermediateSize
        vocabulary = c.vocabularySize
        self.vision = vision
        decoder = c
        self.weightBytes = weightBytes ?? 0
        if weightBytes == nil { self.weightBytes = Int(parameterCount) * dtypeBytes }
    }

    /// FLOPs of the matrix products of one decoder layer per token row (q, k, v, o and the SwiGLU MLP).
    public var linearFLOPsPerRow: Double {
        let d = Double(hidden), q = Double(heads * headDim), kv = Double(keyValueHeads * headDim)
        return 2 * (d * q + 2 * d * kv + q * d) + 2 * 3 * d * Double(intermediate)
    }

    /// FLOPs of the k and v projections per row (all the final layer of a batched pass computes for rows but the last).
    public var keyValueFLOPsPerRow: Double { 2 * 2 * Double(hidden * keyValueHeads * headDim) }

    /// FLOPs of attention (scores and mix) per (query row, key) pair, all heads: the products are computed over
    /// the whole rectangle of queries × keys (the causal mask skips only the softmax of masked entries).
    public var attentionFLOPsPerPair: Double { 4 * Double(heads * headDim) }

    /// FLOPs of the logits of one row.
    public var logitFLOPsPerRow: Double { 2 * Double(hidden) * Double(vocabulary) }

    /// Parameters counted from the shapes (decoder, embedding, head, vision tower, projector).
    public var parameterCount: Double {
        let d = Double(hidden), q = Double(heads * headDim), kv = Double(keyValueHeads * headDim)
        let layer = d * q + 2 * d * kv + q * d + 3 * d * Double(intermediate) + 2 * d
        let head = decoder.tieWordEmbeddings ? 0 : Double(vocabulary) * d
        var total = Double(layers) * layer + Double(vocabulary) * d + head + d
        if let v = vision {
            let w = Double(v.width)
            total += Double(v.layers) * (4 * w * w + Double(v.mlpMatrices) * w * Double(v.intermediate))
                + Double(v.patchFeatures) * w + v.projectorFLOPsPerToken / 2
        }
        return total
    }

    /// The model types `shape(of:)` reads.
    public static let supportedTypes = ["llama", "llava", "qwen2", "qwen2_5_vl", "qwen2_vl"]

    /// The shape of the model in `folder` from its config.json alone (weights are not read; their size is the
    /// checkpoint's when present). `imageSide`: the side in pixels of the images Qwen-VL will see (LLaVA's
    /// images are resized to the tower's size).
    public static func shape(of folder: URL, imageSide: Int? = nil) throws -> PlanModelShape {
        let directory = try ModelDirectory(folder)
        let file = directory.configURL.path
        let stored = try? directory.checkpoint().totalBytes
        let dtype = try directory.configuration(DTypeProbe.self).bytes
        switch directory.modelType {
        case "llama", "qwen2":
            let c = try directory.configuration(DecoderConfiguration.self)
            try c.validate(file: file)
            return PlanModelShape(modelType: directory.modelType, decoder: c, vision: nil, weightBytes: stored,
                                  dtypeBytes: dtype)
        case "llava":
            let c = try directory.configuration(LlavaConfiguration.self)
            try c.validate(file: file)
            let v = c.visionConfig, grid = v.grid
            let deepest = try c.visionFeatureLayers.map { try c.hiddenStateIndex($0) }.max() ?? v.layers
            let tokens = grid * grid + (c.visionFeatureSelectStrategy == .full ? 1 : 0)
            let dv = Double(v.hiddenSize * c.visionFeatureLayers.count), d = Double(c.textConfig.hiddenSize)
            let vision = PlanVisionShape(layers: deepest, width: v.hiddenSize, intermediate: v.intermediateSize,
                                         mlpMatrices: 2, patchFeatures: v.numChannels * v.patchSize * v.patchSize,
                                         sequencePerImageToken: Double(grid * grid + 1) / Double(tokens),
                                         projectorFLOPsPerToken: 2 * (dv * d + d * d), imageTokens: tokens)
            return PlanModelShape(modelType: "llava", decoder: c.textConfig, vision: vision, weightBytes: stored,
                                  dtypeBytes: dtype)
        case "qwen2_vl", "qwen2_5_vl":
            let c = try directory.configuration(QwenVLConfiguration.self)
            try c.validate(file: file)
            let v = c.visionConfig, m = v.spatialMergeSize, w = Double(v.width)
            let merged = Double(m * m) * w
            let vision = PlanVisionShape(layers: v.depth, width: v.width, intermediate: v.intermediateSize,
                                         mlpMatrices: v.kind == .qwen2VL ? 2 : 3, patchFeatures: v.patchFeatures,
                                         sequencePerImageToken: Double(m * m),
                                         projectorFLOPsPerToken: 2 * (merged * merged + merged * Double(v.outputSize)),
                                         imageTokens: max(1, (56 / max(v.patchSize, 1)) * (56 / max(v.patchSize, 1))
                                                          / max(m * m, 1)))
            return PlanModelShape(modelType: directory.modelType, decoder: c.textConfig, vision: vision,
                                  weightBytes: stored, dtypeBytes: dtype)
        default:
            throw ModelError.unsupportedModelType(directory.modelType, file: file, supported: supportedTypes)
        }
    }
}

/// Bytes per weight from config.json's `torch_dtype` (or `dtype`): 2 for 16-bit types, else 4.
private struct DTypeProbe: Decodable {
    let bytes: Int
    enum CodingKeys: String, CodingKey { case torchDType = "torch_dtype", dtype }
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = (try? c.decodeIfPresent(String.self, forKey: .torchDType))
            ?? (try? c.decodeIfPresent(String.self, forKey: .dtype))
        bytes = ["bfloat16", "float16", "half"].contains(name ?? "") ? 2 : 4
    }
}
