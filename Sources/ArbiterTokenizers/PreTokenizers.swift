// Pre-tokenizers: the `pre_tokenizer` stage of tokenizer.json (tokenizers/src/pre_tokenizers/*.rs).
// Each one splits pieces into smaller pieces (words) and may rewrite them (ByteLevel, Metaspace).
import Foundation

/// A piece of text on its way to the model. `atStart` is true when the piece begins at offset 0 of the
/// original input (Metaspace's `prepend_scheme: first` only prepends there).
struct PreToken: Sendable {
    var text: String
    var atStart: Bool
}

/// One pre-tokenizer: pieces in, smaller (non-empty) pieces out.
protocol PreTokenizer: Sendable {
    /// Throws when a regex runs out of its step budget (see ICURegex).
    func preTokenize(_ pieces: [PreToken]) throws -> [PreToken]
}

extension PreTokenizer {
    /// Applies `transform` to every non-empty piece, dropping empty results (as `PreTokenizedString::split`
    /// does; nothing is ever prepended to an empty piece); only the first sub-piece of a piece that was at the
    /// start stays at the start.
    func splitEach(_ pieces: [PreToken], _ transform: (PreToken) throws -> [String]) rethrows -> [PreToken] {
        var out: [PreToken] = []
        for piece in pieces where !piece.text.isEmpty {
            for (i, text) in try transform(piece).enumerated() where !text.isEmpty {
                out.append(PreToken(text: text, atStart: piece.atStart && i == 0))
            }
        }
        return out
    }
}

/// The `type` strings of the pre-tokenizer stage.
enum PreTokenizerType: String {
    case sequence = "Sequence"
    case byteLevel = "ByteLevel"
    case split = "Split"
    case metaspace = "Metaspace"
    case whitespace = "Whitespace"
    case whitespaceSplit = "WhitespaceSplit"
    case bert = "BertPreTokenizer"
    case punctuation = "Punctuation"
    case digits = "Digits"
    case charDelimiterSplit = "CharDelimiterSplit"
}

enum PreTokenizerFactory {
    /// The pre-tokenizer described by `node`; throws naming the type and the file for anything unknown.
    static func make(_ node: JSONNode) throws -> any PreTokenizer {
        let name = try node.typeName()
        guard let type = PreTokenizerType(rawValue: name) else {
            throw node.error(.unsupported, "unknown pre-tokenizer type '\(name)'")
        }
        switch type {
        case .sequence:
            return SequencePreTokenizer(try node.require("pretokenizers").array().map(make))
        case .byteLevel:
            return try ByteLevelPreTokenizer(addPrefixSpace: try node.bool("add_prefix_space", default: true),
                                             useRegex: try node.bool("use_regex", default: true), file: node.file)
        case .split:
            return SplitPreTokenizer(pattern: try TextPattern.parse(node.require("pattern")),
                                     behavior: try SplitBehavior.parse(node.require("behavior")),
                                     invert: try node.bool("invert", default: false))
        case .metaspace:
            return try MetaspacePreTokenizer(node)
        case .whitespace:
            return try WhitespacePreTokenizer(file: node.file)
        case .whitespaceSplit:
            return CharSplitPreTokenizer(test: CharClass.isWhitespace, behavior: .removed)
        case .bert:
            return SequencePreTokenizer([CharSplitPreTokenizer(test: CharClass.isWhitespace, behavior: .removed),
                                         CharSplitPreTokenizer(test: CharClass.isBertPunctuation, behavior: .isolated)])
        case .punctuation:
            let behavior = try node.optional("behavior").map(SplitBehavior.parse) ?? .isolated
            return CharSplitPreTokenizer(test: CharClass.isBertPunctuation, behavior: behavior)
        case .digits:
            let individual = try node.bool("individual_digits", default: false)
            return CharSplitPreTokenizer(test: CharClass.isNumeric, behavior: individual ? .isolated : .contiguous)
        case .charDelimiterSplit:
            let delimiter = Array(try node.string("delimiter").unicodeScalars)
            guard delimiter.count == 1 else {
                throw node.error(.malformed, "CharDelimiterSplit delimiter must be one character")
            }
            let d = delimiter[0]
            return CharSplitPreTokenizer(test: { $0 == d }, behavior: .removed)
        }
    }
}

struct SequencePreTokenizer: PreTokenizer {
    let preTokenizers: [any PreTokenizer]
    init(_ preTokenizers: [any PreTokenizer]) { self.preTokenizers = preTokenizers }
    func preTokenize(_ pieces: [PreToken]) throws -> [PreToken] {
        try preTokenizers.reduce(pieces) { try $1.preTokenize($0) }
    }
}

