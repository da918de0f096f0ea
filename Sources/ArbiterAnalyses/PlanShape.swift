// The shapes `VerifyPlan` counts with: a model's decoder and vision tower, read from config.json alone (no
// weights needed), and the FLOPs of its pieces. A multiply-add is 2 FLOPs.
import ArbiterFormats
import ArbiterModels
import Foundation

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
    public var vision: VisionTowerShape?
    /// Bytes of the weights as stored (the checkpoint's size when there is one, else counted from the config
    /// at its `torch_dtype`/`dtype`): memory-mapped, so they count once towards the peak.
    public var weightBytes: Int
    /// The decoder configuration (the calibration builds layers of these shapes).
    public var decoder: DecoderConfiguration

    public init(modelType: String, decoder c: DecoderConfiguration, vision: VisionTowerShape?, weightBytes: Int? = nil,
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

    /// The model types `shape(of:)` reads: every registered family's.
    public static var supportedTypes: [String] { ModelRegistry.supportedTypes }

    /// The shape of the model in `folder` from its config.json alone (weights are not read; their size is the
    /// checkpoint's when present), as its family reads it (`ModelFamily.shape`).
    public static func shape(of folder: URL) throws -> PlanModelShape {
        let (directory, shape) = try ModelRegistry.shape(folder)
        let stored = try? directory.checkpoint().totalBytes
        let dtype = try directory.configuration(DTypeProbe.self).bytes
        return PlanModelShape(modelType: directory.modelType, decoder: shape.decoder, vision: shape.vision,
                              weightBytes: stored, dtypeBytes: dtype)
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
