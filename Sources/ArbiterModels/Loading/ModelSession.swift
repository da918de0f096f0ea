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
    /// The image as its family's processor made it, nil for text-only prompts.
    public let image: PreparedImage?
    public let text: String
    /// Rotary position ids of the prompt (3-D for Qwen-VL, sequential otherwise). Runs resumed from a cached
    /// residual stream must use these.
    public let positions: PositionIDs

    public init(ids: [Int], spans: TokenSpans, image: PreparedImage?, text: String, positions: PositionIDs? = nil) {
        self.ids = ids
        self.spans = spans
        self.image = image
        self.text = text
        self.positions = positions ?? .sequential(ids.count)
    }

    /// The image's pixel values as the vision tower takes them, nil for text-only prompts.
    public var pixelValues: Tensor? { image?.pixelValues }
}

public final class ModelSession: @unchecked Sendable {
    public let model: any ArbiterModel
    public let tokenizer: Tokenizer
    public let layout: PromptLayout
    public let builder: PromptBuilder
    let imageProcessor: (any ImagePreparing)?

    /// Loads `directory`. The layout is, in order: `layout` if given, the folder's `prompt_layout.json`,
    /// then the model family's default (`ModelFamily.defaultLayout`: `llava-1.5`, `qwen2-vl`, `raw`, …).
    /// `compute`: the arithmetic of the matrix products (nil: `ARBITER_COMPUTE`, f32 when unset).
    public init(directory: URL, layout: PromptLayout? = nil, compute: ComputePrecision? = nil) throws {
        let model = try ModelRegistry.load(directory, compute: compute)
        self.model = model
        guard let tokenizerURL = Optional(directory.appendingPathComponent("tokenizer.json")),
              FileManager.default.fileExists(atPath: tokenizerURL.path) else {
            throw FormatError(.missing, file: directory.appendingPathComponent("tokenizer.json"),
                              "the model folder has no tokenizer.json; prompts cannot be tokenized (give token "
                              + "ids instead)")
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
                              + "but the model's vocab_size (config.json) is \(rows): tokenizer and checkpoint "
                              + "do not match")
        }
        let folderLayout = directory.appendingPathComponent("prompt_layout.json")
        if let layout {
            self.layout = layout
        } else if FileManager.default.fileExists(atPath: folderLayout.path) {
            self.layout = try PromptLayout(url: folderLayout)
        } else {
            self.layout = try .builtin(ModelRegistry.family(of: model.modelType)?.defaultLayout ?? "raw")
        }
        builder = try PromptBuilder(layout: self.layout, tokenizer: tokenizer)
        // The layout's image token must be the id the model replaces with image features.
        if let configured = model.images?.imageToken, let id = tokenizer.id(of: self.layout.imageToken),
           id != configured.id {
            throw FormatError(.inconsistent, file: tokenizerURL,
                              "'\(self.layout.imageToken)' is id \(id) in the tokenizer "
                              + "but config.json's \(configured.field) is \(configured.id): images would never reach "
                              + "the model; tokenizer.json and config.json do not match")
        }
        imageProcessor = try model.images?.imageProcessor(
            contentsOf: directory.appendingPathComponent("preprocessor_config.json"))
    }

    /// Side of the square images drawn for the model (`ImageModel.defaultImageSide`), nil for text models.
    public var imageSize: Int? { model.images?.defaultImageSide }

    /// The family's image processor, or an error for a text model.
    private func processor() throws -> any ImagePreparing {
        guard let imageProcessor else {
            throw ModelError.invalidInput("\(model.identifier) (\(model.modelType)) takes no images")
        }
        return imageProcessor
    }

    /// Builds ids, spans and pixel values for `fields` and an optional image.
    public func prepare(_ fields: PromptFields, image: RGBImage?) throws -> PreparedInput {
        let prepared = try image.map { try processor().prepare($0) }
        let built = try builder.build(fields, imageTokens: prepared?.tokenCount ?? 0)
        try ResourceGuard.checkRun(tokens: built.ids.count, configuration: model.decoder.configuration,
                                   model: model.identifier)
        return PreparedInput(ids: built.ids, spans: built.spans, image: prepared, text: built.text,
                             positions: try model.positions(ids: built.ids, image: prepared))
    }

    /// The input for token ids as a model's forward takes them (the image tokens already expanded, as in a
    /// transformers reference run), with the image as its family prepares it. The count of image tokens in
    /// `ids` must equal what the image gives.
    public func prepare(ids: [Int], image: RGBImage?) throws -> PreparedInput {
        try ResourceGuard.checkRun(tokens: ids.count, configuration: model.decoder.configuration,
                                   model: model.identifier)
        let spans = try TokenSpans(tokenCount: ids.count)
        let prepared = try image.map { try processor().prepare($0) }
        if let imageID = model.images?.imageToken.id {
            let found = ids.filter { $0 == imageID }.count, expected = prepared?.tokenCount ?? 0
            guard found == expected else {
                throw ModelError.invalidInput("--ids hold \(found) image tokens (id \(imageID)) but the image gives "
                                              + "\(expected) features: expand the image token to \(expected) tokens")
            }
        }
        return PreparedInput(ids: ids, spans: spans, image: prepared, text: "",
                             positions: try model.positions(ids: ids, image: prepared))
    }

    /// One forward pass.
    public func run(_ input: PreparedInput, logits: LogitPositions = .last,
                    hooks: HookRun? = nil) throws -> DecoderOutput {
        try model.forward(ids: input.ids, image: input.image, logits: logits, hooks: hooks)
    }

    /// The merged input embeddings (`hook_embed`) of a prepared input, so that sweeps can resume from them (a
    /// model whose runs add rows between layers, Qwen3-VL, needs those too: `model.decoderInputs`).
    public func embeddings(_ input: PreparedInput) throws -> Tensor {
        try model.inputEmbeddings(ids: input.ids, image: input.image, hooks: nil)
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
                guard let first = try tokenizer.encode(layout.answerPrefix + answer,
                                                       addSpecialTokens: false).first else {
                    continue
                }
                id = first
            }
            if !out.contains(id) { out.append(id) }
        }
        return out
    }
}
