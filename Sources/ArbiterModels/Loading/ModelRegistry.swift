// The model_type registry: config.json's `model_type` → the architecture that loads it.
import ArbiterFormats
import ArbiterTensor
import Foundation

/// A loaded model Arbiter can run: a Llama-family decoder, possibly behind a vision tower.
public protocol ArbiterModel: AnyObject, Sendable {
    /// `model_type` from config.json.
    var modelType: String { get }
    /// The folder it was loaded from (or a name for models built in code).
    var identifier: String { get }
    /// The language model.
    var decoder: LlamaDecoder { get }
    /// Every hook name in forward order.
    var hookNames: [String] { get }
}

/// Maps `model_type` to a loader.
public enum ModelRegistry {
    public typealias Loader = @Sendable (ModelDirectory) throws -> any ArbiterModel

    public static let loaders: [String: Loader] = [
        "llama": { try CausalLanguageModel(directory: $0) },
        "qwen2": { try CausalLanguageModel(directory: $0) },
        "llava": { try LlavaModel(directory: $0) },
        "qwen2_5_vl": { try QwenVLModel(directory: $0) },
        "qwen2_vl": { try QwenVLModel(directory: $0) },
    ]

    public static var supportedTypes: [String] { loaders.keys.sorted() }

    /// Loads the Hugging Face model folder at `url`, with the matrix products in `compute` (nil:
    /// `ComputePrecision.fromEnvironment()`, f32 unless `ARBITER_COMPUTE` says otherwise).
    public static func load(_ url: URL, compute: ComputePrecision? = nil) throws -> any ArbiterModel {
        let directory = try ModelDirectory(url, compute: compute ?? ComputePrecision.fromEnvironment())
        guard let loader = loaders[directory.modelType] else {
            throw ModelError.unsupportedModelType(directory.modelType, file: directory.configURL.path, supported: supportedTypes)
        }
        return try loader(directory)
    }
}

/// A Hugging Face model folder: config.json (parsed once) and its checkpoint.
public struct ModelDirectory: Sendable {
    public let url: URL
    public let configURL: URL
    public let modelType: String
    /// Raw config.json bytes, decoded again by each architecture into its own Codable configuration.
    public let configData: Data
    /// The arithmetic of the matrix products (`weights(of:)` prepares the tensors for it).
    public let compute: ComputePrecision

    public init(_ url: URL, compute: ComputePrecision = .float32) throws {
        self.compute = compute
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw FormatError(.missing, file: url, "model directory does not exist (or is not a directory)")
        }
        self.url = url
        configURL = url.appendingPathComponent("config.json")
        configData = try JSONFile.data(at: configURL)
        // Parsed by the same strict decoder as the configurations, so JSON errors read the same here and there.
        struct TypeProbe: Decodable {
            let type: String?
            enum CodingKeys: String, CodingKey { case type = "model_type" }
            init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                type = try? c.decodeIfPresent(String.self, forKey: .type)  // not a string: reported below
            }
        }
        let probe = try JSONFile.decode(TypeProbe.self, from: configData, file: configURL.path)
        guard let type = probe.type else {
            throw FormatError(.missing, file: configURL, "no \"model_type\" string; cannot tell which architecture to load")
        }
        modelType = type
    }

    /// Decodes config.json as `T`.
    public func configuration<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONFile.decode(type, from: configData, file: configURL.path)
    }

    /// The checkpoint's tensors (single file or sharded).
    public func checkpoint() throws -> Checkpoint {
        try Checkpoint(directory: url)
    }

    /// The tensors of `checkpoint` as the model takes them for `compute` (rounded to bf16 for `.bfloat16`).
    public func weights(of checkpoint: Checkpoint) throws -> [String: StoredTensor] {
        try compute.tensors(checkpoint.tensors, source: url.path)
    }

    /// A file of the folder, if present.
    public func file(_ name: String) -> URL? {
        let u = url.appendingPathComponent(name)
        return FileManager.default.fileExists(atPath: u.path) ? u : nil
    }
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
        try ResourceGuard.check(configuration: config.memoryTerms(file: directory.configURL.path),
                                file: directory.configURL.path)
        checkpoint = try directory.checkpoint()
        try ResourceGuard.check(weights: checkpoint.totalBytes, configuration: config, model: directory.url.path)
        let tensors = try directory.weights(of: checkpoint)
        var weights = WeightStore(Self.sanitize(tensors), source: directory.url.path)
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
}
