// InternVL as a family: its registry entry, its image processor (GotOcr2's tiling, checked against the tower)
// and what `ImageModel` asks of it. An image is a batch of tiles: pixel values `[tiles, 3, S, S]`, and
// `image_seq_length` image tokens per tile.
import ArbiterFormats
import ArbiterTensor
import Foundation

extension ModelFamily {
    /// InternVL 2.5 / 3 (InternViT tower → pixel shuffle → projector → Qwen2 or Llama decoder).
    public static let internVL = ModelFamily(
        name: "InternVL", modelTypes: ["internvl"], takesImages: true, defaultLayout: "internvl",
        load: { try InternVLModel(directory: $0) },
        shape: { directory in
            let c = try directory.configuration(InternVLConfiguration.self)
            try c.validate(file: directory.configURL.path)
            let v = c.visionConfig, input = Double(c.projectorInput), d = Double(c.textConfig.hiddenSize)
            // The square images drawn for the model are one tile each (a square canvas is 1 × 1).
            let vision = VisionTowerShape(layers: c.hiddenStateIndex, width: v.hiddenSize,
                                          intermediate: v.intermediateSize, mlpMatrices: 2,
                                          patchFeatures: v.patchFeatures,
                                          sequencePerImageToken: Double(v.positions) / Double(c.imageSeqLength),
                                          projectorFLOPsPerToken: 2 * (input * d + d * d),
                                          imageTokens: c.imageSeqLength)
            return ModelShape(decoder: c.textConfig, vision: vision, imageSide: v.imageSize.width)
        })
}

/// GotOcr2's tiling for an InternVL model: tiles `[tiles, 3, S, S]`, `image_seq_length` tokens each.
struct InternVLTiling: ImagePreparing {
    let processor: InternVLImageProcessor
    let tokensPerTile: Int

    func prepare(_ image: RGBImage) throws -> PreparedImage {
        let tiles = try processor.preprocess(image)
        return PreparedImage(pixelValues: tiles, tokenCount: tiles.shape[0] * tokensPerTile)
    }
}

extension InternVLModel: ImageModel {
    public var imageToken: (id: Int, field: String) { (configuration.imageTokenID, "image_token_id") }
    /// One tile: a square image of the tower's size is not split.
    public var defaultImageSide: Int { configuration.visionConfig.imageSize.width }

    /// The processor's tiles must be what the tower takes; otherwise every image fails later with a shape error
    /// that names neither file.
    public func imageProcessor(contentsOf file: URL) throws -> any ImagePreparing {
        let processor = try InternVLImageProcessor(contentsOf: file)
        let p = processor.config, v = configuration.visionConfig
        guard p.tileHeight == v.imageSize.height, p.tileWidth == v.imageSize.width else {
            throw FormatError(.inconsistent, file: file, "size is \(p.tileHeight)×\(p.tileWidth) but "
                              + "vision_config.image_size is \(v.imageSize.height)×\(v.imageSize.width): "
                              + "preprocessor_config.json and config.json do not match")
        }
        return InternVLTiling(processor: processor, tokensPerTile: configuration.imageSeqLength)
    }

    /// `pixel_values` `[tiles, 3, S, S]` (kept whole: one tile is still a batch of one).
    public func goldenImage(_ golden: GoldenActivations) throws -> PreparedImage? {
        guard golden.contains("pixel_values") else { return nil }
        let pixels = try golden.tensor("pixel_values")
        guard pixels.rank == 4, pixels.shape[0] > 0 else {
            throw FormatError(.inconsistent, file: golden.url, "'pixel_values' has shape \(pixels.shape), expected "
                              + "[tiles, 3, height, width]")
        }
        return PreparedImage(pixelValues: pixels, tokenCount: pixels.shape[0] * configuration.imageSeqLength)
    }

    /// Sequential positions; refuses, before the tower runs, an image whose tiles do not fit the prompt's
    /// image tokens.
    public func positions(ids: [Int], image: PreparedImage?) throws -> PositionIDs {
        let id = configuration.imageTokenID, count = ids.lazy.filter { $0 == id }.count
        guard let image else {
            if count > 0 {
                throw ModelError.invalidInput("the prompt has \(count) image tokens (id \(id)) but no image was given")
            }
            return .sequential(ids.count)
        }
        let p = image.pixelValues, v = configuration.visionConfig
        guard p.rank == 4, p.shape[0] > 0, Array(p.shape.dropFirst()) == [v.numChannels, v.imageSize.height,
                                                                          v.imageSize.width] else {
            throw ModelError.invalidInput("pixel values have shape \(p.shape); InternVL wants tiles [tiles, "
                                          + "\(v.numChannels), \(v.imageSize.height), \(v.imageSize.width)] "
                                          + "(vision_config.image_size)")
        }
        let tiles = p.shape[0], expected = tiles * configuration.imageSeqLength
        guard count == expected, image.tokenCount == expected else {
            throw ModelError.invalidInput("the prompt has \(count) image tokens (id \(id)) but the image's \(tiles) "
                                          + "tiles take \(expected) (image_seq_length \(configuration.imageSeqLength) "
                                          + "per tile)")
        }
        return .sequential(ids.count)
    }

    public func inputEmbeddings(ids: [Int], image: PreparedImage?, hooks: HookRun?) throws -> Tensor {
        guard let image else {
            if ids.contains(configuration.imageTokenID) {
                throw ModelError.invalidInput("the prompt has image tokens but no image was given")
            }
            return try decoder.embed(ids)
        }
        _ = try positions(ids: ids, image: image)
        let features = try imageFeatures(tiles: image.pixelValues, hooks: hooks)
        return try decoder.embed(ids, replacing: configuration.imageTokenID, with: features)
    }
}
