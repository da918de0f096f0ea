// A model with everything needed to run it on a prompt and an image: tokenizer, image processor and
// prompt layout, all read from the Hugging Face folder (plus an optional `prompt_layout.json`).
import ArbiterFormats
import ArbiterTensor
import ArbiterTokenizers
import Foundation

/// Inputs ready for a forward pass.
public struct PreparedInput: Sendable {
    public let ids: [Int]
    public let spans: TokenSpans
    /// Pixel values (`[3, H, W]` for LLaVA, `[patches, C·T·P·P]` for Qwen-VL), or nil for text-only prompts.
    public let pixelValues: Tensor?
    public let text: String
    /// Qwen-VL: the image's patch grid (empty otherwise).
    public let grids: [VisionGrid]
    /// Rotary position ids of the prompt (3-D for Qwen-VL, sequential otherwise). Runs resumed from a cached
    /// residual stream must use these.
    public let positions: PositionIDs

    public init(ids: [Int], spans: TokenSpans, pixelValues: Tensor?, text: String, grids: [VisionGrid] = [],
                positions: PositionIDs? = nil) {
        self.ids = ids
        self.spans = spans
        self.pixelValues = pixelValues
        self.text = text
        self.grids = grids
        self.positions = positions ?? .sequential(ids.count)
    }
}

public final class ModelSession: @unchecked Sendable {
    public let model: any ArbiterModel
    public let tokenizer: Tokenizer
    public let layout: PromptLayout
    public let builder: PromptBuilder
    let imageProcessor: CLIPImageProcessor?
    let qwenProcessor: Qwen2VLImageProcessor?

    /// The built-in layout of each model type that takes images (other types get `raw`).
    public static let defaultLayouts = ["llava": "llava-1.5", "qwen2_vl": "qwen2-vl", "qwen2_5_vl": "qwen2-vl"]
    /// The model types that take images.
    public static var imageModelTypes: Set<String> { Set(defaultLayouts.keys) }

    /// Loads `directory`. The layout is, in order: `layout` if given, the folder's `prompt_layout.json`,
    /// then the model type's default (`llava` → `llava-1.5`, `qwen2_vl`/`qwen2_5_vl` → `qwen2-vl`, else `raw`).
    /// `compute`: the arithmetic of the matrix products (nil: `ARBITER_COMPUTE`, f32 when unset).
    public init(directory: URL, layout: PromptLayout? = nil, compute: ComputePrecision? = nil) throws {
        let model = try ModelRegistry.load(directory, compute: compute)
        self.model = model
        guard let tokenizerURL = Optional(directory.appendingPathComponent("tokenizer.json")),
              FileManager.default.fileExists(atPath: tokenizerURL.path) else {
            throw FormatError(.missing, file: directory.appendingPathComponent("tokenizer.json"),
                              "the model folder has no tokenizer.json; prompts cannot be tokenized (give token ids instead)")
        }
        try FileCheck.regularFile(tokenizerURL)  // a named pipe would block the tokenizer's read
        tokenizer = try Tokenizer(url: tokenizerURL)
        // Ids the tokenizer can produce must be rows of the model's embedding (transformers would index out of
        // range on the first such token; here every prompt would be refused one by one).
        let rows = model.decoder.configuration.vocabularySize
        guard tokenizer.vocabularySize <= rows else {
            let last = tokenizer.vocabularySize - 1
            let token = tokenizer.token(of: last).map { " ('\($0)')" } ?? ""
            throw FormatError(.inconsistent, file: tokenizerURL, "the tokenizer's ids reach \(last)\(token) "
                              + "but the model's vocab_size (config.json) is \(rows): tokenizer and checkpoint do not match")
        }
        let folderLayout = directory.appendingPathComponent("prompt_layout.json")
        if let layout {
            self.layout = layout
        } else if FileManager.default.fileExists(atPath: folderLayout.path) {
            self.layout = try PromptLayout(url: folderLayout)
        } else {
            self.layout = try .builtin(Self.defaultLayouts[model.modelType] ?? "raw")
        }
        builder = try PromptBuilder(layout: self.layout, tokenizer: tokenizer)
        // The layout's image token must be the id the model replaces with image features.
        let configured: (id: Int, field: String)? = (model as? LlavaModel).map {
            ($0.configuration.imageTokenID, $0.configuration.imageTokenField)
        } ?? (model as? QwenVLModel).map { ($0.configuration.imageTokenID, "image_token_id") }
        if let configured, let id = tokenizer.id(of: self.layout.imageToken), id != configured.id {
            throw FormatError(.inconsistent, file: tokenizerURL, "'\(self.layout.imageToken)' is id \(id) in the tokenizer "
                              + "but config.json's \(configured.field) is \(configured.id): images would never reach "
                              + "the model; tokenizer.json and config.json do not match")
        }
        imageProcessor = model is LlavaModel
            ? try CLIPImageProcessor(contentsOf: directory.appendingPathComponent("preprocessor_config.json")) : nil
        qwenProcessor = model is QwenVLModel
            ? try Qwen2VLImageProcessor(contentsOf: directory.appendingPathComponent("preprocessor_config.json")) : nil
        try checkProcessorAgreesWithModel(directory.appendingPathComponent("preprocessor_config.json"))
    }

