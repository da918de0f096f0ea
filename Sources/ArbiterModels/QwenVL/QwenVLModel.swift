// Qwen2-VL and Qwen2.5-VL: vision tower with patch merger → Qwen2 language model with multimodal (3-D) rotary.
// Mirrors transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py and qwen2_vl/modeling_qwen2_vl.py (transformers
// 5.24): Qwen2_5_VLModel.get_rope_index / get_vision_position_ids, get_image_features, get_placeholder_mask and
// the masked_scatter merge, Qwen2_5_VLForConditionalGeneration.
//
// Hook points: the vision tower's (`vision.…`, see QwenVisionTower.swift), then
//   hook_image_features   [U, d_model]  merger output in processor order (one row per image token)
// and the language model's (`hook_embed` holds the merged embeddings).
//
// rope_deltas: transformers caches `max(position) + 1 - T` to continue positions while generating with a KV
// cache; a single forward pass over the whole prompt (all Arbiter does) computes every position from
// get_rope_index, so the deltas play no part.
import ArbiterFormats
import ArbiterTensor
import Foundation

public final class QwenVLModel: ArbiterModel, @unchecked Sendable {
    public let modelType: String
    public let identifier: String
    public let configuration: QwenVLConfiguration
    public let vision: QwenVisionTower
    public let decoder: LlamaDecoder
    let checkpoint: Checkpoint?

    public convenience init(directory: ModelDirectory) throws {
        let config = try directory.configuration(QwenVLConfiguration.self)
        try config.validate(file: directory.configURL.path)
        var (weights, checkpoint) = try directory.weightStore(
            memory: config.memoryTerms(file: directory.configURL.path), text: config.textConfig,
            sanitize: Self.sanitize)
        try self.init(configuration: config, weights: &weights, identifier: directory.url.lastPathComponent,
                      checkpoint: checkpoint)
        try weights.finish()
    }

    init(configuration c: QwenVLConfiguration, weights w: inout WeightStore, identifier: String,
         checkpoint: Checkpoint?) throws {
        configuration = c
        modelType = c.modelType
        self.identifier = identifier
        self.checkpoint = checkpoint
        vision = try QwenVisionTower(configuration: c.visionConfig, weights: &w, prefix: "model.visual")
        decoder = try LlamaDecoder(configuration: c.textConfig, weights: &w, modelPrefix: "model.language_model.",
                                   lmHeadName: "lm_head.weight")
    }

    /// Maps both weight-name layouts in the wild onto transformers 5's in-memory names: Qwen's hub files (also
    /// what transformers 5.24 `save_pretrained` writes: `visual.…`, `model.{embed_tokens,layers,norm}.…`,
    /// `lm_head.…`) and the in-memory layout itself (`model.visual.…`, `model.language_model.…`, `lm_head.…`).
    /// Derived buffers (`rotary_emb.inv_freq`) are dropped.
    static func sanitize(_ tensors: [String: StoredTensor]) -> [String: StoredTensor] {
        var out: [String: StoredTensor] = [:]
        for (name, tensor) in tensors {
            if name.hasSuffix("rotary_emb.inv_freq") || name.hasSuffix("rotary_pos_emb.inv_freq") { continue }
            let mapped: String
            if name.hasPrefix("model.visual.") || name.hasPrefix("model.language_model.")
                || name.hasPrefix("lm_head.") {
                mapped = name
            } else if name.hasPrefix("visual.") {
                mapped = "model." + name
            } else if name.hasPrefix("model.") {
                mapped = "model.language_model." + name.dropFirst("model.".count)
            } else {
                mapped = name  // left for WeightStore.finish() to report as unexpected
            }
            out[mapped] = tensor
        }
        return out
    }

    public var hookNames: [String] { vision.hookNames + [HookName.imageFeatures] + decoder.hookNames }

    /// Image features `[image tokens, d_model]` for pixel patches `[patches, C·T·P·P]` of `grids`.
    public func imageFeatures(pixelValues: Tensor, grids: [VisionGrid], hooks: HookRun? = nil) throws -> Tensor {
        var features = try vision(pixelValues: pixelValues, grids: grids, hooks: hooks)
        try hooks.visit(HookName.imageFeatures, &features)
        return features
    }

    /// Merged tokens of one image grid (`t · h/m · w/m`).
    public func imageTokenCount(_ grid: VisionGrid) -> Int {
        let m = configuration.visionConfig.spatialMergeSize
        return grid.t * (grid.h / m) * (grid.w / m)
    }

