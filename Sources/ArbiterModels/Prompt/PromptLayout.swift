// Prompt layouts as data: a JSON file names the pieces of a prompt, their order, the separators and the chat
// wrapper. A model with another chat format needs a file, not a fork. Built-in layouts are such files
// (Sources/ArbiterModels/Prompt/Layouts/*.json); `--layout FILE` selects any other.
import ArbiterFormats
import Foundation

public struct PromptLayout: Codable, Sendable, Equatable {
    /// One piece of the prompt: fixed text, or a slot filled from the item (`image`, `context`,
    /// `instruction`, `question`, `constraint`, or any other field name).
    public struct Piece: Codable, Sendable, Equatable {
        /// Fixed text (mutually exclusive with `slot`).
        public var text: String?
        /// A slot filled from the item's field of that name.
        public var slot: String?
        /// For fixed text: the span it belongs to (e.g. `system`), if any.
        public var span: String?
        /// For fixed text: drop this piece when the named slot is absent from the item (its separator).
        public var with: String?
        /// For slots: text put before the value and counted in the slot's span. SentencePiece and byte-level
        /// BPE attach a word's leading space to the word's token, so "Text context:" + " " + value must
        /// carry that space inside the slot for the span boundary to be a token boundary.
        public var prefix: String?

        public init(text: String? = nil, slot: String? = nil, span: String? = nil, with: String? = nil,
                    prefix: String? = nil) {
            self.text = text
            self.slot = slot
            self.span = span
            self.with = with
            self.prefix = prefix
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case text, slot, span, with, prefix }

        public init(from decoder: Decoder) throws {
            try PromptLayout.refuseUnknownKeys(decoder, known: CodingKeys.allCases.map(\.rawValue))
            let c = try decoder.container(keyedBy: CodingKeys.self)
            text = try c.decodeIfPresent(String.self, forKey: .text)
            slot = try c.decodeIfPresent(String.self, forKey: .slot)
            span = try c.decodeIfPresent(String.self, forKey: .span)
            with = try c.decodeIfPresent(String.self, forKey: .with)
            prefix = try c.decodeIfPresent(String.self, forKey: .prefix)
        }
    }