    /// The image processor must make what the vision tower takes: otherwise every image fails later with a
    /// shape error that names neither file (a crop that is not the tower's image size, a patch or merge size
    /// other than the tower's).
    private func checkProcessorAgreesWithModel(_ file: URL) throws {
        func refuse(_ problem: String) -> FormatError {
            FormatError(.inconsistent, file: file, "\(problem): preprocessor_config.json and config.json do not match")
        }
        if let llava = model as? LlavaModel, let p = imageProcessor?.config {
            let side = llava.configuration.visionConfig.imageSize
            guard p.doCenterCrop else {
                throw refuse("do_center_crop is false, so images keep their aspect ratio, but the vision tower takes "
                             + "\(side)×\(side) pixels (vision_config.image_size)")
            }
            guard p.cropHeight == side, p.cropWidth == side else {
                throw refuse("crop_size is \(p.cropHeight)×\(p.cropWidth) but vision_config.image_size is \(side)")
            }
        }
        if let qwen = model as? QwenVLModel, let p = qwenProcessor?.config {
            let v = qwen.configuration.visionConfig
            for (field, mine, theirs, key) in [("patch_size", p.patchSize, v.patchSize, "patch_size"),
                                               ("merge_size", p.mergeSize, v.spatialMergeSize, "spatial_merge_size"),
                                               ("temporal_patch_size", p.temporalPatchSize, v.temporalPatchSize,
                                                "temporal_patch_size")] where mine != theirs {
                throw refuse("\(field) is \(mine) but vision_config.\(key) is \(theirs)")
            }
        }
    }

    /// Side of the square image the model sees (LLaVA: the vision tower's image size), nil for text models.
    public var imageSize: Int? {
        if let llava = model as? LlavaModel { return llava.configuration.visionConfig.imageSize }
        // Qwen-VL takes any size; a multiple of 28 (patch 14 × merge 2) keeps the grid exact.
        return model is QwenVLModel ? 56 : nil
    }

    /// Image tokens one image takes in the prompt.
    public var imageTokenCount: Int {
        guard let llava = model as? LlavaModel else { return 0 }
        let c = llava.configuration
        return c.visionConfig.grid * c.visionConfig.grid + (c.visionFeatureSelectStrategy == .full ? 1 : 0)
    }

    /// Builds ids, spans and pixel values for `fields` and an optional image.
    public func prepare(_ fields: PromptFields, image: RGBImage?) throws -> PreparedInput {
        if let qwen = model as? QwenVLModel {
            let processed = try image.map { try qwenProcessor!.preprocess($0, source: "image") }
            let built = try builder.build(fields, imageTokens: processed.map { qwen.imageTokenCount($0.grid) } ?? 0)
            let grids = processed.map { [$0.grid] } ?? []
            try ResourceGuard.checkRun(tokens: built.ids.count, configuration: model.decoder.configuration,
                                       model: model.identifier)
            return PreparedInput(ids: built.ids, spans: built.spans, pixelValues: processed?.pixelValues, text: built.text,
                                 grids: grids, positions: try qwen.positionIDs(ids: built.ids, grids: grids))
        }
        var pixels: Tensor? = nil
        if let image {
            guard let imageProcessor else {
                throw ModelError.invalidInput("\(model.identifier) (\(model.modelType)) takes no images")
            }
            pixels = try imageProcessor.preprocess(image)
        }
        let built = try builder.build(fields, imageTokens: image == nil ? 0 : imageTokenCount)
        try ResourceGuard.checkRun(tokens: built.ids.count, configuration: model.decoder.configuration,
                                   model: model.identifier)
        return PreparedInput(ids: built.ids, spans: built.spans, pixelValues: pixels, text: built.text)
    }

