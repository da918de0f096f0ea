// Qwen2-VL and Qwen2.5-VL as a family: the registry entry, the image processor (checked against the tower),
// the image grid carried as the integer input `image_grid_thw`, and what `ImageModel` asks of it.
import ArbiterFormats
import ArbiterTensor
import Foundation

extension ModelFamily {
    /// Qwen2-VL and Qwen2.5-VL (patch-merging vision tower → Qwen2 decoder with 3-D rotary).
    public static let qwenVL = ModelFamily(
        name: "QwenVL", modelTypes: ["qwen2_vl", "qwen2_5_vl"], takesImages: true, defaultLayout: "qwen2-vl",
        load: { try QwenVLModel(directory: $0) },
        shape: { directory in
            let c = try directory.configuration(QwenVLConfiguration.self)
            try c.validate(file: directory.configURL.path)
            let v = c.visionConfig, m = v.spatialMergeSize, w = Double(v.width)
            let merged = Double(m * m) * w, side = QwenVLModel.defaultImageSide
            // The image as the processor resizes it (smart_resize within min/max pixels) when the folder has
            // one, else as the tower patches it.
            var (height, width) = (side, side)
            if let file = directory.file("preprocessor_config.json") {
                (height, width) = try Qwen2VLImageProcessor(contentsOf: file).smartResize(height: side, width: side)
            }
            let p = max(v.patchSize, 1)
            let vision = VisionTowerShape(layers: v.depth, width: v.width, intermediate: v.intermediateSize,
                                          mlpMatrices: v.kind == .qwen2VL ? 2 : 3, patchFeatures: v.patchFeatures,
                                          sequencePerImageToken: Double(m * m),
                                          projectorFLOPsPerToken: 2 * (merged * merged + merged * Double(v.outputSize)),
                                          imageTokens: max(1, (height / p) * (width / p) / max(m * m, 1)))
            return ModelShape(decoder: c.textConfig, vision: vision, imageSide: side)
        })
}

/// Qwen2-VL's processor for a model of patch grids (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): pixel patches
/// `[patches, C·T·P·P]` and the grid as `image_grid_thw` `[1, 3]`, with the model's image tokens per grid.
struct QwenVLImageProcessor: ImagePreparing {
    let processor: Qwen2VLImageProcessor
    let tokenCount: @Sendable (VisionGrid) -> Int

    func prepare(_ image: RGBImage) throws -> PreparedImage {
        let processed = try processor.preprocess(image, source: "image")
        return QwenVLModel.image(processed.pixelValues, grids: [processed.grid], tokens: tokenCount(processed.grid))
    }
}

extension QwenVLModel: ImageModel {
    /// Qwen-VL takes any size; a multiple of 28 (patch 14 × merge 2) keeps the grid exact.
    static let defaultImageSide = 56
    /// The integer input holding the image grids.
    static let gridInput = "image_grid_thw"

    public var imageToken: (id: Int, field: String) { (configuration.imageTokenID, "image_token_id") }
    public var defaultImageSide: Int { Self.defaultImageSide }

    /// The processor must patch and merge as the tower does: otherwise every image fails later with a shape
    /// error that names neither file.
    public func imageProcessor(contentsOf file: URL) throws -> any ImagePreparing {
        let v = configuration.visionConfig
        return QwenVLImageProcessor(processor: try QwenGridImages.processor(
            contentsOf: file, patchSize: v.patchSize, mergeSize: v.spatialMergeSize,
            temporalPatchSize: v.temporalPatchSize), tokenCount: imageTokenCount)
    }

    /// Pixel patches `[N, C·T·P·P]` and `image_grid_thw` `[images, 3]`.
    public func goldenImage(_ golden: GoldenActivations) throws -> PreparedImage? {
        try QwenGridImages.goldenImage(golden, pixels: try pixelValues(in: golden), tokenCount: imageTokenCount)
    }

    /// The 3-D `position_ids` `[3, T]` of a golden file, compared exactly with `positions(ids:image:)`.
    public func goldenChecks(_ golden: GoldenActivations, ids: [Int], image: PreparedImage?) throws
        -> [ComparisonReport] {
        try QwenGridImages.positionCheck(golden, ids: ids) { try positions(ids: ids, image: image) }
    }

    /// 3-D positions (`get_rope_index`) with an image, sequential without.
    public func positions(ids: [Int], image: PreparedImage?) throws -> PositionIDs {
        guard let image else {
            if ids.contains(configuration.imageTokenID) {
                throw ModelError.invalidInput("the prompt has image tokens (id \(configuration.imageTokenID)) "
                                              + "but no image was given")
            }
            return .sequential(ids.count)
        }
        return try positionIDs(ids: ids, grids: try Self.grids(of: image))
    }

