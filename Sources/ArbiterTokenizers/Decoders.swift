// Decoders: the `decoder` stage of tokenizer.json (tokenizers/src/decoders/*.rs). Each decoder maps the list of
// token strings to a new list (`decode_chain`); the tokenizer concatenates the final list.
import Foundation

/// One decoder: token strings in, token strings out.
protocol Decoder: Sendable {
    /// Throws when a regex runs out of its step budget (see ICURegex).
    func decodeChain(_ tokens: [String]) throws -> [String]
}

/// The `type` strings of the decoder stage.
enum DecoderType: String {
    case sequence = "Sequence"
    case byteLevel = "ByteLevel"
    case byteFallback = "ByteFallback"
    case fuse = "Fuse"
    case strip = "Strip"
    case replace = "Replace"
    case metaspace = "Metaspace"
    case wordPiece = "WordPiece"
    case bpe = "BPEDecoder"
}

enum DecoderFactory {
    /// The decoder described by `node`; throws naming the type and the file for anything unknown.
    static func make(_ node: JSONNode) throws -> any Decoder {
        let name = try node.typeName()
        guard let type = DecoderType(rawValue: name) else {
            throw node.error(.unsupported, "unknown decoder type '\(name)'")
        }
        switch type {
        case .sequence: return SequenceDecoder(try node.require("decoders").array().map(make))
        case .byteLevel: return ByteLevelDecoder()
        case .byteFallback: return ByteFallbackDecoder()
        case .fuse: return FuseDecoder()
        case .strip:
            let content = Array(try node.string("content").unicodeScalars)
            guard content.count == 1 else { throw node.error(.malformed, "Strip content must be one character") }
            return StripDecoder(content: content[0], start: try node.int("start"), stop: try node.int("stop"))
        case .replace:
            return ReplaceDecoder(pattern: try TextPattern.parse(node.require("pattern")),
                                  content: try node.string("content"))
        case .metaspace:
            let replacement = Array((try node.optionalString("replacement") ?? "\u{2581}").unicodeScalars)
            guard replacement.count == 1 else {
                throw node.error(.malformed, "Metaspace replacement must be one character")
            }
            return MetaspaceDecoder(replacement: replacement[0], prependScheme: try PrependScheme.parse(node))
        case .wordPiece:
            return WordPieceDecoder(prefix: try node.optionalString("prefix") ?? "##",
                                    cleanup: try node.bool("cleanup", default: true))
        case .bpe:
            return BPESuffixDecoder(suffix: try node.optionalString("suffix") ?? "</w>")
        }
    }
}

struct SequenceDecoder: Decoder {
    let decoders: [any Decoder]
    init(_ decoders: [any Decoder]) { self.decoders = decoders }
    func decodeChain(_ tokens: [String]) throws -> [String] {
        try decoders.reduce(tokens) { try $1.decodeChain($0) }
    }
}

/// Byte-level characters back to bytes, then UTF-8 with invalid sequences replaced by U+FFFD.
/// A token holding a character outside the byte alphabet contributes its own UTF-8 bytes.
struct ByteLevelDecoder: Decoder {
    func decodeChain(_ tokens: [String]) -> [String] {
        var bytes: [UInt8] = []
        for token in tokens {
            var tokenBytes: [UInt8] = []
            var mapped = true
            for scalar in token.unicodeScalars {
                guard let byte = ByteLevelAlphabet.scalarToByte[scalar.value] else {
                    mapped = false
                    break
                }
                tokenBytes.append(byte)
            }
            bytes += mapped ? tokenBytes : Array(token.utf8)
        }
        return [String(decoding: bytes, as: UTF8.self)]
    }
}

/// `<0xNN>` tokens back to bytes; a run that is not valid UTF-8 becomes one U+FFFD per byte.
struct ByteFallbackDecoder: Decoder {
    func decodeChain(_ tokens: [String]) -> [String] {
        var out: [String] = []
        var pending: [UInt8] = []
        func flush() {
            guard !pending.isEmpty else { return }
            if let text = String(validating: pending, as: UTF8.self) {
                out.append(text)
            } else {
                out.append(contentsOf: Array(repeating: "\u{FFFD}", count: pending.count))
            }
            pending.removeAll()
        }
        for token in tokens {
            if let byte = Self.byte(of: token) {
                pending.append(byte)
            } else {
                flush()
                out.append(token)
            }
        }
        flush()
        return out
    }

    static func byte(of token: String) -> UInt8? {
        let utf8 = Array(token.utf8)
        guard utf8.count == 6, token.exactlyStarts(with: "<0x"), utf8[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: utf8[3..<5], as: UTF8.self), radix: 16)
    }
}

/// All tokens into one.
struct FuseDecoder: Decoder {
    func decodeChain(_ tokens: [String]) -> [String] { [tokens.joined()] }
}

/// Removes up to `start` leading and `stop` trailing `content` characters from each token.
struct StripDecoder: Decoder {
    let content: Unicode.Scalar
    let start: Int
    let stop: Int

    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.map { token in
            let scalars = Array(token.unicodeScalars)
            var startCut = 0
            while startCut < min(start, scalars.count), scalars[startCut] == content { startCut += 1 }
            var stopCut = scalars.count
            var removed = 0
            while removed < stop, stopCut > startCut, scalars[stopCut - 1] == content {
                stopCut -= 1
                removed += 1
            }
            return String(scalars: scalars[startCut..<stopCut])
        }
    }
}

/// Replaces a pattern in each token (Llama-2's "▁" → " ").
struct ReplaceDecoder: Decoder {
    let pattern: TextPattern
    let content: String
    func decodeChain(_ tokens: [String]) throws -> [String] {
        try tokens.map { try pattern.replaceAll(in: $0, with: content) }
    }
}

/// "▁" back to " "; in the first token the "▁"s are dropped unless `prepend_scheme` is never.
struct MetaspaceDecoder: Decoder {
    let replacement: Unicode.Scalar
    let prependScheme: PrependScheme

    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, token in
            var out = String.UnicodeScalarView()
            for scalar in token.unicodeScalars {
                if scalar == replacement {
                    if i == 0 && prependScheme != .never { continue }
                    out.append(" ")
                } else {
                    out.append(scalar)
                }
            }
            return String(out)
        }
    }
}

/// WordPiece: `##` continuations are glued, other tokens get a leading space; optional BERT cleanup.
struct WordPieceDecoder: Decoder {
    let prefix: String
    let cleanup: Bool

    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, token in
            var text = token
            if i != 0 {
                if text.exactlyStarts(with: prefix) {
                    text = String(scalars: text.unicodeScalars.dropFirst(prefix.unicodeScalars.count))
                } else {
                    text = " " + text
                }
            }
            return cleanup ? Self.cleanUp(text) : text
        }
    }

    static func cleanUp(_ text: String) -> String {
        let rules: [(String, String)] = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
                                          (" n't", "n't"), (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"),
                                          (" 've", "'ve"), (" 're", "'re")]
        return rules.reduce(text) { result, rule in
            TextPattern.replacingLiteral(rule.0, in: result, with: rule.1)
        }
    }
}

/// BPE with an end-of-word suffix: the suffix becomes a space (nothing after the last token).
struct BPESuffixDecoder: Decoder {
    let suffix: String

    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, token in
            TextPattern.replacingLiteral(suffix, in: token, with: i == tokens.count - 1 ? "" : " ")
        }
    }
}
