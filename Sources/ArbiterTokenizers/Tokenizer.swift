// A Hugging Face `tokenizer.json` tokenizer (tokenizers/src/tokenizer/mod.rs): added tokens → normalizer →
// pre-tokenizer → model → post-processor to encode; id → token → decoder to decode. Truncation and padding
// settings are ignored, as transformers' fast tokenizers do by default.
//
// Token spans of a prompt assembled from pieces (image, context, instruction, question, constraint, last):
//   let (ids, spans) = try tokenizer.encode(pieces: ["USER: ", "<image>", "\nContext: …", " ASSISTANT:"])
// `ids` is exactly `encode(pieces.joined())`, `spans[i]` the ids of piece i (special tokens such as `<s>` belong to
// no piece). Cut pieces before a space or newline, or at an added token (`<image>`): a cut inside what becomes
// one token throws. For character-level questions, `encodeWithOffsets` gives each token's range of the text,
// equal to tokenizers' `Encoding.offsets`.
import Foundation

public final class Tokenizer: Sendable {
    /// The file (or name) the tokenizer was read from; every error names it.
    public let name: String
    /// The entries of `added_tokens`, in file order.
    public let addedTokens: [AddedToken]
    /// One more than the largest id of the model vocabulary and the added tokens (the embedding rows needed).
    public let vocabularySize: Int

    let normalizer: (any Normalizer)?
    let preTokenizer: (any PreTokenizer)?
    let model: any TokenizerModel
    let postProcessor: (any PostProcessor)?
    let decoder: (any Decoder)?
    private let addedById: [Int: AddedToken]
    private let addedByContent: [ExactString: Int]
    let rawMatcher: AddedTokenMatcher
    let normalizedMatcher: AddedTokenMatcher

