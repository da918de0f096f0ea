// Qwen3-VL as a family: the registry entry, the image processor (Qwen2-VL's, which transformers 5.24's
// AutoImageProcessor gives a qwen3_vl folder: Qwen2VLImageProcessorPil without torchvision; checked against the
// tower), the grid carried as `image_grid_thw`, and what `ImageModel` asks of it.
//
// Default prompt layout: `qwen3-vl`. Qwen3VLProcessor (processing_qwen3_vl.py) expands the same
// `<|vision_start|><|image_pad|><|vision_end|>` placeholder inside the same `<|im_start|>role … <|im_end|>` turns
// as Qwen2-VL's, but Qwen3-VL's chat template (the hub's chat_template.json; not in transformers) writes a system
// turn only when the conversation has one, where Qwen2-VL's writes a default system message: `qwen2-vl` with its
// system piece left out.
import ArbiterFormats
import ArbiterTensor
import Foundation

extension ModelFamily {
    /// Qwen3-VL (vision tower with DeepStack mergers → Qwen3 decoder with interleaved 3-D rotary).
    public static let qwen3VL = ModelFamily(
        name: "Qwen3VL", modelTypes: ["qwen3_vl"], takesImages: true, defaultLayout: "qwen3-vl",
        load: { try Qwen3VLModel(directory: $0) },
        shape: { directory in
            let c = try directory.configuration(Qwen3VLConfiguration.self)
            try c.validate(file: directory.configURL.path)
            let v = c.visionConfig, m = v.spatialMergeSize, merged = Double(v.mergedWidth)
            let side = Qwen3VLModel.defaultImageSide
            // The image as the processor resizes it (smart_resize within min/max pixels) when the folder has
            // one, else as the tower patches it.
            var (height, width) = (side, side)
            if let file = directory.file("preprocessor_config.json") {
                (height, width) = try Qwen2VLImageProcessor(contentsOf: file).smartResize(height: side, width: side)
            }
            let p = max(v.patchSize, 1), mergers = Double(v.deepstackIndexes.count + 1)
            let vision = VisionTowerShape(layers: v.depth, width: v.width, intermediate: v.intermediateSize,
                                          mlpMatrices: 2, patchFeatures: v.patchFeatures,
                                          sequencePerImageToken: Double(m * m),
                                          projectorFLOPsPerToken: mergers * 2
                                              * (merged * merged + merged * Double(v.outputSize)),
                                          imageTokens: max(1, (height / p) * (width / p) / max(m * m, 1)))
            return ModelShape(decoder: c.textConfig, vision: vision, imageSide: side)
        })
}

extension Qwen3VLModel: ImageModel {
    /// Qwen3-VL takes any size; a multiple of 32 (patch 16 × merge 2) keeps the grid exact.
    static let defaultImageSide = 64

    public var imageToken: (id: Int, field: String) { (configuration.imageTokenID, "image_token_id") }
    public var defaultImageSide: Int { Self.defaultImageSide }

    /// The processor must patch and merge as the tower does.
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
}
