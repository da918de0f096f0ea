// Normalizers: the `normalizer` stage of tokenizer.json (tokenizers/src/normalizers/*.rs).
// Each one maps a piece of text (between added tokens) to its normalized form.
import Foundation

/// One normalizer: text in, normalized text out.
protocol Normalizer: Sendable {
    /// Throws when a regex runs out of its step budget (see ICURegex).
    func normalize(_ text: String) throws -> String
}

/// The `type` strings of the normalizer stage.
enum NormalizerType: String {
    case sequence = "Sequence"
    case nfc = "NFC", nfd = "NFD", nfkc = "NFKC", nfkd = "NFKD"
    case lowercase = "Lowercase"
    case strip = "Strip"
    case stripAccents = "StripAccents"
    case prepend = "Prepend"
    case replace = "Replace"
    case bert = "BertNormalizer"
    case byteLevel = "ByteLevel"
    case precompiled = "Precompiled"
}

enum NormalizerFactory {
    /// The normalizer described by `node`; throws naming the type and the file for anything unknown.
    static func make(_ node: JSONNode) throws -> any Normalizer {
        let name = try node.typeName()
        guard let type = NormalizerType(rawValue: name) else {
            throw node.error(.unsupported, "unknown normalizer type '\(name)'")
        }
        switch type {
        case .sequence:
            return SequenceNormalizer(try node.require("normalizers").array().map(make))
        case .nfc: return UnicodeNormalizer(form: .nfc)
        case .nfd: return UnicodeNormalizer(form: .nfd)
        case .nfkc: return UnicodeNormalizer(form: .nfkc)
        case .nfkd: return UnicodeNormalizer(form: .nfkd)
        case .lowercase: return LowercaseNormalizer()
        case .strip:
            return StripNormalizer(left: try node.bool("strip_left", default: true),
                                   right: try node.bool("strip_right", default: true))
        case .stripAccents: return StripAccentsNormalizer()
        case .prepend: return PrependNormalizer(prefix: try node.string("prepend"))
        case .replace:
            return ReplaceNormalizer(pattern: try TextPattern.parse(node.require("pattern")),
                                     content: try node.string("content"))
        case .bert:
            let lowercase = try node.bool("lowercase", default: true)
            return BertNormalizer(cleanText: try node.bool("clean_text", default: true),
                                  handleChineseChars: try node.bool("handle_chinese_chars", default: true),
                                  stripAccents: try node.optional("strip_accents")?.bool() ?? lowercase,
                                  lowercase: lowercase)
        case .byteLevel: return ByteLevelNormalizer()
        case .precompiled:
            throw node.error(.unsupported, "normalizer type 'Precompiled' (a SentencePiece charsmap) is not supported")
        }
    }
}

struct SequenceNormalizer: Normalizer {
    let normalizers: [any Normalizer]
    init(_ normalizers: [any Normalizer]) { self.normalizers = normalizers }
    func normalize(_ text: String) throws -> String { try normalizers.reduce(text) { try $1.normalize($0) } }
}

/// NFC, NFD, NFKC, NFKD.
struct UnicodeNormalizer: Normalizer {
    enum Form: Sendable { case nfc, nfd, nfkc, nfkd }
    let form: Form

    func normalize(_ text: String) -> String {
        switch form {
        case .nfc: text.precomposedStringWithCanonicalMapping
        case .nfd: text.decomposedStringWithCanonicalMapping
        case .nfkc: text.precomposedStringWithCompatibilityMapping
        case .nfkd: text.decomposedStringWithCompatibilityMapping
        }
    }
}

/// Rust's per-character `char::to_lowercase` (full mappings, no context-dependent final sigma).
struct LowercaseNormalizer: Normalizer {
    func normalize(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.isASCII {
                out.append(scalar.properties.isUppercase ? Unicode.Scalar(UInt8(scalar.value) + 32) : scalar)
            } else {
                out.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return String(out)
    }
}

/// Removes leading and/or trailing White_Space.
struct StripNormalizer: Normalizer {
    let left: Bool
    let right: Bool

    func normalize(_ text: String) -> String {
        var scalars = Substring(text).unicodeScalars[...]
        if left { while let first = scalars.first, CharClass.isWhitespace(first) { scalars.removeFirst() } }
        if right { while let last = scalars.last, CharClass.isWhitespace(last) { scalars.removeLast() } }
        return String(scalars: scalars)
    }
}

/// Removes combining marks (usually after NFD).
struct StripAccentsNormalizer: Normalizer {
    func normalize(_ text: String) -> String {
        String(scalars: text.unicodeScalars.filter { !CharClass.isCombiningMark($0) })
    }
}

/// Prepends a string to every non-empty piece (Llama-2's "▁").
struct PrependNormalizer: Normalizer {
    let prefix: String
    func normalize(_ text: String) -> String { text.isEmpty ? text : prefix + text }
}

/// Replaces every match of a pattern (Llama-2's " " → "▁").
struct ReplaceNormalizer: Normalizer {
    let pattern: TextPattern
    let content: String
    func normalize(_ text: String) throws -> String { try pattern.replaceAll(in: text, with: content) }
}

/// BERT's normalizer: clean control characters, pad CJK ideographs with spaces, strip accents, lowercase.
struct BertNormalizer: Normalizer {
    let cleanText: Bool
    let handleChineseChars: Bool
    let stripAccents: Bool
    let lowercase: Bool

    func normalize(_ text: String) -> String {
        var scalars: [Unicode.Scalar] = []
        for s in text.unicodeScalars {
            if cleanText {
                if s.value == 0 || s.value == 0xFFFD || Self.isControl(s) { continue }
                if CharClass.isWhitespace(s) { scalars.append(" "); continue }
            }
            if handleChineseChars, Self.isChinese(s) {
                scalars.append(" ")
                scalars.append(s)
                scalars.append(" ")
            } else {
                scalars.append(s)
            }
        }
        var result = String(scalars: scalars)
        if stripAccents {
            result = StripAccentsNormalizer().normalize(UnicodeNormalizer(form: .nfd).normalize(result))
        }
        if lowercase { result = LowercaseNormalizer().normalize(result) }
        return result
    }

    /// BERT's `is_control`: \t \n \r are whitespace, not control; otherwise categories Cc, Cf, Cn, Co.
    private static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse: return true
        default: return false
        }
    }

    private static func isChinese(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
             0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }
}

/// Maps every UTF-8 byte to its printable byte-level character (GPT-2's `bytes_to_unicode`).
struct ByteLevelNormalizer: Normalizer {
    func normalize(_ text: String) -> String { ByteLevelAlphabet.encode(text) }
}

/// GPT-2's reversible byte ↔ printable character table.
enum ByteLevelAlphabet {
    /// `byteToScalar[b]` is the printable character standing for byte `b`.
    static let byteToScalar: [Unicode.Scalar] = {
        var printable: [UInt32] = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var table = [UInt32](repeating: 0, count: 256)
        for b in printable { table[Int(b)] = b }
        var next: UInt32 = 256
        for b in 0..<256 where !printable.contains(UInt32(b)) {
            table[b] = next
            printable.append(UInt32(b))
            next += 1
        }
        return table.map { Unicode.Scalar($0) ?? "?" }  // all below U+0144: always valid
    }()

    /// The inverse of `byteToScalar`.
    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { map[s.value] = UInt8(b) }
        return map
    }()

    static func encode(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for byte in text.utf8 { out.append(byteToScalar[Int(byte)]) }
        return String(out)
    }
}
