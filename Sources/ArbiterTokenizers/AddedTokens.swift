// Added tokens (tokenizers/src/tokenizer/added_vocabulary.rs): tokens matched in the text before anything else,
// leftmost-longest, with the single_word / lstrip / rstrip options. Tokens with `normalized: false` are matched
// in the raw text; those with `normalized: true` in each normalized piece between the first ones.
import Foundation

/// One entry of `added_tokens`.
public struct AddedToken: Sendable {
    public let id: Int
    public let content: String
    public let special: Bool
    public let singleWord: Bool
    public let lstrip: Bool
    public let rstrip: Bool
    public let normalized: Bool

    init(_ node: JSONNode) throws {
        id = try node.int("id")
        content = try node.string("content")
        special = try node.bool("special", default: false)
        singleWord = try node.bool("single_word", default: false)
        lstrip = try node.bool("lstrip", default: false)
        rstrip = try node.bool("rstrip", default: false)
        normalized = try node.bool("normalized", default: !special)
    }
}

/// A piece of the input after splitting on added tokens: either an added token's id, or text to encode.
struct TextSegment {
    var text: String
    var addedId: Int?
    /// The piece begins at offset 0 of the input.
    var atStart: Bool
}

/// Finds added tokens in text: leftmost match first, longest match among those starting there.
struct AddedTokenMatcher: Sendable {
    private struct Candidate: Sendable {
        let scalars: [Unicode.Scalar]
        let token: AddedToken
    }

    /// Candidates by first scalar, longest first.
    private let byFirstScalar: [Unicode.Scalar: [Candidate]]

    /// `patterns` pairs each token with the text to look for (its content, or its normalized content).
    init(_ patterns: [(pattern: String, token: AddedToken)]) {
        var table: [Unicode.Scalar: [Candidate]] = [:]
        for (pattern, token) in patterns {
            let scalars = Array(pattern.unicodeScalars)
            guard let first = scalars.first else { continue }
            table[first, default: []].append(Candidate(scalars: scalars, token: token))
        }
        byFirstScalar = table.mapValues { $0.sorted { $0.scalars.count > $1.scalars.count } }
    }

    var isEmpty: Bool { byFirstScalar.isEmpty }

    /// Splits one segment into added tokens and the text between them (`find_matches` + `split_with_indices`).
    func split(_ segment: TextSegment) -> [TextSegment] {
        guard !isEmpty, segment.addedId == nil else { return [segment] }
        let text = Array(segment.text.unicodeScalars)
        var out: [TextSegment] = []
        var startOffset = 0
        var i = 0
        while i < text.count {
            guard let candidates = byFirstScalar[text[i]],
                  let match = candidates.first(where: { c in
                      i + c.scalars.count <= text.count && text[i..<i + c.scalars.count].elementsEqual(c.scalars)
                  })
            else {
                i += 1
                continue
            }
            var start = i
            var stop = i + match.scalars.count
            i = stop  // the search resumes after this match whether or not it is kept
            let token = match.token
            if token.singleWord {
                let startSpace = start == 0 || !CharClass.isWord(text[start - 1])
                let stopSpace = stop == text.count || !CharClass.isWord(text[stop])
                if !startSpace || !stopSpace { continue }
            }
            if token.lstrip {
                var newStart = start
                while newStart > 0, CharClass.isWhitespace(text[newStart - 1]) { newStart -= 1 }
                start = max(newStart, startOffset)
            }
            if token.rstrip {
                while stop < text.count, CharClass.isWhitespace(text[stop]) { stop += 1 }
                i = stop
            }
            if startOffset < start {
                out.append(TextSegment(text: String(scalars: text[startOffset..<start]), addedId: nil,
                                       atStart: segment.atStart && startOffset == 0))
            }
            out.append(TextSegment(text: String(scalars: text[start..<stop]), addedId: token.id,
                                   atStart: segment.atStart && start == 0))
            startOffset = stop
        }
        if startOffset < text.count {
            out.append(TextSegment(text: String(scalars: text[startOffset...]), addedId: nil,
                                   atStart: segment.atStart && startOffset == 0))
        }
        return out
    }
}
