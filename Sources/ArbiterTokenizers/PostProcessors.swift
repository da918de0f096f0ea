// Post-processors: the `post_processor` stage of tokenizer.json (tokenizers/src/processors/*.rs).
// Only single sequences are encoded here; each processor adds its special tokens around them.
import Foundation

/// One post-processor: the ids of a single sequence in, the ids with special tokens out, plus where the
/// sequence's own ids start in the result.
protocol PostProcessor: Sendable {
    func process(_ ids: [Int]) -> (ids: [Int], sequenceStart: Int)
    /// Adjusts the offsets of a sequence's tokens (ByteLevel's `trim_offsets`); most processors leave them.
    func processOffsets(tokens: [String], offsets: [Range<Int>]) -> [Range<Int>]
}

extension PostProcessor {
    func processOffsets(tokens: [String], offsets: [Range<Int>]) -> [Range<Int>] { offsets }
}

/// The `type` strings of the post-processor stage.
enum PostProcessorType: String {
    case sequence = "Sequence"
    case template = "TemplateProcessing"
    case byteLevel = "ByteLevel"
    case bert = "BertProcessing"
    case roberta = "RobertaProcessing"
}

enum PostProcessorFactory {
    /// The post-processor described by `node`; throws naming the type and the file for anything unknown.
    static func make(_ node: JSONNode) throws -> any PostProcessor {
        let name = try node.typeName()
        guard let type = PostProcessorType(rawValue: name) else {
            throw node.error(.unsupported, "unknown post-processor type '\(name)'")
        }
        switch type {
        case .sequence:
            return SequencePostProcessor(try node.require("processors").array().map(make))
        case .template:
            return try TemplatePostProcessor(node)
        case .byteLevel:
            return ByteLevelPostProcessor(trimOffsets: try node.bool("trim_offsets", default: true),
                                          addPrefixSpace: try node.bool("add_prefix_space", default: true))
        case .bert, .roberta:
            return SurroundPostProcessor(prefix: [try Self.tokenId(node.require("cls"))],
                                         suffix: [try Self.tokenId(node.require("sep"))])
        }
    }

    /// `["[CLS]", 101]`.
    private static func tokenId(_ node: JSONNode) throws -> Int {
        let pair = try node.array()
        guard pair.count == 2 else { throw node.error(.malformed, "expected [token, id]") }
        return try pair[1].int()
    }
}

struct SequencePostProcessor: PostProcessor {
    let processors: [any PostProcessor]
    init(_ processors: [any PostProcessor]) { self.processors = processors }

    func process(_ ids: [Int]) -> (ids: [Int], sequenceStart: Int) {
        var result = (ids: ids, sequenceStart: 0)
        for processor in processors {
            let next = processor.process(result.ids)
            result = (next.ids, result.sequenceStart + next.sequenceStart)
        }
        return result
    }

    func processOffsets(tokens: [String], offsets: [Range<Int>]) -> [Range<Int>] {
        processors.reduce(offsets) { $1.processOffsets(tokens: tokens, offsets: $0) }
    }
}

/// ByteLevel: ids unchanged; with `trim_offsets`, token offsets exclude leading and trailing spaces
/// (tokenizers/src/pre_tokenizers/byte_level.rs, `process_offsets`).
struct ByteLevelPostProcessor: PostProcessor {
    let trimOffsets: Bool
    let addPrefixSpace: Bool

    func process(_ ids: [Int]) -> (ids: [Int], sequenceStart: Int) { (ids, 0) }

    func processOffsets(tokens: [String], offsets: [Range<Int>]) -> [Range<Int>] {
        guard trimOffsets else { return offsets }
        let space = ByteLevelAlphabet.byteToScalar[0x20]
        func isSpace(_ s: Unicode.Scalar) -> Bool { s == space || CharClass.isWhitespace(s) }
        return zip(tokens, offsets).enumerated().map { i, pair in
            let (token, offset) = pair
            let scalars = Array(token.unicodeScalars)
            var leading = scalars.prefix(while: isSpace).count
            let trailing = scalars.reversed().prefix(while: isSpace).count
            var lower = offset.lowerBound, upper = offset.upperBound
            if leading > 0 {
                if (i == 0 || lower == 0) && addPrefixSpace && leading == 1 { leading = 0 }
                lower = min(lower + leading, upper)
            }
            if trailing > 0, upper >= trailing { upper = max(upper - trailing, lower) }
            return lower..<upper
        }
    }
}

/// Fixed special ids before and after the sequence.
struct SurroundPostProcessor: PostProcessor {
    let prefix: [Int]
    let suffix: [Int]

    func process(_ ids: [Int]) -> (ids: [Int], sequenceStart: Int) { (prefix + ids + suffix, prefix.count) }
}

/// `TemplateProcessing`'s `single` template, e.g. `<s> $A` or `[CLS] $A [SEP]`.
struct TemplatePostProcessor: PostProcessor {
    let surround: SurroundPostProcessor

    init(_ node: JSONNode) throws {
        var specialIds: [ExactString: [Int]] = [:]
        if let specials = try node.optional("special_tokens") {
            for (name, special) in try specials.entries() {
                specialIds[ExactString(name)] = try special.require("ids").array().map { try $0.int() }
            }
        }
        var prefix: [Int] = [], suffix: [Int] = []
        var sawSequence = false
        for item in try node.require("single").array() {
            if let special = try item.optional("SpecialToken") {
                let name = try special.string("id")
                guard let ids = specialIds[ExactString(name)] else {
                    throw special.error(.inconsistent, "special token '\(name)' is not in special_tokens")
                }
                if sawSequence { suffix += ids } else { prefix += ids }
            } else if let sequence = try item.optional("Sequence") {
                let id = try sequence.string("id")
                guard id == "A", !sawSequence else {
                    throw sequence.error(.unsupported, "a single template must hold sequence A exactly once")
                }
                sawSequence = true
            } else {
                throw item.error(.malformed, "a template item must be SpecialToken or Sequence")
            }
        }
        guard sawSequence else { throw node.error(.malformed, "the single template has no sequence $A") }
        surround = SurroundPostProcessor(prefix: prefix, suffix: suffix)
    }

    func process(_ ids: [Int]) -> (ids: [Int], sequenceStart: Int) { surround.process(ids) }
}
