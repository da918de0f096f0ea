// What a model family is to the rest of Arbiter. A family lives in one folder (`Llava/`, `QwenVL/`, `Decoder/`
// for text models): its model, configuration, image processor and this protocol's conformance, registered by
// one `ModelFamily` entry in `ModelRegistry.families`. The session, the golden comparison, the analyses, the
// plan, the claims and the CLI call only what is declared here: no code outside a family's folder names the
// family's types.
import ArbiterFormats
import ArbiterTensor
import Foundation

/// An image as its family's processor made it for the forward pass.
public struct PreparedImage: @unchecked Sendable {
    /// Pixel values as the vision tower takes them (LLaVA: `[3, H, W]`; Qwen-VL: `[patches, C·T·P·P]`).
    public let pixelValues: Tensor
    /// Image tokens the prompt holds for this image.
    public let tokenCount: Int
    /// Integer inputs beside the pixels, named as a golden file stores them (Qwen-VL: `image_grid_thw`
    /// `[images, 3]`); empty for families whose pixels say everything.
    public let integers: [String: IntegerArray]

    public init(pixelValues: Tensor, tokenCount: Int, integers: [String: IntegerArray] = [:]) {
        self.pixelValues = pixelValues
        self.tokenCount = tokenCount
        self.integers = integers
    }
}

/// An integer array with its shape, as golden files store integer inputs.
public struct IntegerArray: Sendable, Equatable {
    public let shape: [Int]
    public let values: [Int]
    public init(shape: [Int], values: [Int]) {
        self.shape = shape
        self.values = values
    }
}

/// A family's image processor, read from the model folder's `preprocessor_config.json` and checked against
/// the model's config.
public protocol ImagePreparing: Sendable {
    /// Pixel values, token count and integer inputs of `image`.
    func prepare(_ image: RGBImage) throws -> PreparedImage
}

/// A model that takes images. Text models are `ArbiterModel`s only.
public protocol ImageModel: ArbiterModel {
    /// The id config.json gives the image token, and the field it is read from (for messages).
    var imageToken: (id: Int, field: String) { get }
    /// The side of the square images drawn for the model when it says nothing else (LLaVA: the tower's
    /// image size; Qwen-VL: 56, a multiple of patch 14 × merge 2).
    var defaultImageSide: Int { get }
    /// The family's image processor from `file` (`preprocessor_config.json`), refused when it would make what
    /// the vision tower does not take (a crop other than the tower's size, another patch or merge size).
    func imageProcessor(contentsOf file: URL) throws -> any ImagePreparing
    /// The image inputs a golden file holds (`pixel_values` and the family's integer inputs), nil when none.
    func goldenImage(_ golden: GoldenActivations) throws -> PreparedImage?
    /// Checks of a golden file beyond its cached activations (Qwen-VL: `position_ids`, exactly).
    func goldenChecks(_ golden: GoldenActivations, ids: [Int], image: PreparedImage?) throws -> [ComparisonReport]
    /// `pixel_values` as a golden file stores them (as transformers takes them: LLaVA with a batch axis).
    func goldenPixelValues(of image: PreparedImage) -> Tensor
}

extension ImageModel {
    public func goldenChecks(_ golden: GoldenActivations, ids: [Int], image: PreparedImage?) throws
        -> [ComparisonReport] { [] }

    public func goldenPixelValues(of image: PreparedImage) -> Tensor { image.pixelValues }

    /// A golden file's `pixel_values` (a leading batch axis of 1 dropped), nil when absent.
    public func pixelValues(in golden: GoldenActivations) throws -> Tensor? {
        guard golden.contains("pixel_values") else { return nil }
        let p = try golden.tensor("pixel_values")
        return p.rank == 4 && p.shape[0] == 1 ? p.reshaped(Array(p.shape.dropFirst())) : p
    }
}

extension ArbiterModel {
    /// The model as an image model, nil for text models.
    public var images: (any ImageModel)? { self as? any ImageModel }