/// GPT-2 byte-level: optional prefix space, optional GPT-2 regex split, then bytes → printable characters.
struct ByteLevelPreTokenizer: PreTokenizer {
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    let addPrefixSpace: Bool
    let regex: TextPattern?

    init(addPrefixSpace: Bool, useRegex: Bool, file: String) throws {
        self.addPrefixSpace = addPrefixSpace
        regex = useRegex ? .regex(try ICURegex(Self.gpt2Pattern, file: file, context: "ByteLevel")) : nil
    }

    func preTokenize(_ pieces: [PreToken]) throws -> [PreToken] {
        try splitEach(pieces) { piece in
            var text = piece.text
            if addPrefixSpace, !text.exactlyStarts(with: " ") { text = " " + text }
            let words = try regex.map { try split(text, on: $0, behavior: .isolated) } ?? [text]
            return words.map(ByteLevelAlphabet.encode)
        }
    }
}

/// `Split`: a literal or regex pattern with a delimiter behavior, optionally inverted.
struct SplitPreTokenizer: PreTokenizer {
    let pattern: TextPattern
    let behavior: SplitBehavior
    let invert: Bool

    func preTokenize(_ pieces: [PreToken]) throws -> [PreToken] {
        try splitEach(pieces) { try split($0.text, on: pattern, behavior: behavior, invert: invert) }
    }
}

/// Splits on single characters that pass `test` (whitespace, punctuation, digits, a delimiter).
struct CharSplitPreTokenizer: PreTokenizer {
    let test: @Sendable (Unicode.Scalar) -> Bool
    let behavior: SplitBehavior

    func preTokenize(_ pieces: [PreToken]) throws -> [PreToken] {
        try splitEach(pieces) { try split($0.text, on: .predicate(test), behavior: behavior) }
    }
}

/// `Whitespace`: keeps runs of word characters and runs of other non-space characters (`\w+|[^\w\s]+`).
struct WhitespacePreTokenizer: PreTokenizer {
    let pattern: TextPattern

    init(file: String) throws {
        pattern = .regex(try ICURegex(#"\w+|[^\w\s]+"#, file: file, context: "Whitespace"))
    }

    func preTokenize(_ pieces: [PreToken]) throws -> [PreToken] {
        try splitEach(pieces) { try split($0.text, on: pattern, behavior: .removed, invert: true) }
    }
}

/// How Metaspace adds the replacement character in front of a piece.
enum PrependScheme: String, Sendable {
    case always, never, first

    /// `prepend_scheme`, or the older `add_prefix_space` boolean.
    static func parse(_ node: JSONNode) throws -> PrependScheme {
        if let scheme = try node.optional("prepend_scheme") {
            let name = try scheme.string()
            guard let value = PrependScheme(rawValue: name) else {
                throw scheme.error(.unsupported, "unknown prepend_scheme '\(name)' (expected always, never or first)")
            }
            return value
        }
        return try node.bool("add_prefix_space", default: true) ? .always : .never
    }
}

/// SentencePiece's metaspace: spaces become "▁", "▁" is prepended (always / first piece / never), and
/// optionally the text is split before each "▁".
struct MetaspacePreTokenizer: PreTokenizer {
    let replacement: Unicode.Scalar
    let prependScheme: PrependScheme
    let splitWords: Bool

    init(_ node: JSONNode) throws {
        let replacementText = try node.optionalString("replacement") ?? "\u{2581}"
        let scalars = Array(replacementText.unicodeScalars)
        guard scalars.count == 1 else { throw node.error(.malformed, "Metaspace replacement must be one character") }
        replacement = scalars[0]
        prependScheme = try PrependScheme.parse(node)
        splitWords = try node.bool("split", default: true)
    }

    func preTokenize(_ pieces: [PreToken]) throws -> [PreToken] {
        try splitEach(pieces) { piece in
            var scalars = String.UnicodeScalarView()
            for s in piece.text.unicodeScalars { scalars.append(s == " " ? replacement : s) }
            let startsWithReplacement = scalars.first == replacement
            switch prependScheme {
            case .always where !startsWithReplacement, .first where !startsWithReplacement && piece.atStart:
                scalars.insert(replacement, at: scalars.startIndex)
            default:
                break
            }
            let text = String(scalars)
            guard splitWords else { return [text] }
            return try split(text, on: .literal([replacement]), behavior: .mergedWithNext)
        }
    }
}
