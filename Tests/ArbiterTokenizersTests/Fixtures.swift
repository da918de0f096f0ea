// Golden fixtures written by Tools/tokenizer_goldens.py: one tokenizer.json per family and the ids and
// decodings Python `tokenizers` gives for a few hundred strings.
import Foundation
import Testing
@testable import ArbiterTokenizers

/// The tokenizer families of Tools/tokenizer_goldens.py.
enum Family: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case qwen2, llama3, gpt2, llama2, metaspace
    case metaspaceAlways = "metaspace-always"
    case wordlevel, bert

    var testDescription: String { rawValue }

    /// Whether decode(encode(s)) gives s back for most strings (WordLevel lowercases and drops spaces, GPT-2's
    /// prefix space and unk tokens do not come back).
    var isLossless: Bool { [.qwen2, .llama3, .llama2, .metaspace].contains(self) }
}

struct GoldenCase: Decodable, Sendable {
    let text: String
    let ids: [Int]
    let ids_no_special: [Int]
    let offsets_no_special: [[Int]]
    let decoded: String
    let decoded_skip_special: String
    let decoded_no_special: String
}

struct GoldenFile: Decodable, Sendable {
    let format_version: Int
    let source: String
    let vocab_size: Int
    let cases: [GoldenCase]
}

enum Fixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func tokenizerURL(_ family: Family) -> URL {
        folder.appendingPathComponent("\(family.rawValue).tokenizer.json")
    }

    static func tokenizer(_ family: Family) throws -> Tokenizer {
        try Tokenizer(url: tokenizerURL(family))
    }

    static func goldens(_ family: Family) throws -> GoldenFile {
        let url = folder.appendingPathComponent("\(family.rawValue).goldens.json")
        let file = try JSONDecoder().decode(GoldenFile.self, from: Data(contentsOf: url))
        guard file.format_version == 1 else {
            throw TokenizerError(.unsupported, file: url.path, "golden format \(file.format_version); regenerate "
                + "with .venv/bin/python Tools/tokenizer_goldens.py write")
        }
        return file
    }
}

/// Exact scalar-wise equality: Swift's `==` treats "é" and "e\u{301}" as equal.
func same(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }

/// A string with its invisible characters spelled out, for failure messages.
func show(_ s: String) -> String {
    s.unicodeScalars.map { scalar in
        scalar.isASCII && scalar.value >= 0x20 && scalar.value < 0x7F
            ? String(scalar) : "\\u{\(String(scalar.value, radix: 16))}"
    }.joined()
}