    /// The input for token ids as a model's forward takes them (the image tokens already expanded, as in a
    /// transformers reference run), with the image's pixel values (and Qwen-VL's grid and 3-D positions). The
    /// count of image tokens in `ids` must equal what the image gives.
    public func prepare(ids: [Int], image: RGBImage?) throws -> PreparedInput {
        try ResourceGuard.checkRun(tokens: ids.count, configuration: model.decoder.configuration, model: model.identifier)
        let spans = try TokenSpans(tokenCount: ids.count)
        func checkCount(_ imageID: Int, _ expected: Int) throws {
            let found = ids.filter { $0 == imageID }.count
            guard found == expected else {
                throw ModelError.invalidInput("--ids hold \(found) image tokens (id \(imageID)) but the image gives "
                                              + "\(expected) features: expand the image token to \(expected) tokens")
            }
        }
        if let qwen = model as? QwenVLModel {
            let processed = try image.map { try qwenProcessor!.preprocess($0, source: "image") }
            let grids = processed.map { [$0.grid] } ?? []
            try checkCount(qwen.configuration.imageTokenID, processed.map { qwen.imageTokenCount($0.grid) } ?? 0)
            return PreparedInput(ids: ids, spans: spans, pixelValues: processed?.pixelValues, text: "", grids: grids,
                                 positions: try qwen.positionIDs(ids: ids, grids: grids))
        }
        if let llava = model as? LlavaModel {
            try checkCount(llava.configuration.imageTokenID, image == nil ? 0 : imageTokenCount)
            return PreparedInput(ids: ids, spans: spans, pixelValues: try image.map { try imageProcessor!.preprocess($0) },
                                 text: "")
        }
        guard image == nil else { throw ModelError.invalidInput("\(model.identifier) (\(model.modelType)) takes no images") }
        return PreparedInput(ids: ids, spans: spans, pixelValues: nil, text: "")
    }

    /// One forward pass.
    public func run(_ input: PreparedInput, logits: LogitPositions = .last, hooks: HookRun? = nil) throws -> DecoderOutput {
        if let llava = model as? LlavaModel {
            return try llava.forward(ids: input.ids, pixelValues: input.pixelValues, logits: logits, hooks: hooks)
        }
        if let qwen = model as? QwenVLModel {
            return try qwen.forward(ids: input.ids, pixelValues: input.pixelValues, grids: input.grids, logits: logits, hooks: hooks)
        }
        guard input.pixelValues == nil else {
            throw ModelError.invalidInput("\(model.identifier) (\(model.modelType)) takes no images")
        }
        return try model.decoder.forward(ids: input.ids, logits: logits, hooks: hooks)
    }

    /// The merged input embeddings (`hook_embed`) of a prepared input, so that sweeps can resume from them.
    public func embeddings(_ input: PreparedInput) throws -> Tensor {
        if let llava = model as? LlavaModel, let pixels = input.pixelValues {
            return try llava.mergedEmbeddings(ids: input.ids, imageFeatures: try llava.imageFeatures(pixelValues: pixels))
        }
        if let qwen = model as? QwenVLModel {
            return try qwen.decoderInputs(ids: input.ids, pixelValues: input.pixelValues, grids: input.grids).embeddings
        }
        return try model.decoder.embed(input.ids)
    }

    /// The first token of each answer as it would follow the prompt (`answer_prefix` + answer, tokenized
    /// in context); duplicates removed, order kept.
    public func firstTokens(of answers: [String], after input: PreparedInput) throws -> [Int] {
        var out: [Int] = []
        for answer in answers where !answer.isEmpty {
            let pieces = [input.text, layout.answerPrefix + answer]
            let id: Int
            if let encoded = try? tokenizer.encode(pieces: pieces, addSpecialTokens: layout.addSpecialTokens),
               let span = encoded.spans.last, !span.isEmpty, encoded.ids.count > input.ids.count {
                id = encoded.ids[span.lowerBound]
            } else {
                // The boundary merged into the prompt's last token: fall back to the answer on its own.
                guard let first = try tokenizer.encode(layout.answerPrefix + answer, addSpecialTokens: false).first else { continue }
                id = first
            }
            if !out.contains(id) { out.append(id) }
        }
        return out
    }
}