    /// Reads a `tokenizer.json` file.
    public convenience init(url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw TokenizerError(.unreadable, file: url.path, "cannot read the file: \(error.localizedDescription)")
        }
        try self.init(data: data, name: url.path)
    }

    /// Parses `tokenizer.json` content; `name` stands for the file in error messages.
    public init(data: Data, name: String) throws {
        self.name = name
        let root = JSONNode(try JSONParser.parse(data, file: name), file: name)
        guard case .object = root.value else {
            throw TokenizerError(.malformed, file: name, "the top level must be a JSON object")
        }
        model = try ModelFactory.make(root.require("model"))
        normalizer = try root.optional("normalizer").map(NormalizerFactory.make)
        preTokenizer = try root.optional("pre_tokenizer").map(PreTokenizerFactory.make)
        postProcessor = try root.optional("post_processor").map(PostProcessorFactory.make)
        decoder = try root.optional("decoder").map(DecoderFactory.make)

        var added: [AddedToken] = []
        var byId: [Int: AddedToken] = [:]
        var byContent: [ExactString: Int] = [:]
        for node in try root.optional("added_tokens")?.array() ?? [] {
            let token = try AddedToken(node)
            guard token.id >= 0 else { throw node.error(.malformed, "negative token id \(token.id)") }
            // `tokenizers` drops such a token without a word (AddedVocabulary::add_tokens); refused here, so that
            // the file is fixed rather than its token silently missing.
            guard !token.content.isEmpty else {
                throw node.error(.malformed, "added token id \(token.id) has empty content")
            }
            if let modelId = model.id(of: token.content), modelId != token.id {
                throw node.error(.inconsistent, "added token '\(token.content)' has id \(token.id) but the model "
                    + "vocabulary gives it id \(modelId)")
            }
            // Two entries for one id, or one content under two ids: which one wins is an accident of file order.
            if let earlier = byId[token.id] {
                throw node.error(.inconsistent, "added token id \(token.id) is given twice ('\(earlier.content)' and "
                    + "'\(token.content)')")
            }
            if let earlier = byContent[ExactString(token.content)] {
                throw node.error(.inconsistent,
                                 "added token '\(token.content)' is given twice (ids \(earlier) and \(token.id))")
            }
            byId[token.id] = token
            byContent[ExactString(token.content)] = token.id
            added.append(token)
        }
        try Self.checkTruncation(root.optional("truncation"))
        addedTokens = added
        vocabularySize = max(model.vocabularySize, (byId.keys.max() ?? -1) + 1)
        addedById = byId
        addedByContent = byContent
        let normalizer = self.normalizer
        rawMatcher = AddedTokenMatcher(added.filter { !$0.normalized }.map { ($0.content, $0) })
        normalizedMatcher = AddedTokenMatcher(try added.filter(\.normalized).map {
            (try normalizer?.normalize($0.content) ?? $0.content, $0)
        })
    }

    /// The id of a token string (added tokens first, then the model vocabulary).
    public func id(of token: String) -> Int? {
        addedByContent[ExactString(token)] ?? model.id(of: token)
    }

    /// The token string of an id (added tokens first, then the model vocabulary).
    public func token(of id: Int) -> String? {
        addedById[id]?.content ?? model.token(of: id)
    }

    /// Whether `id` is an added token marked special (skipped by `decode(_:skipSpecialTokens: true)`).
    public func isSpecial(_ id: Int) -> Bool { addedById[id]?.special ?? false }

    /// `truncation` is ignored when encoding (as transformers' fast tokenizers do by default), but a value that
    /// is not null nor an object with a positive integer `max_length` is a broken file, refused.
    static func checkTruncation(_ node: JSONNode?) throws {
        guard let node else { return }
        if case .null = node.value { return }
        guard case .object = node.value else { throw node.error(.malformed, "truncation must be null or an object") }
        if let length = try node.optional("max_length") {
            guard case .number(let n) = length.value, n >= 1, n == n.rounded(), n <= Double(Int32.max) else {
                throw length.error(.malformed, "max_length must be a positive integer")
            }
        }
    }

    /// The id of the model's unknown token (`unk_token`), which stands for any word outside the vocabulary.
    public var unknownTokenID: Int? { model.unknownTokenID }

    // MARK: Encoding

    /// The token ids of `text`; with `addSpecialTokens`, the post-processor's tokens (e.g. `<s>`) are added.
    public func encode(_ text: String, addSpecialTokens: Bool = true) throws -> [Int] {
        let ids = try encodeSequence(text)
        guard addSpecialTokens, let postProcessor else { return ids }
        return postProcessor.process(ids).ids
    }

    /// The ids of `text` before post-processing.
    private func encodeSequence(_ text: String) throws -> [Int] {
        var ids: [Int] = []
        for segment in try segments(text) {
            if let id = segment.addedId {
                ids.append(id)
                continue
            }
            let words = try preTokenizer?.preTokenize([PreToken(text: segment.text, atStart: segment.atStart)])
                ?? [PreToken(text: segment.text, atStart: segment.atStart)]
            for word in words where !word.text.isEmpty {
                ids += try model.tokenize(word.text)
            }
        }
        return ids
    }

    /// Added tokens found in the raw text, then normalization of the pieces between them, then added tokens
    /// found in the normalized pieces (`AddedVocabulary::extract_and_normalize`). Empty pieces are dropped.
    private func segments(_ text: String) throws -> [TextSegment] {
        var result: [TextSegment] = []
        for segment in rawMatcher.split(TextSegment(text: text, addedId: nil, atStart: true)) {
            if segment.addedId != nil {
                result.append(segment)
                continue
            }
            var normalized = segment
            if let normalizer { normalized.text = try normalizer.normalize(segment.text) }
            if normalized.text.isEmpty { continue }
            result += normalizedMatcher.split(normalized).filter { !$0.text.isEmpty }
        }
        return result
    }

    /// The ids of a prompt assembled from `pieces`, and the token range of each piece in those ids.
    ///
    /// The ids are exactly `encode(pieces.joined(), addSpecialTokens:)`. Piece `i` covers the tokens from the end
    /// of the encoding of `pieces[0..<i].joined()` to the end of the encoding of `pieces[0...i].joined()`
    /// (encoded without special tokens, shifted by the post-processor's leading special tokens). Throws
    /// `TokenizerError` (`invalidInput`) when a piece boundary falls inside a token, i.e. when the encoding of a
    /// prefix is not a prefix of the full encoding: then no exact span exists, and the caller should move the
    /// boundary (typically put the separating space or newline at the start of the next piece, or make the
    /// boundary an added token such as `<image>`).
    public func encode(pieces: [String], addSpecialTokens: Bool = true) throws -> (ids: [Int], spans: [Range<Int>]) {
        let raw = try encodeSequence(pieces.joined())
        var ids = raw
        var offset = 0
        if addSpecialTokens, let postProcessor {
            (ids, offset) = postProcessor.process(raw)
        }
        var boundaries = [0]
        var prefix = ""
        for (i, piece) in pieces.enumerated() {
            prefix += piece
            let prefixIds = i == pieces.count - 1 ? raw : try encodeSequence(prefix)
            guard prefixIds.count <= raw.count, raw.starts(with: prefixIds), prefixIds.count >= boundaries.last ?? 0
            else {
                throw TokenizerError(.invalidInput, file: name, "the end of piece \(i) (\(Self.quote(piece))) "
                    + "falls inside a token of the assembled text; move the boundary so that it is a token boundary")
            }
            boundaries.append(prefixIds.count)
        }
        let spans = (0..<pieces.count).map { offset + boundaries[$0]..<offset + boundaries[$0 + 1] }
        return (ids, spans)
    }

    private static func quote(_ text: String) -> String {
        let shown = text.unicodeScalars.count > 40 ? String(scalars: text.unicodeScalars.suffix(40)) : text
        return "…\"\(shown.debugDescription.dropFirst().dropLast())\""
    }

    // MARK: Decoding

    /// The text of `ids` through the decoder (tokens joined by spaces when the file has no decoder).
    /// Throws for an id that is neither in the vocabulary nor an added token.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) throws -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if let added = addedById[id] {
                if skipSpecialTokens && added.special { continue }
                tokens.append(added.content)
            } else if let token = model.token(of: id) {
                tokens.append(token)
            } else {
                throw TokenizerError(.invalidInput, file: name, "cannot decode id \(id): not in the vocabulary "
                    + "(size \(vocabularySize))")
            }
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return try decoder.decodeChain(tokens).joined()
    }
}
