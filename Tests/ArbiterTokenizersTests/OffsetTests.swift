// Token offsets compared with `tokenizers`' Encoding.offsets (Unicode scalar offsets).
import Foundation
import Testing
@testable import ArbiterTokenizers

@Suite("Tokenizer offsets")
struct TokenizerOffsetTests {
    @Test("offsets equal tokenizers' offsets", arguments: Family.allCases)
    func offsets(family: Family) throws {
        let tokenizer = try Fixtures.tokenizer(family)
        let goldens = try Fixtures.goldens(family)
        var failures: [String] = []
        for c in goldens.cases {
            let got = try tokenizer.encodeWithScalarOffsets(c.text, addSpecialTokens: false)
            #expect(got.map(\.id) == c.ids_no_special, "\"\(show(c.text))\"")
            let ranges = got.map { [$0.range.lowerBound, $0.range.upperBound] }
            if ranges != c.offsets_no_special {
                failures.append("\"\(show(c.text))\": \(ranges) != expected \(c.offsets_no_special)")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) mismatches, first: \(failures.prefix(5).joined(separator: "\n"))")
    }
}

@Suite("Tokenizer offsets API")
struct TokenizerOffsetAPITests {
    static let prompt = "USER: <image>\nWhat is shown in this image? ASSISTANT: 東京 👨‍👩‍👧"

    @Test("String ranges: the ids of encode, added tokens cover their text, specials get empty ranges at the ends",
          arguments: [Family.llama2, .metaspace, .qwen2, .llama3, .wordlevel])
    func stringRanges(family: Family) throws {
        let tokenizer = try Fixtures.tokenizer(family)
        let text = Self.prompt
        let tokens = try tokenizer.encodeWithOffsets(text)
        #expect(tokens.map(\.id) == (try tokenizer.encode(text)))
        let image = try #require(tokens.first { $0.id == tokenizer.id(of: "<image>") })
        #expect(same(String(text.unicodeScalars[image.range]), "<image>"))
        let (ids, sequenceStart) = tokenizer.postProcessor?.process([]) ?? ([], 0)
        for (i, token) in tokens.enumerated() where i < sequenceStart {
            #expect(token.range == text.startIndex..<text.startIndex)
        }
        for token in tokens.suffix(ids.count - sequenceStart) {
            #expect(token.range == text.endIndex..<text.endIndex)
        }
    }

    @Test("byte-level offsets cover the text in order (a token holding bytes of two characters covers both)",
          arguments: [Family.llama3])
    func tiling(family: Family) throws {
        let tokenizer = try Fixtures.tokenizer(family)
        let text = Self.prompt
        var ranges: [Range<Int>] = []
        for token in try tokenizer.encodeWithScalarOffsets(text, addSpecialTokens: false)
        where ranges.last != token.range {
            ranges.append(token.range)
        }
        #expect(ranges.first?.lowerBound == 0)
        #expect(ranges.last?.upperBound == text.unicodeScalars.count)
        for (a, b) in zip(ranges, ranges.dropFirst()) {
            #expect(a.lowerBound <= b.lowerBound && b.lowerBound <= a.upperBound, "\(a) then \(b)")
        }
    }

    @Test("normalizers without tracked alignment are refused, naming the file")
    func unsupportedAlignment() throws {
        let json = """
        {"normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                        "strip_accents": null, "lowercase": true},
         "pre_tokenizer": {"type": "WhitespaceSplit"},
         "model": {"type": "WordLevel", "vocab": {"a": 0, "[UNK]": 1}, "unk_token": "[UNK]"}}
        """
        let tokenizer = try Tokenizer(data: Data(json.utf8), name: "bert-normalizer.json")
        #expect(try tokenizer.encode("A b") == [0, 1])
        let error = #expect(throws: TokenizerError.self) { try tokenizer.encodeWithOffsets("A b") }
        #expect(error?.kind == .unsupported)
        #expect(error?.description.contains("bert-normalizer.json") == true)
    }
}
