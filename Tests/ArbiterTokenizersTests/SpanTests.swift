// Token spans of prompts assembled from pieces (what the prompt builder needs for `image`, `context`, ...).
import Foundation
import Testing
@testable import ArbiterTokenizers

@Suite("Tokenizer spans")
struct TokenizerSpanTests {
    /// A LLaVA-style prompt cut where the prompt builder cuts it: every boundary before a space or newline,
    /// or at an added token.
    static let pieces = [
        "USER: ", "<image>", "\nContext: the red bicycle leans against a blue wall.",
        " Instruction: answer with one word.", " Question: what color is the bicycle?",
        " Constraint: no punctuation.", " ASSISTANT:",
    ]

    @Test("spans partition the ids of the joined prompt", arguments: Family.allCases)
    func spansPartition(family: Family) throws {
        let tokenizer = try Fixtures.tokenizer(family)
        for addSpecial in [true, false] {
            let (ids, spans) = try tokenizer.encode(pieces: Self.pieces, addSpecialTokens: addSpecial)
            #expect(ids == (try tokenizer.encode(Self.pieces.joined(), addSpecialTokens: addSpecial)))
            #expect(spans.count == Self.pieces.count)
            let raw = try tokenizer.encode(Self.pieces.joined(), addSpecialTokens: false)
            // Contiguous, covering exactly the sequence's own ids (special tokens stay outside every span).
            for (a, b) in zip(spans, spans.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
            let first = try #require(spans.first), last = try #require(spans.last)
            #expect(last.upperBound - first.lowerBound == raw.count)
            #expect(Array(ids[first.lowerBound..<last.upperBound]) == raw)
            // The image piece is the single <image> token.
            let imageId = try #require(tokenizer.id(of: "<image>"))
            #expect(Array(ids[spans[1]]) == [imageId])
        }
    }

    @Test("byte-level spans decode to exactly their pieces", arguments: [Family.qwen2, .llama3])
    func byteLevelSpansDecode(family: Family) throws {
        let tokenizer = try Fixtures.tokenizer(family)
        let (ids, spans) = try tokenizer.encode(pieces: Self.pieces)
        for (piece, span) in zip(Self.pieces, spans) {
            let text = try tokenizer.decode(Array(ids[span]))
            #expect(same(text, piece), "\"\(show(text))\" != \"\(show(piece))\"")
        }
    }

    @Test("SentencePiece spans: the first token of a piece after a space carries the ▁", arguments: [Family.llama2])
    func sentencePieceSpans(family: Family) throws {
        let tokenizer = try Fixtures.tokenizer(family)
        let (ids, spans) = try tokenizer.encode(pieces: Self.pieces)
        #expect(ids.first == tokenizer.id(of: "<s>"))
        #expect(spans[0].lowerBound == 1)
        let questionFirst = try #require(tokenizer.token(of: ids[spans[4].lowerBound]))
        #expect(questionFirst.unicodeScalars.first == "\u{2581}")
    }

    @Test("a boundary inside a token is refused, naming the file and the piece")
    func boundaryInsideToken() throws {
        let tokenizer = try Fixtures.tokenizer(.qwen2)
        #expect(try tokenizer.encode("the", addSpecialTokens: false).count == 1)
        let error = #expect(throws: TokenizerError.self) { try tokenizer.encode(pieces: ["th", "e"]) }
        #expect(error?.kind == .invalidInput)
        #expect(error?.description.contains("qwen2.tokenizer.json") == true)
        #expect(error?.description.contains("piece 0") == true)
    }

    @Test("empty pieces get empty spans")
    func emptyPieces() throws {
        let tokenizer = try Fixtures.tokenizer(.llama2)
        let (ids, spans) = try tokenizer.encode(pieces: ["", "Hello", "", " world", ""])
        #expect(ids == (try tokenizer.encode("Hello world")))
        #expect(spans[0].isEmpty && spans[2].isEmpty && spans[4].isEmpty)
        #expect(spans[1].lowerBound == 1 && spans[4].upperBound == ids.count)
    }
}

@Suite("Tokenizer performance")
struct TokenizerPerformanceTests {
    @Test("a long text encodes quickly and concurrently with identical results", arguments: [Family.qwen2, .llama2])
    func longText(family: Family) async throws {
        let tokenizer = try Fixtures.tokenizer(family)
        let goldens = try Fixtures.goldens(family)
        let text = String(repeating: goldens.cases.map(\.text).joined(separator: " "), count: 4)
        let clock = ContinuousClock()
        var reference: [Int] = []
        let elapsed = try clock.measure { reference = try tokenizer.encode(text) }
        #expect(reference.count > 10_000)
        // Debug builds are slow; this bounds pathological (quadratic) behavior, not speed.
        #expect(elapsed < .seconds(60), "encoding \(text.unicodeScalars.count) scalars took \(elapsed)")
        let results = try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 { group.addTask { try tokenizer.encode(text) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0 == reference })
    }
}