    /// 3-D position ids exactly as transformers' `get_rope_index` (images only): text runs count on from the
    /// current position on all three axes; a run of image tokens gets (t, h, w) of its merged grid, each offset by
    /// the current position; after an image the position continues from start + max(h, w) / merge.
    public func positionIDs(ids: [Int], grids: [VisionGrid]) throws -> PositionIDs {
        try Self.positionIDs(ids: ids, grids: grids, imageTokenID: configuration.imageTokenID,
                             videoTokenID: configuration.videoTokenID,
                             mergeSize: configuration.visionConfig.spatialMergeSize)
    }

    /// `positionIDs(ids:grids:)` for any Qwen-VL generation (Qwen3-VL's `get_rope_index` gives the same
    /// positions for images).
    static func positionIDs(ids: [Int], grids: [VisionGrid], imageTokenID imageID: Int, videoTokenID: Int,
                            mergeSize m: Int) throws -> PositionIDs {
        if ids.contains(videoTokenID) && videoTokenID != imageID {
            throw ModelError.invalidInput("the prompt holds video tokens (id \(videoTokenID)); Arbiter runs images "
                                          + "only")
        }
        var axes: [[Int]] = [[], [], []]
        var current = 0
        var nextGrid = 0
        var start = 0
        while start < ids.count {
            let isImage = ids[start] == imageID
            var end = start
            while end < ids.count && (ids[end] == imageID) == isImage { end += 1 }
            if !isImage {
                for a in 0..<3 { axes[a].append(contentsOf: current..<(current + end - start)) }
                current += end - start
            } else {
                guard nextGrid < grids.count else {
                    throw ModelError.invalidInput("the prompt has more runs of image tokens (id \(imageID)) than the "
                                                  + "\(grids.count) image grid(s) given")
                }
                let g = grids[nextGrid]
                guard g.t > 0, g.h > 0, g.w > 0, g.h % m == 0, g.w % m == 0 else {
                    throw ModelError.invalidInput("image grid \(nextGrid) is \(g); t, h, w must be positive and h, w "
                                                  + "multiples of spatial_merge_size \(m)")
                }
                nextGrid += 1
                let (lt, lh, lw) = (g.t, g.h / m, g.w / m)
                guard end - start == lt * lh * lw else {
                    throw ModelError.invalidInput("image tokens at positions \(start)..<\(end) number \(end - start), "
                                                  + "but image grid \(nextGrid - 1) \(g) gives \(lt * lh * lw) merged "
                                                  + "tokens (t · h/\(m) · w/\(m))")
                }
                for t in 0..<lt { for y in 0..<lh { for x in 0..<lw {
                    axes[0].append(current + t); axes[1].append(current + y); axes[2].append(current + x)
                } } }
                current += max(g.h, g.w) / m
            }
            start = end
        }
        guard nextGrid == grids.count else {
            throw ModelError.invalidInput("\(grids.count) image grid(s) given but the prompt has \(nextGrid) run(s) of "
                                          + "image tokens (id \(imageID))")
        }
        return try PositionIDs(axes: axes)
    }

    /// The decoder's inputs: merged embeddings (`hook_embed`, before its hook) and the 3-D positions. Runs that
    /// resume from a cached `hook_embed` or `blocks.{l}.hook_resid_pre` must pass these positions to
    /// `decoder.forward(residual:positions:…)`.
    public func decoderInputs(ids: [Int], pixelValues: Tensor?, grids: [VisionGrid],
                              hooks: HookRun? = nil) throws -> (embeddings: Tensor, positions: PositionIDs) {
        let image = try Self.image(pixelValues: pixelValues, grids: grids, tokens: grids.map(imageTokenCount))
        // Positions first: a grid that disagrees with the prompt fails before the vision tower runs.
        let positions = try positions(ids: ids, image: image)
        return (try inputEmbeddings(ids: ids, image: image, hooks: hooks), positions)
    }

    /// Full forward: pixel patches of `grids` + ids (image tokens already expanded, one per merged patch).
    public func forward(ids: [Int], pixelValues: Tensor?, grids: [VisionGrid], logits: LogitPositions = .all,
                        hooks: HookRun? = nil) throws -> DecoderOutput {
        let image = try Self.image(pixelValues: pixelValues, grids: grids, tokens: grids.map(imageTokenCount))
        return try forward(ids: ids, image: image, logits: logits, hooks: hooks)
    }

    /// Forward from a processed image (`Qwen2VLImageProcessor.preprocess`).
    public func forward(ids: [Int], image: Qwen2VLPixels?, logits: LogitPositions = .all,
                        hooks: HookRun? = nil) throws -> DecoderOutput {
        try forward(ids: ids, pixelValues: image?.pixelValues, grids: image.map { [$0.grid] } ?? [], logits: logits,
                    hooks: hooks)
    }
}
