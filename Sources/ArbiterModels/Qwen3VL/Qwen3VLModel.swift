// Qwen3-VL: vision tower with patch merger and DeepStack mergers → Qwen3 language model (q/k RMSNorm, interleaved
// multimodal rotary) that adds the DeepStack features to the image rows after its first layers. Mirrors
// transformers/models/qwen3_vl/modeling_qwen3_vl.py (transformers 5.24): Qwen3VLModel.get_rope_index (for images
// the same positions as Qwen2-VL's), get_image_features, the masked_scatter merge, Qwen3VLTextModel's
// _deepstack_process, Qwen3VLForConditionalGeneration.
//
// Hook points: the vision tower's (`vision.…`, see Qwen3VisionTower.swift), then
//   hook_image_features   [U, d_model]  the final merger's output (one row per image token)
// and the language model's (`hook_embed` holds the merged embeddings; `blocks.{k}.hook_deepstack` [U, d_model]
// after `blocks.{k}.hook_resid_post` for k < len(deepstack_visual_indexes): the k-th DeepStack feature map added at
// the image rows, see ResidualAdditions.swift).
//
// rope_deltas play no part, as for Qwen2-VL (QwenVLModel.swift).
import ArbiterFormats
import ArbiterTensor
import Foundation

public final class Qwen3VLModel: ArbiterModel, @unchecked Sendable {
    public let modelType: String
    public let identifier: String
    public let configuration: Qwen3VLConfiguration
    public let vision: Qwen3VisionTower
    public let decoder: LlamaDecoder
    let checkpoint: Checkpoint?

    public convenience init(directory: ModelDirectory) throws {
        let config = try directory.configuration(Qwen3VLConfiguration.self)
        try config.validate(file: directory.configURL.path)
        // Qwen3-VL's hub files and transformers 5.24's save_pretrained both write the in-memory layout
        // (`model.visual.…`, `model.language_model.…`, `lm_head.…`); QwenVLModel.sanitize also maps the older
        // Qwen2-VL hub layout and drops derived rotary buffers.
        var (weights, checkpoint) = try directory.weightStore(
            memory: config.memoryTerms(file: directory.configURL.path), text: config.textConfig,
            sanitize: QwenVLModel.sanitize)
        try self.init(configuration: config, weights: &weights, identifier: directory.url.lastPathComponent,
                      checkpoint: checkpoint)
        try weights.finish()
    }

    init(configuration c: Qwen3VLConfiguration, weights w: inout WeightStore, identifier: String,
         checkpoint: Checkpoint?) throws {
        configuration = c
        modelType = c.modelType
        self.identifier = identifier
        self.checkpoint = checkpoint
        vision = try Qwen3VisionTower(configuration: c.visionConfig, weights: &w, prefix: "model.visual")
        decoder = try LlamaDecoder(configuration: c.textConfig, weights: &w, modelPrefix: "model.language_model.",
                                   lmHeadName: "lm_head.weight",
                                   additionLayers: c.visionConfig.deepstackIndexes.count)
    }

    public var hookNames: [String] { vision.hookNames + [HookName.imageFeatures] + decoder.hookNames }

    /// Merged tokens of one image grid (`t · h/m · w/m`).
    public func imageTokenCount(_ grid: VisionGrid) -> Int {
        let m = configuration.visionConfig.spatialMergeSize
        return grid.t * (grid.h / m) * (grid.w / m)
    }

    /// 3-D position ids of a prompt with image `grids` (`get_rope_index`, images only).
    public func positionIDs(ids: [Int], grids: [VisionGrid]) throws -> PositionIDs {
        try QwenVLModel.positionIDs(ids: ids, grids: grids, imageTokenID: configuration.imageTokenID,
                                    videoTokenID: configuration.videoTokenID,
                                    mergeSize: configuration.visionConfig.spatialMergeSize)
    }

    /// The image's features (`hook_image_features`) and DeepStack features of pixel patches `[patches, C·T·P·P]`.
    public func imageFeatures(pixelValues: Tensor, grids: [VisionGrid], hooks: HookRun? = nil) throws
        -> (features: Tensor, deepstack: [Tensor]) {
        var (features, deepstack) = try vision(pixelValues: pixelValues, grids: grids, hooks: hooks)
        try hooks.visit(HookName.imageFeatures, &features)
        return (features, deepstack)
    }

    /// The prompt without an image: its image tokens are refused.
    func refuseImageTokens(_ ids: [Int]) throws {
        if ids.contains(configuration.imageTokenID) {
            throw ModelError.invalidInput("the prompt has image tokens (id \(configuration.imageTokenID)) "
                                          + "but no image was given")
        }
    }

    public func positions(ids: [Int], image: PreparedImage?) throws -> PositionIDs {
        guard let image else {
            try refuseImageTokens(ids)
            return .sequential(ids.count)
        }
        return try positionIDs(ids: ids, grids: try QwenVLModel.grids(of: image))
    }

    public func inputEmbeddings(ids: [Int], image: PreparedImage?, hooks: HookRun?) throws -> Tensor {
        try decoderInputs(ids: ids, image: image, hooks: hooks).embeddings
    }

    /// The merged embeddings and the DeepStack features as residual additions at the image-token positions.
    public func decoderInputs(ids: [Int], image: PreparedImage?, hooks: HookRun?) throws
        -> (embeddings: Tensor, additions: ResidualAdditions?) {
        guard let image else {
            try refuseImageTokens(ids)
            return (try decoder.embed(ids), nil)
        }
        let (features, deepstack) = try imageFeatures(pixelValues: image.pixelValues,
                                                      grids: try QwenVLModel.grids(of: image), hooks: hooks)
        let embeddings = try decoder.embed(ids, replacing: configuration.imageTokenID, with: features)
        let positions = ids.indices.filter { ids[$0] == configuration.imageTokenID }
        return (embeddings, try ResidualAdditions(positions: positions, layers: deepstack))
    }
}