    public func inputEmbeddings(ids: [Int], image: PreparedImage?, hooks: HookRun?) throws -> Tensor {
        guard let image else {
            if ids.contains(configuration.imageTokenID) {
                throw ModelError.invalidInput("the prompt has image tokens (id \(configuration.imageTokenID)) "
                                              + "but no image was given")
            }
            return try decoder.embed(ids)
        }
        let features = try imageFeatures(pixelValues: image.pixelValues, grids: try Self.grids(of: image),
                                         hooks: hooks)
        return try decoder.embed(ids, replacing: configuration.imageTokenID, with: features)
    }

    /// A prepared image of pixel patches and their grids.
    static func image(_ pixels: Tensor, grids: [VisionGrid], tokens: Int) -> PreparedImage {
        PreparedImage(pixelValues: pixels, tokenCount: tokens, integers: [
            gridInput: IntegerArray(shape: [grids.count, 3], values: grids.flatMap { [$0.t, $0.h, $0.w] }),
        ])
    }

    /// A prepared image from optional pixels and grids (nil when neither is given).
    static func image(pixelValues: Tensor?, grids: [VisionGrid], tokens: [Int]) throws -> PreparedImage? {
        guard let pixelValues else {
            guard grids.isEmpty else { throw ModelError.invalidInput("image grids were given without pixel values") }
            return nil
        }
        return image(pixelValues, grids: grids, tokens: tokens.reduce(0, +))
    }

    /// The grids of a prepared image (`image_grid_thw`).
    static func grids(of image: PreparedImage) throws -> [VisionGrid] {
        guard let g = image.integers[gridInput], g.shape.count == 2, g.shape[1] == 3,
              g.values.count == g.shape[0] * 3 else {
            throw ModelError.invalidInput("the image has no '\(gridInput)' [images, 3]: Qwen-VL needs its patch grid")
        }
        return (0..<g.shape[0]).map {
            VisionGrid(t: g.values[3 * $0], h: g.values[3 * $0 + 1], w: g.values[3 * $0 + 2])
        }
    }
}

/// What every model whose images are Qwen2-VL patch grids shares (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): the
/// processor's check against the tower, the golden file's image inputs and its exact 3-D position check.
enum QwenGridImages {
    /// Qwen2-VL's processor from `file`, refused when it patches or merges otherwise than the tower
    /// (`vision`: its patch, merge and temporal patch sizes).
    static func processor(contentsOf file: URL, patchSize: Int, mergeSize: Int, temporalPatchSize: Int) throws
        -> Qwen2VLImageProcessor {
        let processor = try Qwen2VLImageProcessor(contentsOf: file)
        let p = processor.config
        for (field, mine, theirs, key) in [("patch_size", p.patchSize, patchSize, "patch_size"),
                                           ("merge_size", p.mergeSize, mergeSize, "spatial_merge_size"),
                                           ("temporal_patch_size", p.temporalPatchSize, temporalPatchSize,
                                            "temporal_patch_size")] where mine != theirs {
            throw FormatError(.inconsistent, file: file, "\(field) is \(mine) but vision_config.\(key) is \(theirs): "
                              + "preprocessor_config.json and config.json do not match")
        }
        return processor
    }

    /// Pixel patches `[N, C·T·P·P]` and `image_grid_thw` `[images, 3]` of a golden file, nil without pixels.
    static func goldenImage(_ golden: GoldenActivations, pixels: Tensor?,
                            tokenCount: (VisionGrid) -> Int) throws -> PreparedImage? {
        guard let pixels else { return nil }
        let (shape, values) = try golden.integers(QwenVLModel.gridInput)
        guard shape.count == 2, shape[1] == 3 else {
            throw FormatError(.inconsistent, file: golden.url,
                              "'\(QwenVLModel.gridInput)' has shape \(shape), expected [images, 3]")
        }
        let grids = (0..<shape[0]).map { VisionGrid(t: values[3 * $0], h: values[3 * $0 + 1], w: values[3 * $0 + 2]) }
        return QwenVLModel.image(pixels, grids: grids, tokens: grids.map(tokenCount).reduce(0, +))
    }

    /// The golden file's 3-D `position_ids` `[3, T]` against `positions`, exactly (none when it has none).
    static func positionCheck(_ golden: GoldenActivations, ids: [Int],
                              positions: () throws -> PositionIDs) throws -> [ComparisonReport] {
        guard golden.integerNames.contains("position_ids") else { return [] }
        let (shape, values) = try golden.integers("position_ids")
        let positions = try positions()
        let axes = positions.axes.count == 3 ? positions.axes : Array(repeating: positions.axes[0], count: 3)
        let actual = Tensor(shape: [3, ids.count], scalars: axes.flatMap { $0.map(Float.init) })
        let reference = Tensor(shape: shape, scalars: values.map { Float($0) })
        return [compare(actual, to: reference,
                        tolerance: Tolerance(atol: 0, rtol: 0, nmse: 0, reason: "integer positions are exact"),
                        label: "\(golden.modelID)/\(golden.caseName) position_ids")]
    }
}