    public var name: String
    public var description: String?
    /// Whether the tokenizer's post-processor adds its special tokens (`<s>` for Llama-2).
    public var addSpecialTokens: Bool
    /// The token the image slot is expanded into, once per image feature (`<image>`, `<|image_pad|>`).
    public var imageToken: String
    /// Text between consecutive image tokens when the image slot is expanded ("" for the built-in layouts).
    /// A tokenizer without `<image>` as an added token (a whitespace WordLevel, say) needs " " to see each
    /// image token as a word of its own.
    public var imageSeparator: String
    public var pieces: [Piece]
    /// Text between the prompt and an answer when the answer's first token is looked up (" " for all
    /// built-in layouts: the answer word follows "ASSISTANT:" or "The answer is" after a space).
    public var answerPrefix: String
    /// The file the layout was read from (for messages); not part of the layout's value.
    public var file: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, description, pieces
        case addSpecialTokens = "add_special_tokens"
        case imageToken = "image_token"
        case imageSeparator = "image_separator"
        case answerPrefix = "answer_prefix"
    }

    public init(name: String, description: String? = nil, addSpecialTokens: Bool = true, imageToken: String = "<image>",
                imageSeparator: String = "", answerPrefix: String = " ", pieces: [Piece]) {
        self.answerPrefix = answerPrefix
        self.imageSeparator = imageSeparator
        self.name = name
        self.description = description
        self.addSpecialTokens = addSpecialTokens
        self.imageToken = imageToken
        self.pieces = pieces
    }

    public static func == (a: PromptLayout, b: PromptLayout) -> Bool {
        (a.name, a.description, a.addSpecialTokens, a.imageToken, a.pieces, a.answerPrefix)
            == (b.name, b.description, b.addSpecialTokens, b.imageToken, b.pieces, b.answerPrefix)
            && a.imageSeparator == b.imageSeparator
    }

    public init(from decoder: Decoder) throws {
        // "$schema" lets an editor validate the file against Schemas/layout.schema.json as it is typed.
        try Self.refuseUnknownKeys(decoder, known: CodingKeys.allCases.map(\.rawValue) + ["$schema"])
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        description = try c.decodeIfPresent(String.self, forKey: .description)
        addSpecialTokens = try c.decodeIfPresent(Bool.self, forKey: .addSpecialTokens) ?? true
        imageToken = try c.decodeIfPresent(String.self, forKey: .imageToken) ?? "<image>"
        imageSeparator = try c.decodeIfPresent(String.self, forKey: .imageSeparator) ?? ""
        pieces = try c.decode([Piece].self, forKey: .pieces)
        answerPrefix = try c.decodeIfPresent(String.self, forKey: .answerPrefix) ?? " "
    }

    /// A fingerprint of the layout's content (FNV-1a, 64 bits, over its JSON with sorted keys), recorded in
    /// reports so that a result names exactly the layout it was computed with.
    public var fingerprint: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = (try? encoder.encode(self)) ?? Data()
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return String(format: "%016llx", hash)
    }

    /// A misspelled key would otherwise be ignored and its default used in silence.
    static func refuseUnknownKeys(_ decoder: Decoder, known: [String]) throws {
        struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        let c = try decoder.container(keyedBy: AnyKey.self)
        if let unknown = c.allKeys.map(\.stringValue).sorted().first(where: { !known.contains($0) }) {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription:
                "unknown key \"\(unknown)\" (known: \(known.joined(separator: ", ")))"))
        }
    }

    /// Reads a layout file (a regular file: a folder or a pipe is refused before it is opened) and checks it.
    public init(url: URL) throws {
        self = try JSONFile.decode(PromptLayout.self, from: url)   // FileCheck refuses folders and pipes first
        file = url.path
        try validate(file: url.path)
    }

    /// How messages name the layout: its file when it has one.
    public var label: String { "prompt layout '\(name)'" + (file.map { " (\($0))" } ?? "") }

    /// The names of the built-in layouts.
    public static var builtinNames: [String] {
        guard let folder = Bundle.module.url(forResource: "Layouts", withExtension: nil),
              let files = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return [] }
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// A built-in layout by name (`builtinNames`: `llava-1.5`, `raw`, `qwen2-vl`, `qwen3-vl`, `internvl`, …).
    public static func builtin(_ name: String) throws -> PromptLayout {
        guard let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Layouts") else {
            throw ModelError.invalidInput("no built-in prompt layout '\(name)'; built-in: "
                                          + "\(builtinNames.joined(separator: ", ")) (or give a layout file)")
        }
        return try PromptLayout(url: url)
    }

    /// A built-in name, or a path to a layout file.
    public static func named(_ nameOrPath: String) throws -> PromptLayout {
        guard !nameOrPath.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ModelError.invalidInput("the prompt layout name is empty; built-in: "
                                          + "\(builtinNames.joined(separator: ", ")) (or give a layout file)")
        }
        if nameOrPath.hasSuffix(".json") || nameOrPath.contains("/") {
            return try PromptLayout(url: URL(fileURLWithPath: nameOrPath))
        }
        return try builtin(nameOrPath)
    }

    public func validate(file: String) throws {
        func fail(_ problem: String) -> FormatError { FormatError(.malformed, file: file, "prompt layout: \(problem)") }
        guard !pieces.isEmpty else { throw fail("no pieces") }
        var slots = Set<String>()
        for (i, p) in pieces.enumerated() {
            guard (p.text == nil) != (p.slot == nil) else {
                throw fail("piece \(i) must have exactly one of \"text\" and \"slot\"")
            }
            if let slot = p.slot {
                guard !slot.trimmingCharacters(in: .whitespaces).isEmpty else {
                    throw fail("piece \(i): the slot name is empty")
                }
                guard slots.insert(slot).inserted else { throw fail("slot '\(slot)' appears twice") }
                guard p.span == nil, p.with == nil else {
                    throw fail("piece \(i): \"span\" and \"with\" apply to text pieces only")
                }
            } else if p.prefix != nil {
                throw fail("piece \(i): \"prefix\" applies to slots only")
            }
        }
        guard slots.contains("image") else { throw fail("no \"image\" slot") }
        guard slots.contains("question") else { throw fail("no \"question\" slot") }
        for p in pieces { if let w = p.with, !slots.contains(w) { throw fail("\"with\": '\(w)' names no slot") } }
        // A text piece's span must not merge fixed text into a slot's span or a computed one (analyses would
        // treat that text as image, question, …).
        for (i, p) in pieces.enumerated() {
            guard let span = p.span else { continue }
            if span.isEmpty || slots.contains(span) || ["image", "last", "text", "after-image", "cues",
                                                        "all"].contains(span) {
                throw fail("piece \(i): \"span\": '\(span)' is empty, a slot or a reserved span name "
                           + "(image, last, text, after-image, cues, all)")
            }
        }
        guard !imageToken.isEmpty else { throw fail("image_token is empty") }
        guard !imageSeparator.contains(imageToken) else { throw fail("image_separator contains the image token") }
    }
}
