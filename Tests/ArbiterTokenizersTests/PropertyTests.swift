// Properties over seeded pseudo-random strings (the test target has no PropertyBased dependency): lossless
// tokenizers give back what they were given, and prompt spans stay consistent wherever the pieces are cut.
import ArbiterTensor
import Foundation
import Testing
@testable import ArbiterTokenizers

enum RandomText {
    /// Words and characters that stress tokenizers: spaces, newlines, tabs, accents (precomposed and combining),
    /// CJK, Arabic, emoji with ZWJ and skin tones, digits, punctuation, contractions.
    static let atoms: [String] = [
        " ", " ", "  ", "\n", "\t", "\r\n", "a", "the", "The", "image", "question", "context", "'s", "'ll", "n't",
        "0", "7", "42", "2024", "3.14", ".", ",", "!", "?", "-", "(", ")", "\"", "é", "e\u{301}", "ñ", "ü",
        "\u{308}", "東", "京", "日本語", "한", "مرحبا", "ب", "😀", "👍🏽", "👨‍👩‍👧", "🏳️‍🌈", "❤️", "\u{200b}",
        "\u{a0}", "\u{3000}", "Ⅻ", "ﬁ", "x²", "€", "→", "∑", "\u{0}", "\u{7f}",
    ]

    static func make(_ rng: inout SplitMix64, maxAtoms: Int = 16) -> String {
        let count = Int.random(in: 0...maxAtoms, using: &rng)
        return (0..<count).map { _ in atoms.randomElement(using: &rng) ?? "" }.joined()
    }
}

@Suite("Tokenizer properties")
struct TokenizerPropertyTests {
    @Test("byte-level and byte-fallback tokenizers round-trip any text", arguments: [Family.llama3, .llama2, .qwen2])
    func roundTrip(family: Family) throws {
        let tokenizer = try Fixtures.tokenizer(family)
        var rng = SplitMix64(seed: 0xA4B1_7E57)
        for _ in 0..<400 {
            let text = RandomText.make(&rng)
            let back = try tokenizer.decode(tokenizer.encode(text, addSpecialTokens: false))
            // Qwen2 normalizes to NFC first, so NFC(text) is what can come back.
            let expected = family == .qwen2 ? text.precomposedStringWithCanonicalMapping : text
            #expect(same(back, expected), "\"\(show(text))\" came back as \"\(show(back))\"")
            // Special tokens are dropped by skipSpecialTokens and only those.
            let withSpecial = try tokenizer.encode(text)
            #expect(same(try tokenizer.decode(withSpecial, skipSpecialTokens: true), expected))
        }
    }

    @Test("spans are consistent wherever a prompt is cut before a space, newline or added token",
          arguments: Family.allCases)
    func spansAtSafeCuts(family: Family) throws {
        let tokenizer = try Fixtures.tokenizer(family)
        var rng = SplitMix64(seed: 0x5EED_0000 + UInt64(family.rawValue.utf8.count))
        for _ in 0..<60 {
            // Pieces that start with a space, a newline or an added token, as the prompt builder makes them.
            let starts = [" ", "\n", "<image>", "<|im_start|>", "<|im_end|>\n"]
            let pieces = (0..<Int.random(in: 1...6, using: &rng)).map { i in
                (i == 0 ? "" : starts.randomElement(using: &rng) ?? " ")
                    + "Word" + RandomText.make(&rng, maxAtoms: 4).filter { !$0.isWhitespace } + "x"
            }
            let joined = pieces.joined()
            let (ids, spans) = try tokenizer.encode(pieces: pieces)
            #expect(ids == (try tokenizer.encode(joined)))
            var end = try #require(spans.first).lowerBound
            for (piece, span) in zip(pieces, spans) {
                #expect(span.lowerBound == end)
                end = span.upperBound
                // Encoding the piece's text where it stands gives the span's ids when it follows an added token
                // or starts the text; elsewhere context (a prefix space, ▁) may differ, so only check the bound.
                #expect(!span.isEmpty, "piece \"\(show(piece))\" got no tokens")
            }
            #expect(end - spans[0].lowerBound == (try tokenizer.encode(joined, addSpecialTokens: false)).count)
        }
    }
}
