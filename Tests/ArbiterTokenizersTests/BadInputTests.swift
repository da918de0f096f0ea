// Broken tokenizer files fail with a TokenizerError that names the file and the problem.
import Foundation
import Testing
@testable import ArbiterTokenizers

@Suite("Tokenizer bad input")
struct TokenizerBadInputTests {
    static let name = "broken/tokenizer.json"

    /// A small valid BPE tokenizer.json with one part replaced.
    static func file(model: String? = nil, preTokenizer: String = "null", normalizer: String = "null",
                     decoder: String = "null", postProcessor: String = "null", addedTokens: String = "[]") -> String {
        let defaultModel = """
        {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
        """
        return """
        {"version": "1.0", "added_tokens": \(addedTokens), "normalizer": \(normalizer),
         "pre_tokenizer": \(preTokenizer), "model": \(model ?? defaultModel),
         "post_processor": \(postProcessor), "decoder": \(decoder)}
        """
    }

    /// Loads `json` and returns the error, checking that it names the file and contains every `words`.
    @discardableResult
    static func expectFailure(_ json: String, kind: TokenizerError.Kind, _ words: [String],
                              sourceLocation: SourceLocation = #_sourceLocation) -> TokenizerError? {
        let error = #expect(throws: TokenizerError.self, sourceLocation: sourceLocation) {
            try Tokenizer(data: Data(json.utf8), name: name)
        }
        guard let error else { return nil }
        #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
        #expect(error.description.hasPrefix(name), "\(error)", sourceLocation: sourceLocation)
        for word in words {
            #expect(error.description.contains(word), "'\(word)' not in: \(error)", sourceLocation: sourceLocation)
        }
        return error
    }

    @Test("the valid base file loads, so each failure below is due to its one change")
    func baseFileLoads() throws {
        let tokenizer = try Tokenizer(data: Data(Self.file().utf8), name: Self.name)
        #expect(try tokenizer.encode("ab") == [2])
        #expect(try tokenizer.encode("ba") == [1, 0])
    }

    @Test("malformed JSON", arguments: ["", "{", "{\"model\": ", "[1, 2", "{\"a\": tru}", "{\"a\": \"\\q\"}",
                                        "{\"a\": 1} extra", "{\"a\": \"\\ud800\"}"])
    func malformedJSON(text: String) {
        Self.expectFailure(text, kind: .malformed, ["invalid JSON"])
    }

    @Test("top level that is not an object")
    func notAnObject() {
        Self.expectFailure("[1, 2, 3]", kind: .malformed, ["object"])
    }

    @Test("a truncated fixture")
    func truncated() throws {
        let data = try Data(contentsOf: Fixtures.tokenizerURL(.llama2))
        let error = #expect(throws: TokenizerError.self) {
            try Tokenizer(data: data.prefix(data.count / 2), name: Self.name)
        }
        #expect(error?.kind == .malformed)
    }

    @Test("a file that does not exist")
    func missingFile() {
        let url = URL(fileURLWithPath: "/nonexistent/arbiter/tokenizer.json")
        let error = #expect(throws: TokenizerError.self) { try Tokenizer(url: url) }
        #expect(error?.kind == .unreadable)
        #expect(error?.description.contains("/nonexistent/arbiter/tokenizer.json") == true)
    }

    @Test("no model")
    func noModel() {
        Self.expectFailure(#"{"normalizer": null}"#, kind: .missing, ["model"])
    }

    @Test("unknown model type")
    func unknownModel() {
        Self.expectFailure(Self.file(model: #"{"type": "SuperBPE", "vocab": {}}"#), kind: .unsupported,
                           ["model type 'SuperBPE'"])
    }

    @Test("unsupported model types are named")
    func unsupportedModel() {
        Self.expectFailure(Self.file(model: #"{"type": "Unigram", "vocab": []}"#), kind: .unsupported, ["Unigram"])
    }

    @Test("unknown pre-tokenizer type, also inside a Sequence")
    func unknownPreTokenizer() {
        Self.expectFailure(Self.file(preTokenizer: #"{"type": "Bogus"}"#), kind: .unsupported,
                           ["pre-tokenizer type 'Bogus'"])
        Self.expectFailure(Self.file(preTokenizer: """
            {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "Nope"}]}
            """), kind: .unsupported, ["pre_tokenizer.pretokenizers[1]", "'Nope'"])
    }

    @Test("unknown normalizer, decoder and post-processor types")
    func unknownStages() {
        Self.expectFailure(Self.file(normalizer: #"{"type": "Uppercase"}"#), kind: .unsupported,
                           ["normalizer type 'Uppercase'"])
        Self.expectFailure(Self.file(decoder: #"{"type": "Telepathy"}"#), kind: .unsupported,
                           ["decoder type 'Telepathy'"])
        Self.expectFailure(Self.file(postProcessor: #"{"type": "Magic"}"#), kind: .unsupported,
                           ["post-processor type 'Magic'"])
        Self.expectFailure(Self.file(normalizer: #"{"type": "Precompiled", "precompiled_charsmap": ""}"#),
                           kind: .unsupported, ["Precompiled"])
    }

    @Test("a stage without its type")
    func stageWithoutType() {
        Self.expectFailure(Self.file(decoder: #"{"suffix": "</w>"}"#), kind: .missing, ["decoder", "type"])
    }

    @Test("missing vocab")
    func missingVocab() {
        Self.expectFailure(Self.file(model: #"{"type": "BPE", "merges": []}"#), kind: .missing, ["model", "vocab"])
        Self.expectFailure(Self.file(model: #"{"type": "WordLevel", "unk_token": "[UNK]"}"#), kind: .missing,
                           ["vocab"])
    }

    @Test("vocab of the wrong shape")
    func badVocab() {
        Self.expectFailure(Self.file(model: #"{"type": "BPE", "vocab": ["a", "b"], "merges": []}"#),
                           kind: .malformed, ["model.vocab", "object"])
        Self.expectFailure(Self.file(model: #"{"type": "BPE", "vocab": {"a": "zero"}, "merges": []}"#),
                           kind: .malformed, ["model.vocab.a"])
        Self.expectFailure(Self.file(model: #"{"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}"#),
                           kind: .inconsistent, ["id 0"])
    }

    @Test("merges naming unknown tokens, or producing one")
    func badMerges() {
        Self.expectFailure(Self.file(model: #"{"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}"#),
                           kind: .inconsistent, ["model.merges[0]", "'c'"])
        Self.expectFailure(Self.file(model: #"{"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["x", "b"]]}"#),
                           kind: .inconsistent, ["'x'"])
        Self.expectFailure(Self.file(model: #"{"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}"#),
                           kind: .inconsistent, ["'ab'"])
        Self.expectFailure(Self.file(model: #"{"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["ab"]}"#),
                           kind: .malformed, ["'ab'"])
        Self.expectFailure(Self.file(model: #"{"type": "BPE", "vocab": {"a": 0}, "merges": [["a"]]}"#),
                           kind: .malformed, ["two tokens"])
    }

    @Test("a regex that does not compile")
    func badRegex() {
        Self.expectFailure(Self.file(preTokenizer: """
            {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false}
            """), kind: .unsupported, ["(unclosed"])
    }

    @Test("an unknown split behavior or prepend scheme")
    func badOptions() {
        Self.expectFailure(Self.file(preTokenizer: """
            {"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways", "invert": false}
            """), kind: .unsupported, ["Sideways"])
        Self.expectFailure(Self.file(preTokenizer: """
            {"type": "Metaspace", "replacement": "_", "prepend_scheme": "sometimes", "split": true}
            """), kind: .unsupported, ["sometimes"])
    }

    @Test("an added token whose id disagrees with the vocabulary")
    func addedTokenIdConflict() {
        Self.expectFailure(Self.file(addedTokens: """
            [{"id": 7, "content": "ab", "single_word": false, "lstrip": false, "rstrip": false,
              "normalized": false, "special": true}]
            """), kind: .inconsistent, ["'ab'", "7"])
    }

    @Test("an added token with empty content names the file, the entry and the token id")
    func emptyAddedToken() {
        Self.expectFailure(Self.file(addedTokens: """
            [{"id": 3, "content": "<x>", "special": true}, {"id": 4, "content": "", "special": true}]
            """), kind: .malformed, ["added_tokens[1]", "added token id 4 has empty content"])
    }

    /// Nested quantifiers: exponential backtracking on a run of "a" that does not end in "b".
    static let catastrophic = #"(a+)+b"#
    static let runaway = String(repeating: "a", count: 40) + "!"

    @Test("a Split regex that backtracks catastrophically stops within its step budget, naming file and pattern",
          .timeLimit(.minutes(1)))
    func catastrophicSplit() throws {
        let tokenizer = try Tokenizer(data: Data(Self.file(preTokenizer: """
            {"type": "Split", "pattern": {"Regex": "\(Self.catastrophic)"}, "behavior": "Isolated", "invert": false}
            """).utf8), name: Self.name)
        #expect(try tokenizer.encode("ab") == [2])  // the pattern itself runs
        let error = #expect(throws: TokenizerError.self) { try tokenizer.encode(Self.runaway) }
        #expect(error?.kind == .unsupported && error?.description.hasPrefix(Self.name) == true)
        #expect(error?.description.contains("pre_tokenizer.pattern: regex /(a+)+b/ gave up on a 41-unit text") == true,
                "\(String(describing: error))")
        #expect(throws: TokenizerError.self) { try tokenizer.encodeWithOffsets(Self.runaway) }
    }

    @Test("the budget also covers Replace normalizers and decoders", .timeLimit(.minutes(1)))
    func catastrophicReplace() throws {
        let replace = #"{"type": "Replace", "pattern": {"Regex": "\#(Self.catastrophic)"}, "content": "b"}"#
        let normalizing = try Tokenizer(data: Data(Self.file(normalizer: replace).utf8), name: Self.name)
        let normalized = #expect(throws: TokenizerError.self) { try normalizing.encode(Self.runaway) }
        #expect(normalized?.description.contains("normalizer.pattern: regex") == true,
                "\(String(describing: normalized))")
        let model = #"{"type": "WordLevel", "vocab": {"\#(Self.runaway)": 0}, "unk_token": "\#(Self.runaway)"}"#
        let decoding = try Tokenizer(data: Data(Self.file(model: model, decoder: replace).utf8), name: Self.name)
        let decoded = #expect(throws: TokenizerError.self) { try decoding.decode([0]) }
        #expect(decoded?.description.contains("decoder.pattern: regex") == true, "\(String(describing: decoded))")
    }

    @Test("a search ICU gives up on (its backtracking stack is bounded) is an error, not the matches so far")
    func engineFailure() throws {
        let regex = try ICURegex("(a|b)*c", file: Self.name, context: "pre_tokenizer.pattern")
        #expect(try regex.matches(in: "xxabc").count == 1)
        let error = #expect(throws: TokenizerError.self) {
            try regex.matches(in: String(repeating: "ab", count: 2_000_000))
        }
        #expect(error?.description.contains("failed on a 4000000-unit text inside ICU") == true,
                "\(String(describing: error))")
    }

    @Test("well-behaved patterns stay within the budget on long texts: GPT-2's, and lookahead over long spaces")
    func longTexts() throws {
        let gpt2 = try ICURegex(ByteLevelPreTokenizer.gpt2Pattern, file: Self.name, context: "ByteLevel")
        let prose = String(repeating: "It's 12 o'clock; don't   panic!\n\tÇa va? 你好 ", count: 4000)
        #expect(try gpt2.matches(in: prose).count > 40000)
        #expect(try gpt2.matches(in: String(repeating: " ", count: 100_000) + "x").count == 2)
        let words = try ICURegex(#"\w+|[^\w\s]+"#, file: Self.name, context: "Whitespace")
        #expect(try words.matches(in: String(repeating: "word, ", count: 20000)).count == 40000)
    }

    @Test("a template naming an undeclared special token")
    func badTemplate() {
        Self.expectFailure(Self.file(postProcessor: """
            {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
             {"Sequence": {"id": "A", "type_id": 0}}], "pair": [], "special_tokens": {}}
            """), kind: .inconsistent, ["<s>"])
    }

    @Test("WordLevel without its unk token fails at encode time, naming the file")
    func wordLevelMissingUnk() throws {
        let tokenizer = try Tokenizer(data: Data(Self.file(model: """
            {"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "[UNK]"}
            """).utf8), name: Self.name)
        #expect(try tokenizer.encode("a") == [0])
        let error = #expect(throws: TokenizerError.self) { try tokenizer.encode("zzz") }
        #expect(error?.description.hasPrefix(Self.name) == true)
    }
}
