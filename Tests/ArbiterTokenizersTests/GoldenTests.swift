// Ids and decodings compared exactly with Python `tokenizers` (fixtures from Tools/tokenizer_goldens.py).
import Foundation
import Testing
@testable import ArbiterTokenizers

@Suite("Tokenizer goldens")
struct TokenizerGoldenTests {
    @Test("ids equal tokenizers' ids, with and without special tokens", arguments: Family.allCases)
    func ids(family: Family) throws {
        let tokenizer = try Fixtures.tokenizer(family)
        let goldens = try Fixtures.goldens(family)
        #expect(goldens.cases.count >= 200)
        var failures: [String] = []
        for c in goldens.cases {
            let withSpecial = try tokenizer.encode(c.text)
            let without = try tokenizer.encode(c.text, addSpecialTokens: false)
            if withSpecial != c.ids {
                failures.append("\"\(show(c.text))\": \(withSpecial) != expected \(c.ids)")
            }
            if without != c.ids_no_special {
                failures.append("\"\(show(c.text))\" (no special): \(without) != expected \(c.ids_no_special)")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) mismatches, first: \(failures.prefix(5).joined(separator: "\n"))")
    }

    @Test("decoding equals tokenizers' decoding", arguments: Family.allCases)
    func decoding(family: Family) throws {
        let tokenizer = try Fixtures.tokenizer(family)
        let goldens = try Fixtures.goldens(family)
        var failures: [String] = []
        for c in goldens.cases {
            let checks: [(String, String, String)] = [
                ("decode(ids)", try tokenizer.decode(c.ids), c.decoded),
                ("decode(ids, skip)", try tokenizer.decode(c.ids, skipSpecialTokens: true), c.decoded_skip_special),
                ("decode(ids_no_special)", try tokenizer.decode(c.ids_no_special), c.decoded_no_special),
            ]
            for (what, got, expected) in checks where !same(got, expected) {
                failures.append("\"\(show(c.text))\" \(what): \"\(show(got))\" != expected \"\(show(expected))\"")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) mismatches, first: \(failures.prefix(5).joined(separator: "\n"))")
    }

    @Test("decode(encode(s)) == s wherever tokenizers round-trips", arguments: Family.allCases)
    func roundTrip(family: Family) throws {
        let tokenizer = try Fixtures.tokenizer(family)
        let goldens = try Fixtures.goldens(family)
        let roundTripping = goldens.cases.filter { same($0.decoded_no_special, $0.text) }
        if family.isLossless { #expect(roundTripping.count * 10 >= goldens.cases.count * 8) }
        for c in roundTripping {
            let back = try tokenizer.decode(tokenizer.encode(c.text, addSpecialTokens: false))
            #expect(same(back, c.text), "\"\(show(c.text))\" came back as \"\(show(back))\"")
        }
    }

    @Test("vocabulary size and token lookups agree with the file", arguments: Family.allCases)
    func vocabulary(family: Family) throws {
        let tokenizer = try Fixtures.tokenizer(family)
        let goldens = try Fixtures.goldens(family)
        #expect(tokenizer.vocabularySize == goldens.vocab_size)
        for id in 0..<tokenizer.vocabularySize {
            let token = try #require(tokenizer.token(of: id), "id \(id) has no token")
            #expect(tokenizer.id(of: token) == id, "token '\(show(token))'")
        }
        #expect(tokenizer.token(of: tokenizer.vocabularySize) == nil)
        #expect(tokenizer.id(of: "<image>") != nil)
        #expect(tokenizer.isSpecial(try #require(tokenizer.id(of: "<|im_start|>"))))
    }

    @Test("unknown ids fail to decode with an error naming the file", arguments: [Family.qwen2, .llama2])
    func unknownId(family: Family) throws {
        let tokenizer = try Fixtures.tokenizer(family)
        let error = #expect(throws: TokenizerError.self) { try tokenizer.decode([0, tokenizer.vocabularySize + 5]) }
        #expect(error?.description.contains("\(family.rawValue).tokenizer.json") == true)
    }
}
