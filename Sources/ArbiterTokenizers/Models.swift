// Models: the `model` stage of tokenizer.json (tokenizers/src/models/mod.rs): a word in, token ids out.
import Foundation

/// One tokenization model.
protocol TokenizerModel: Sendable {
    /// The ids of one pre-tokenized word.
    func tokenize(_ word: String) throws -> [Int]
    /// The ids of one word, each with the range of the word's Unicode scalars it covers.
    func tokenizeWithSpans(_ word: String) throws -> [(id: Int, span: Range<Int>)]
    func id(of token: String) -> Int?
    func token(of id: Int) -> String?
    /// One more than the largest id of the model's vocabulary.
    var vocabularySize: Int { get }
    /// The id of the model's unknown token (`unk_token` in the vocabulary), if it has one.
    var unknownTokenID: Int? { get }
}

/// The `type` strings of the model stage.
enum ModelType: String {
    case bpe = "BPE"
    case wordLevel = "WordLevel"
    case wordPiece = "WordPiece"
    case unigram = "Unigram"
}

enum ModelFactory {
    /// The model described by `node`; throws naming the type and the file for anything unknown.
    static func make(_ node: JSONNode) throws -> any TokenizerModel {
        let name: String
        if let type = try node.optionalString("type") {
            name = type
        } else if try node.optional("merges") != nil {
            name = ModelType.bpe.rawValue  // older files have no model type: BPE is the one with merges
        } else {
            name = ModelType.wordLevel.rawValue
        }
        guard let type = ModelType(rawValue: name) else {
            throw node.error(.unsupported, "unknown model type '\(name)'")
        }
        switch type {
        case .bpe: return try BPEModel(node)
        case .wordLevel: return try WordLevelModel(node)
        case .wordPiece, .unigram:
            throw node.error(.unsupported, "model type '\(name)' is not supported (BPE and WordLevel are)")
        }
    }
}

/// A token ↔ id table, read from a `vocab` object, keyed by exact strings.
struct Vocabulary: Sendable {
    let ids: [ExactString: Int]
    let tokens: [Int: String]
    let size: Int

    init(_ node: JSONNode) throws {
        var ids: [ExactString: Int] = [:]
        var tokens: [Int: String] = [:]
        let entries = try node.entries()
        ids.reserveCapacity(entries.count)
        tokens.reserveCapacity(entries.count)
        var maxId = -1
        for (token, idNode) in entries {
            let id = try idNode.int()
            guard id >= 0 else { throw idNode.error(.malformed, "negative token id \(id)") }
            if ids.updateValue(id, forKey: ExactString(token)) != nil {
                throw idNode.error(.inconsistent, "token '\(token)' appears twice in the vocabulary")
            }
            if let other = tokens.updateValue(token, forKey: id) {
                throw idNode.error(.inconsistent, "id \(id) is given to both '\(other)' and '\(token)'")
            }
            maxId = max(maxId, id)
        }
        self.ids = ids
        self.tokens = tokens
        size = maxId + 1
    }

    subscript(token: String) -> Int? { ids[ExactString(token)] }
}

/// A fixed-capacity word → ids cache shared between threads.
final class WordCache: @unchecked Sendable {
    private var storage: [ExactString: [Int]] = [:]
    private let lock = NSLock()
    private let capacity: Int

    init(capacity: Int = 10_000) { self.capacity = capacity }

    func get(_ word: String) -> [Int]? {
        lock.lock()
        defer { lock.unlock() }
        return storage[ExactString(word)]
    }

    func set(_ word: String, _ ids: [Int]) {
        lock.lock()
        defer { lock.unlock() }
        if storage.count < capacity { storage[ExactString(word)] = ids }
    }
}

/// WordLevel: every word is a vocabulary entry, or the unknown token.
struct WordLevelModel: TokenizerModel {
    let vocabulary: Vocabulary
    let unkToken: String?
    var unknownTokenID: Int? { unkToken.flatMap { id(of: $0) } }
    let file: String

    init(_ node: JSONNode) throws {
        vocabulary = try Vocabulary(node.require("vocab"))
        unkToken = try node.optionalString("unk_token")
        file = node.file
    }

    func tokenize(_ word: String) throws -> [Int] {
        if let id = vocabulary[word] { return [id] }
        guard let unk = unkToken, let unkId = vocabulary[unk] else {
            throw TokenizerError(.missing, file: file, "WordLevel: '\(word)' is not in the vocabulary and the unk "
                + "token \(unkToken.map { "'\($0)'" } ?? "(none)") is missing")
        }
        return [unkId]
    }

    func tokenizeWithSpans(_ word: String) throws -> [(id: Int, span: Range<Int>)] {
        try tokenize(word).map { ($0, 0..<word.unicodeScalars.count) }
    }

    func id(of token: String) -> Int? { vocabulary[token] }
    func token(of id: Int) -> String? { vocabulary.tokens[id] }
    var vocabularySize: Int { vocabulary.size }
}
