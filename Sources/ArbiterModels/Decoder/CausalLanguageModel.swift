// The text family: a Llama-family causal LM (`llama`, `qwen2`) and its registry entry.
import ArbiterFormats
import ArbiterTensor
import Foundation

extension ModelFamily {
    /// Text-only Llama-family decoders.
    public static let textDecoder = ModelFamily(
        name: "Decoder", modelTypes: ["llama", "qwen2"], takesImages: false, defaultLayout: "raw",
        load: { try CausalLanguageModel(directory: $0) },
        shape: { directory in
            let c = try directory.configuration(DecoderConfiguration.self)
            try c.validate(file: directory.configURL.path)
            return ModelShape(decoder: c)
        })
}

/// A text-only Llama-family causal LM (`llama`, `qwen2`).
public final class CausalLanguageModel: ArbiterModel, @unchecked Sendable {
    public let modelType: String
    public let identifier: String
    public let decoder: LlamaDecoder
    /// Keeps the memory maps alive.
    let checkpoint: Checkpoint

    public init(directory: ModelDirectory) throws {
        let config = try directory.configuration(DecoderConfiguration.self)
        try config.validate(file: directory.configURL.path)
        var (weights, checkpoint) = try directory.weightStore(
            memory: config.memoryTerms(file: directory.configURL.path), text: config, sanitize: Self.sanitize)
        self.checkpoint = checkpoint
        decoder = try LlamaDecoder(configuration: config, weights: &weights)
        try weights.finish()
        modelType = directory.modelType
        identifier = directory.url.lastPathComponent
    }

    /// Drops derived tensors (`rotary_emb.inv_freq`, kept by some older checkpoints).
    static func sanitize(_ tensors: [String: StoredTensor]) -> [String: StoredTensor] {
        tensors.filter { !$0.key.hasSuffix("rotary_emb.inv_freq") }
    }

    public var hookNames: [String] { decoder.hookNames }

    public func positions(ids: [Int], image: PreparedImage?) throws -> PositionIDs {
        try refuseImage(image)
        return .sequential(ids.count)
    }

    public func inputEmbeddings(ids: [Int], image: PreparedImage?, hooks: HookRun?) throws -> Tensor {
        try refuseImage(image)
        return try decoder.embed(ids)
    }
}
