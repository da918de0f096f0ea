// LLaVA as a family: its registry entry, its image processor (CLIP's, checked against the tower) and what
// `ImageModel` asks of it.
import ArbiterFormats
import ArbiterTensor
import Foundation

extension ModelFamily {
    /// LLaVA (CLIP tower → projector → Llama-family decoder).
    public static let llava = ModelFamily(
        name: "Llava", modelTypes: ["llava"], takesImages: true, defaultLayout: "llava-1.5",
        load: { try LlavaModel(directory: $0) },
        shape: { directory in
            let c = try directory.configuration(LlavaConfiguration.self)
            try c.validate(file: directory.configURL.path)
            let v = c.visionConfig, grid = v.grid
            let deepest = try c.visionFeatureLayers.map { try c.hiddenStateIndex($0) }.max() ?? v.layers
            let tokens = c.imageTokenCount
            let dv = Double(v.hiddenSize * c.visionFeatureLayers.count), d = Double(c.textConfig.hiddenSize)
            let vision = VisionTowerShape(layers: deepest, width: v.hiddenSize, intermediate: v.intermediateSize,
                                          mlpMatrices: 2, patchFeatures: v.numChannels * v.patchSize * v.patchSize,
                                          sequencePerImageToken: Double(grid * grid + 1) / Double(tokens),
                                          projectorFLOPsPerToken: 2 * (dv * d + d * d), imageTokens: tokens)
            return ModelShape(decoder: c.textConfig, vision: vision, imageSide: v.imageSize)
        })
}

extension LlavaConfiguration {
    /// Image tokens one image takes in the prompt: the tower's grid (and the class token with the `full`
    /// select strategy).
    public var imageTokenCount: Int {
        visionConfig.grid * visionConfig.grid + (visionFeatureSelectStrategy == .full ? 1 : 0)
    }
}

/// CLIP's processor for a LLaVA model: pixel values `[3, S, S]` and the model's image token count.
struct LlavaImageProcessor: ImagePreparing {
    let processor: CLIPImageProcessor
    let tokenCount: Int

    func prepare(_ image: RGBImage) throws -> PreparedImage {
        PreparedImage(pixelValues: try processor.preprocess(image), tokenCount: tokenCount)
    }
}

extension LlavaModel: ImageModel {
    public var imageToken: (id: Int, field: String) { (configuration.imageTokenID, configuration.imageTokenField) }
    public var defaultImageSide: Int { configuration.visionConfig.imageSize }

    /// The image processor must make what the vision tower takes: otherwise every image fails later with a
    /// shape error that names neither file.
    public func imageProcessor(contentsOf file: URL) throws -> any ImagePreparing {
        let processor = try CLIPImageProcessor(contentsOf: file)
        func refuse(_ problem: String) -> FormatError {
            FormatError(.inconsistent, file: file, "\(problem): preprocessor_config.json and config.json do not match")
        }
        let p = processor.config, side = configuration.visionConfig.imageSize
        guard p.doCenterCrop else {
            throw refuse("do_center_crop is false, so images keep their aspect ratio, but the vision tower takes "
                         + "\(side)×\(side) pixels (vision_config.image_size)")
        }
        guard p.cropHeight == side, p.cropWidth == side else {
            throw refuse("crop_size is \(p.cropHeight)×\(p.cropWidth) but vision_config.image_size is \(side)")
        }
        return LlavaImageProcessor(processor: processor, tokenCount: configuration.imageTokenCount)
    }

    public func goldenImage(_ golden: GoldenActivations) throws -> PreparedImage? {
        try pixelValues(in: golden).map { PreparedImage(pixelValues: $0, tokenCount: configuration.imageTokenCount) }
    }

    /// `[1, 3, S, S]`, as transformers takes them.
    public func goldenPixelValues(of image: PreparedImage) -> Tensor {
        image.pixelValues.reshaped([1] + image.pixelValues.shape)
    }

    public func positions(ids: [Int], image: PreparedImage?) throws -> PositionIDs { .sequential(ids.count) }

    public func inputEmbeddings(ids: [Int], image: PreparedImage?, hooks: HookRun?) throws -> Tensor {
        guard let image else {
            if ids.contains(configuration.imageTokenID) {
                throw ModelError.invalidInput("the prompt has image tokens but no image was given")
            }
            return try decoder.embed(ids)
        }
        let features = try imageFeatures(pixelValues: image.pixelValues, hooks: hooks)
        return try decoder.embed(ids, replacing: configuration.imageTokenID, with: features)
    }
}