    /// Refuses an image given to a text model.
    func refuseImage(_ image: PreparedImage?) throws {
        guard image == nil else { throw ModelError.invalidInput("\(identifier) (\(modelType)) takes no images") }
    }

    /// The input embeddings and no residual additions: every family but Qwen3-VL's.
    public func decoderInputs(ids: [Int], image: PreparedImage?, hooks: HookRun?) throws
        -> (embeddings: Tensor, additions: ResidualAdditions?) {
        (try inputEmbeddings(ids: ids, image: image, hooks: hooks), nil)
    }

    /// Full forward: the decoder's inputs (positions first, so that an image that disagrees with the prompt
    /// fails before the vision tower runs), `hook_embed`, then the decoder. The output's `additions` are what
    /// runs resumed from its activations pass on.
    public func forward(ids: [Int], image: PreparedImage?, logits: LogitPositions = .all,
                        hooks: HookRun? = nil) throws -> DecoderOutput {
        let positions = try positions(ids: ids, image: image)
        var (x, additions) = try decoderInputs(ids: ids, image: image, hooks: hooks)
        try hooks.visit(HookName.embed, &x)
        return try decoder.forward(residual: x, positions: positions, logits: logits, hooks: hooks,
                                   additions: additions)
    }
}

/// A model family: the `model_type`s it loads, its loader, its default prompt layout and its shape from
/// config.json alone. `ModelRegistry.families` holds one entry per family.
public struct ModelFamily: Sendable {
    public typealias Loader = @Sendable (ModelDirectory) throws -> any ArbiterModel
    public typealias Shape = @Sendable (ModelDirectory) throws -> ModelShape

    /// The family's name (its folder).
    public let name: String
    /// config.json `model_type`s it loads.
    public let modelTypes: [String]
    /// Whether its models take images (are `ImageModel`s).
    public let takesImages: Bool
    /// The built-in prompt layout its models use when none is given (`raw` for text models).
    public let defaultLayout: String
    public let load: Loader
    /// The shapes the plan counts with, from config.json alone (no weights read).
    public let shape: Shape

    public init(name: String, modelTypes: [String], takesImages: Bool, defaultLayout: String,
                load: @escaping Loader, shape: @escaping Shape) {
        self.name = name
        self.modelTypes = modelTypes
        self.takesImages = takesImages
        self.defaultLayout = defaultLayout
        self.load = load
        self.shape = shape
    }
}

/// A model's shape from its config.json: the decoder configuration and, for image models, the vision tower's
/// cost shape and the side of the images drawn for it.
public struct ModelShape: Sendable {
    public var decoder: DecoderConfiguration
    public var vision: VisionTowerShape?
    /// The side of the square images drawn for the model (nil for text models).
    public var imageSide: Int?

    public init(decoder: DecoderConfiguration, vision: VisionTowerShape? = nil, imageSide: Int? = nil) {
        self.decoder = decoder
        self.vision = vision
        self.imageSide = imageSide
    }
}

/// The vision tower of an image model, as far as its cost goes.
public struct VisionTowerShape: Sendable, Codable, Equatable {
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
    /// Prompt tokens of one image of the side `ModelShape.imageSide` (LLaVA: the tower's grid; Qwen-VL: a
    /// 56-pixel image).
    public var imageTokens: Int

    public init(layers: Int, width: Int, intermediate: Int, mlpMatrices: Int, patchFeatures: Int,
                sequencePerImageToken: Double, projectorFLOPsPerToken: Double, imageTokens: Int) {
        self.layers = layers
        self.width = width
        self.intermediate = intermediate
        self.mlpMatrices = mlpMatrices
        self.patchFeatures = patchFeatures
        self.sequencePerImageToken = sequencePerImageToken
        self.projectorFLOPsPerToken = projectorFLOPsPerToken
        self.imageTokens = imageTokens
    }

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
