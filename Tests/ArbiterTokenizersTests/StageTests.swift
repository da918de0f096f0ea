// Each pre-tokenizer, normalizer and decoder on its own, against `tokenizers`' pre_tokenize_str, normalize_str
// and decode (Fixtures/stages.goldens.json from Tools/tokenizer_goldens.py).
import Foundation
import Testing
@testable import ArbiterTokenizers

@Suite("Tokenizer stages")
struct TokenizerStageTests {
    static func stages(_ key: String) throws -> [JSONNode] {
        let url = Fixtures.folder.appendingPathComponent("stages.goldens.json")
        let root = JSONNode(try JSONParser.parse(Data(contentsOf: url), file: url.path), file: url.path)
        return try root.require(key).array()
    }

    static func describe(_ config: JSONNode) -> String {
        (try? config.entries().map { "\($0.key)=\($0.node.value)" }.joined(separator: ", ")) ?? "?"
    }

    @Test("pre-tokenizers split like pre_tokenize_str")
    func preTokenizers() throws {
        let stages = try Self.stages("pre_tokenizers")
        #expect(stages.count >= 30)
        for stage in stages {
            let config = try stage.require("config")
            let preTokenizer = try PreTokenizerFactory.make(config)
            for c in try stage.require("cases").array() {
                let input = try c.string("input")
                let expected = try c.require("output").array().map { try $0.string() }
                let got = try preTokenizer.preTokenize([PreToken(text: input, atStart: true)]).map(\.text)
                #expect(got.count == expected.count && zip(got, expected).allSatisfy(same),
                        "\(Self.describe(config)) on \"\(show(input))\": \(got.map(show)) != \(expected.map(show))")
            }
        }
    }

    @Test("normalizers normalize like normalize_str")
    func normalizers() throws {
        let stages = try Self.stages("normalizers")
        #expect(stages.count >= 15)
        for stage in stages {
            let config = try stage.require("config")
            let normalizer = try NormalizerFactory.make(config)
            for c in try stage.require("cases").array() {
                let input = try c.string("input")
                let expected = try c.string("output")
                let got = try normalizer.normalize(input)
                #expect(same(got, expected),
                        "\(Self.describe(config)) on \"\(show(input))\": \"\(show(got))\" != \"\(show(expected))\"")
            }
        }
    }

    @Test("decoders decode like decode")
    func decoders() throws {
        let stages = try Self.stages("decoders")
        #expect(stages.count >= 14)
        for stage in stages {
            let config = try stage.require("config")
            let decoder = try DecoderFactory.make(config)
            for c in try stage.require("cases").array() {
                let input = try c.require("input").array().map { try $0.string() }
                let expected = try c.string("output")
                let got = try decoder.decodeChain(input).joined()
                #expect(same(got, expected),
                        "\(Self.describe(config)) on \(input.map(show)): \"\(show(got))\" != \"\(show(expected))\"")
            }
        }
    }

    @Test("BPE merges lowest rank first, leftmost first among equal ranks")
    func bpeMergeOrder() throws {
        // "aaa" with the single merge a+a: the left pair merges first → [aa, a].
        // "abc" with merges b+c (rank 0) before a+b (rank 1) → [a, bc], not [ab, c].
        let json = """
        {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "aa": 3, "bc": 4, "ab": 5},
                   "merges": [["a", "a"], ["b", "c"], ["a", "b"]]}}
        """
        let tokenizer = try Tokenizer(data: Data(json.utf8), name: "inline.json")
        #expect(try tokenizer.encode("aaa") == [3, 0])
        #expect(try tokenizer.encode("aaaa") == [3, 3])
        #expect(try tokenizer.encode("abc") == [0, 4])
        #expect(try tokenizer.encode("abab") == [5, 5])
        // Repeated calls go through the word cache and must agree.
        #expect(try tokenizer.encode("abc") == [0, 4])
    }

    @Test("JSON strings keep their exact scalars: canonically equivalent tokens stay distinct")
    func exactVocabularyKeys() throws {
        let json = """
        {"model": {"type": "WordLevel", "vocab": {"\\u00e9": 0, "e\\u0301": 1, "[UNK]": 2}, "unk_token": "[UNK]"},
         "pre_tokenizer": {"type": "WhitespaceSplit"}}
        """
        let tokenizer = try Tokenizer(data: Data(json.utf8), name: "inline.json")
        #expect(try tokenizer.encode("\u{e9} e\u{301}") == [0, 1])
        #expect(tokenizer.id(of: "e\u{301}") == 1)
        #expect(same(try #require(tokenizer.token(of: 1)), "e\u{301}"))
    }
}
