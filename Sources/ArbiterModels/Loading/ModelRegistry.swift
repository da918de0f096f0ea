// The model_type registry: config.json's `model_type` → the architecture that loads it.
import ArbiterFormats
import ArbiterTensor
import Foundation

/// A loaded model Arbiter can run: a Llama-family decoder, possibly behind a vision tower (then also an
/// `ImageModel`).
public protocol ArbiterModel: AnyObject, Sendable {
    /// `model_type` from config.json.
    var modelType: String { get }
    /// The folder it was loaded from (or a name for models built in code).
    var identifier: String { get }
    /// The language model.
    var decoder: LlamaDecoder { get }
    /// Every hook name in forward order.
    var hookNames: [String] { get }
    /// Rotary position ids of a prompt (three axes for Qwen-VL's multimodal rotary, one otherwise). Runs
    /// resumed from a cached residual stream must use these. Refuses an image the prompt's image tokens do
    /// not fit (and any image, for a text model).
    func positions(ids: [Int], image: PreparedImage?) throws -> PositionIDs
    /// The decoder's input embeddings (`hook_embed` before its hook): the image's features in place of the
    /// image tokens, running the vision tower with `hooks`.
    func inputEmbeddings(ids: [Int], image: PreparedImage?, hooks: HookRun?) throws -> Tensor
    /// The decoder's inputs from one run of the vision tower: the input embeddings (`inputEmbeddings`) and the
    /// rows the run adds to the residual stream after layers (Qwen3-VL's DeepStack; nil for other families).
    func decoderInputs(ids: [Int], image: PreparedImage?, hooks: HookRun?) throws
        -> (embeddings: Tensor, additions: ResidualAdditions?)
}

/// Maps `model_type` to its family's loader: one entry per family.
public enum ModelRegistry {
    public static let families: [ModelFamily] = [
        .textDecoder,
        .llava,
        .qwenVL,
        .qwen3VL,
        .internVL,
    ]

    public static var supportedTypes: [String] { families.flatMap(\.modelTypes).sorted() }

    /// The family that loads `modelType`, nil if none does.
    public static func family(of modelType: String) -> ModelFamily? {
        families.first { $0.modelTypes.contains(modelType) }
    }

    /// The family of `directory`'s config.json, or an error naming the file and the types Arbiter loads.
    public static func family(for directory: ModelDirectory) throws -> ModelFamily {
        guard let family = family(of: directory.modelType) else {
            throw ModelError.unsupportedModelType(directory.modelType, file: directory.configURL.path,
                                                  supported: supportedTypes)
        }
        return family
    }

    /// Loads the Hugging Face model folder at `url`, with the matrix products in `compute` (nil:
    /// `ComputePrecision.fromEnvironment()`, f32 unless `ARBITER_COMPUTE` says otherwise).
    public static func load(_ url: URL, compute: ComputePrecision? = nil) throws -> any ArbiterModel {
        let directory = try ModelDirectory(url, compute: compute ?? ComputePrecision.fromEnvironment())
        return try family(for: directory).load(directory)
    }

    /// The shapes of the model in `url` from its config.json alone.
    public static func shape(_ url: URL) throws -> (directory: ModelDirectory, shape: ModelShape) {
        let directory = try ModelDirectory(url)
        return (directory, try family(for: directory).shape(directory))
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
            throw FormatError(.missing, file: configURL,
                              "no \"model_type\" string; cannot tell which architecture to load")
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

    /// The checkpoint's tensors in a `WeightStore`, after the memory checks every loader makes first: the
    /// configuration's estimate (`memory`, from config.json alone), then the checkpoint's size against the decoder
    /// (`text`). `sanitize` maps the family's weight-name layouts onto one.
    public func weightStore(memory: [MemoryTerm], text: DecoderConfiguration,
                            sanitize: ([String: StoredTensor]) throws -> [String: StoredTensor]) throws
        -> (store: WeightStore, checkpoint: Checkpoint) {
        try ResourceGuard.check(configuration: memory, file: configURL.path)
        let checkpoint = try checkpoint()
        try ResourceGuard.check(weights: checkpoint.totalBytes, configuration: text, model: url.path)
        return (WeightStore(try sanitize(try weights(of: checkpoint)), source: url.path), checkpoint)
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
