// Assembling a prompt from a layout and an item: token ids plus token-exact named spans.
import ArbiterTokenizers
import Foundation

/// The fields of one prompt. Absent fields drop their slot (and the separators marked `with` it).
public struct PromptFields: Sendable, Equatable, Codable {
    public var context: String?
    public var instruction: String?
    public var question: String
    public var constraint: String?
    /// Other slots a custom layout may name.
    public var extra: [String: String]

    public init(context: String? = nil, instruction: String? = nil, question: String, constraint: String? = nil,
                extra: [String: String] = [:]) {
        self.context = context
        self.instruction = instruction
        self.question = question
        self.constraint = constraint
        self.extra = extra
    }

    func value(_ slot: String) -> String? {
        switch slot {
        case "context": return context
        case "instruction": return instruction
        case "question": return question
        case "constraint": return constraint
        default: return extra[slot]
        }
    }
}

/// A tokenized prompt with its spans.
public struct BuiltPrompt: Sendable, Equatable {
    public let ids: [Int]
    public let spans: TokenSpans
    /// The assembled text (image slot expanded).
    public let text: String
}

public struct PromptBuilder: Sendable {
    public let layout: PromptLayout
    public let tokenizer: Tokenizer

    public init(layout: PromptLayout, tokenizer: Tokenizer) throws {
        guard tokenizer.id(of: layout.imageToken) != nil else {
            throw ModelError.invalidInput("\(layout.label): the tokenizer (\(tokenizer.name)) has no token "
                                          + "'\(layout.imageToken)' for images")
        }
        self.layout = layout
        self.tokenizer = tokenizer
    }

    /// Token ids and spans for `fields`, with the image slot expanded to `imageTokens` image tokens
    /// (0: no image; the slot and its separators are dropped).
    /// The longest text of one prompt field: 64 KiB is ~16,000 tokens of English, more than any bundled or
    /// paper model's context; longer text is refused before it is tokenized (the model's
    /// max_position_embeddings then bounds the whole prompt, `ResourceGuard.checkRun`).
    public static let maximumFieldBytes = 1 << 16

    public func build(_ fields: PromptFields, imageTokens: Int) throws -> BuiltPrompt {
        guard imageTokens >= 0 else { throw ModelError.invalidInput("negative image token count \(imageTokens)") }
        for slot in ["context", "instruction", "question", "constraint"] {
            if let v = fields.value(slot), v.utf8.count > Self.maximumFieldBytes {
                throw ModelError.invalidInput("the \(slot) text is \(v.utf8.count) bytes, over the "
                                              + "\(Self.maximumFieldBytes)-byte limit of a prompt field")
            }
        }
        let image = layout.imageToken
        for slot in ["context", "instruction", "question", "constraint"] {
            if let v = fields.value(slot), v.contains(image) {
                throw ModelError.invalidInput("the \(slot) text contains the image marker '\(image)'; the image slot "
                                              + "is the only place for it")
            }
        }
        func present(_ slot: String) -> Bool {
            slot == "image" ? imageTokens > 0 : !(fields.value(slot) ?? "").isEmpty
        }
        var texts: [String] = []
        var names: [String?] = []
        for piece in layout.pieces {
            if let slot = piece.slot {
                guard present(slot) else { continue }
                let value = slot == "image"
                    ? Array(repeating: image, count: imageTokens).joined(separator: layout.imageSeparator)
                    : fields.value(slot)!
                texts.append((piece.prefix ?? "") + value)
                names.append(slot)
            } else if let text = piece.text {
                if let w = piece.with, !present(w) { continue }
                texts.append(text)
                names.append(piece.span)
            }
        }
        let encoded: (ids: [Int], spans: [Range<Int>])
        do {
            encoded = try tokenizer.encode(pieces: texts, addSpecialTokens: layout.addSpecialTokens)
        } catch {
            throw ModelError.invalidInput("\(layout.label): \(error)")
        }
        var spans: [String: [Range<Int>]] = [:]
        for (name, range) in zip(names, encoded.spans) {
            if let name { spans[name, default: []].append(range) }
        }
        let imageID = tokenizer.id(of: image)
        let imagePositions = encoded.ids.indices.filter { encoded.ids[$0] == imageID }
        guard imagePositions.count == imageTokens else {
            var cause: String
            if imageID == nil {
                cause = "the tokenizer (\(tokenizer.name)) has no token '\(image)': add it to "
                        + "tokenizer.json or set the "
                    + "layout's \"image_token\" to the model's image token"
            } else if !tokenizer.addedTokens.contains(where: { $0.content == image }) && layout.imageSeparator.isEmpty {
                cause = "'\(image)' is not an added token of \(tokenizer.name), so \(imageTokens) of them "
                        + "written without "
                    + "a separator read as other tokens: make it an added token, or set \"image_separator\": \" \" in "
                    + "the layout '\(layout.name)'"
            } else {
                cause = "the text around the image slot merges with '\(image)'; check the layout's pieces around it"
            }
            throw ModelError.invalidInput("prompt has \(imagePositions.count) '\(image)' tokens, expected "
                                          + "\(imageTokens) "
                                          + "(one per image feature): \(cause)")
        }
        return BuiltPrompt(ids: encoded.ids, spans: try TokenSpans(tokenCount: encoded.ids.count, spans: spans),
                           text: texts.joined())
    }
}
