// Token offsets: the same pipeline as `Tokenizer.encode`, with every scalar of every intermediate text carrying
// the range of original scalars it came from (as tokenizers' NormalizedString alignments do), so each token
// gets the range of the input it covers. Stages whose alignment is not tracked make `encodeWithOffsets` throw.
import Foundation

/// Text whose every scalar knows which scalars of the original input it stands for.
struct AlignedText {
    var scalars: [Unicode.Scalar]
    var origins: [Range<Int>]

    init(scalars: [Unicode.Scalar], origins: [Range<Int>]) {
        self.scalars = scalars
        self.origins = origins
    }

    /// `text`, whose first scalar is scalar `start` of the input.
    init(_ text: String, start: Int) {
        scalars = Array(text.unicodeScalars)
        origins = (0..<scalars.count).map { start + $0..<start + $0 + 1 }
    }

    var string: String { String(scalars: scalars) }
    var isEmpty: Bool { scalars.isEmpty }

    func slice(_ range: Range<Int>) -> AlignedText {
        AlignedText(scalars: Array(scalars[range]), origins: Array(origins[range]))
    }

    /// The input range covered by the scalars in `range`.
    func origin(of range: Range<Int>) -> Range<Int> {
        guard !range.isEmpty else { return 0..<0 }
        let covered = origins[range]
        let lower = covered.map(\.lowerBound).min() ?? 0
        let upper = covered.map(\.upperBound).max() ?? 0
        return lower..<upper
    }

    /// Scalar offsets of ordered String indices of `string` (as returned by split and match functions).
    static func offsets(of ranges: [Range<String.Index>], in text: String) -> [Range<Int>] {
        let view = text.unicodeScalars
        var index = view.startIndex
        var offset = 0
        func advance(to target: String.Index) -> Int {
            if target < index {
                index = view.startIndex
                offset = 0
            }
            while index < target {
                index = view.index(after: index)
                offset += 1
            }
            return offset
        }
        return ranges.map { range in
            let lower = advance(to: range.lowerBound)
            return lower..<advance(to: range.upperBound)
        }
    }

    /// Prepends `prefix`, aligned with the first scalar (as `NormalizedString::prepend` does).
    func prepending(_ prefix: [Unicode.Scalar]) -> AlignedText {
        guard let first = origins.first else { return self }
        return AlignedText(scalars: prefix + scalars, origins: Array(repeating: first, count: prefix.count) + origins)
    }
}

extension Tokenizer {
    /// The ids of `text` with, for each, the range of `text` it covers (ranges index `text.unicodeScalars`).
    ///
    /// The ids are exactly `encode(text, addSpecialTokens:)`, and the ranges those of tokenizers'
    /// `Encoding.offsets` (checked on every golden family). Special tokens added by the post-processor get an
    /// empty range at the start (or end) of the text. Tokens holding part of a character (byte-level and
    /// byte-fallback pieces) get that whole character's range, so neighbouring ranges may overlap; a character
    /// composed by NFC covers the first input character it absorbed (as in tokenizers); prepended "▁" or " "
    /// belong to the first character of their piece; ByteLevel `trim_offsets` drops spaces from the ranges.
    /// Throws `unsupported` for stages whose alignment is not tracked (BertNormalizer, ByteLevel normalizer).
    public func encodeWithOffsets(_ text: String, addSpecialTokens: Bool = true) throws
        -> [(id: Int, range: Range<String.Index>)] {
        let scalarOffsets = try encodeWithScalarOffsets(text, addSpecialTokens: addSpecialTokens)
        let indices = Array(text.unicodeScalars.indices) + [text.unicodeScalars.endIndex]
        return scalarOffsets.map { ($0.id, indices[$0.range.lowerBound]..<indices[$0.range.upperBound]) }
    }

    /// `encodeWithOffsets` with offsets counted in Unicode scalars (Python `tokenizers`' `Encoding.offsets`).
    public func encodeWithScalarOffsets(_ text: String, addSpecialTokens: Bool = true) throws
        -> [(id: Int, range: Range<Int>)] {
        var result: [(id: Int, range: Range<Int>)] = []
        var tokens: [String] = []  // as in tokenizers' Encoding: an added token's matched text, with stripped spaces
        let input = AlignedText(text, start: 0)
        for segment in splitAligned(input, matcher: rawMatcher, atStart: true) {
            if let id = segment.addedId {
                result.append((id, segment.text.origin(of: 0..<segment.text.scalars.count)))
                tokens.append(segment.text.string)
                continue
            }
            var normalized = segment.text
            if let normalizer { normalized = try Self.alignedNormalize(normalizer, normalized, file: name) }
            if normalized.isEmpty { continue }
            for piece in splitAligned(normalized, matcher: normalizedMatcher, atStart: segment.atStart) {
                if let id = piece.addedId {
                    result.append((id, piece.text.origin(of: 0..<piece.text.scalars.count)))
                    tokens.append(piece.text.string)
                    continue
                }
                var words = [(text: piece.text, atStart: piece.atStart)]
                if let preTokenizer { words = try Self.alignedPreTokenize(preTokenizer, words, file: name) }
                for word in words where !word.text.isEmpty {
                    for token in try model.tokenizeWithSpans(word.text.string) {
                        result.append((token.id, word.text.origin(of: token.span)))
                        tokens.append(self.token(of: token.id) ?? "")
                    }
                }
            }
        }
        guard let postProcessor else { return result }
        let adjusted = postProcessor.processOffsets(tokens: tokens, offsets: result.map(\.range))
        result = zip(result, adjusted).map { ($0.id, $1) }
        guard addSpecialTokens else { return result }
        let (ids, start) = postProcessor.process(result.map(\.id))
        let end = text.unicodeScalars.count
        return ids.enumerated().map { i, id in
            if i < start { return (id, 0..<0) }
            if i >= start + result.count { return (id, end..<end) }
            return (id, result[i - start].range)
        }
    }

    private struct AlignedSegment {
        var text: AlignedText
        var addedId: Int?
        var atStart: Bool
    }

    /// `AddedTokenMatcher.split` on aligned text.
    private func splitAligned(_ text: AlignedText, matcher: AddedTokenMatcher, atStart: Bool) -> [AlignedSegment] {
        let segments = matcher.split(TextSegment(text: text.string, addedId: nil, atStart: atStart))
        var out: [AlignedSegment] = []
        var position = 0
        for segment in segments {
            // The matcher returns consecutive slices covering its whole input.
            let count = segment.text.unicodeScalars.count
            out.append(AlignedSegment(text: text.slice(position..<position + count), addedId: segment.addedId,
                                      atStart: segment.atStart))
            position += count
        }
        return out.filter { !$0.text.isEmpty }
    }

    static func alignedNormalize(_ normalizer: any Normalizer, _ text: AlignedText, file: String) throws
        -> AlignedText {
        switch normalizer {
        case let sequence as SequenceNormalizer:
            return try sequence.normalizers.reduce(text) { try alignedNormalize($1, $0, file: file) }
        case let unicode as UnicodeNormalizer:
            return alignedUnicodeNormalize(unicode, text)
        case is LowercaseNormalizer:
            var out = AlignedText(scalars: [], origins: [])
            for (scalar, origin) in zip(text.scalars, text.origins) {
                let lowered = Array(LowercaseNormalizer().normalize(String(scalar)).unicodeScalars)
                out.scalars += lowered
                out.origins += Array(repeating: origin, count: lowered.count)
            }
            return out
        case let strip as StripNormalizer:
            var lower = 0, upper = text.scalars.count
            if strip.left { while lower < upper, CharClass.isWhitespace(text.scalars[lower]) { lower += 1 } }
            if strip.right { while upper > lower, CharClass.isWhitespace(text.scalars[upper - 1]) { upper -= 1 } }
            return text.slice(lower..<upper)
        case is StripAccentsNormalizer:
            let kept = text.scalars.indices.filter { !CharClass.isCombiningMark(text.scalars[$0]) }
            return AlignedText(scalars: kept.map { text.scalars[$0] }, origins: kept.map { text.origins[$0] })
        case let prepend as PrependNormalizer:
            return text.prepending(Array(prepend.prefix.unicodeScalars))
        case let replace as ReplaceNormalizer:
            return try replaced(text, pattern: replace.pattern, content: Array(replace.content.unicodeScalars))
        default:
            throw TokenizerError(.unsupported, file: file, "offsets through the normalizer \(type(of: normalizer)) "
                + "are not tracked; use encode(pieces:) for spans")
        }
    }

    /// NFC/NFD/NFKC/NFKD with tokenizers' alignments: a character that did not change keeps its own range; a
    /// composed character takes the range of the first character it absorbed; characters produced by
    /// decomposition take the range of the character they came from. Done per grapheme cluster, checked against
    /// normalizing the whole text (if they differ, every output character covers the whole text).
    static func alignedUnicodeNormalize(_ unicode: UnicodeNormalizer, _ text: AlignedText) -> AlignedText {
        let whole = Array(unicode.normalize(text.string).unicodeScalars)
        let decompose: (String) -> String = switch unicode.form {
        case .nfc, .nfd: { $0.decomposedStringWithCanonicalMapping }
        case .nfkc, .nfkd: { $0.decomposedStringWithCompatibilityMapping }
        }
        var out = AlignedText(scalars: [], origins: [])
        var position = 0
        for character in text.string {
            let count = character.unicodeScalars.count
            let input = Array(character.unicodeScalars)
            let origins = Array(text.origins[position..<position + count])
            position += count
            let output = Array(unicode.normalize(String(character)).unicodeScalars)
            if output == input {
                out.scalars += input
                out.origins += origins
                continue
            }
            // The decomposed stream, each scalar tagged with the input scalar it comes from.
            var stream: [(scalar: Unicode.Scalar, source: Int)] = []
            for (k, scalar) in input.enumerated() {
                stream += decompose(String(scalar)).unicodeScalars.map { ($0, k) }
            }
            var pointer = 0
            var consumed = -1  // the last input scalar consumed
            var aligned: [Range<Int>] = []
            for o in output {
                let pieces = Array(decompose(String(o)).unicodeScalars)
                guard pointer + pieces.count <= stream.count,
                      stream[pointer..<pointer + pieces.count].map(\.scalar) == pieces else {
                    aligned = []  // reordered or discontiguous composition: give up on this character
                    break
                }
                let lastSource = stream[pointer + pieces.count - 1].source
                if lastSource > consumed {
                    aligned.append(origins[consumed + 1])
                    consumed = lastSource
                } else {
                    aligned.append(origins[max(consumed, 0)])
                }
                pointer += pieces.count
            }
            if aligned.count != output.count {
                let all = text.origin(of: position - count..<position)
                aligned = Array(repeating: all, count: output.count)
            }
            out.scalars += output
            out.origins += aligned
        }
        if !out.scalars.elementsEqual(whole) {
            let all = text.origin(of: 0..<text.scalars.count)
            return AlignedText(scalars: whole, origins: Array(repeating: all, count: whole.count))
        }
        return out
    }

    /// Every match of `pattern` replaced by `content`, the replacement covering what the match covered.
    static func replaced(_ text: AlignedText, pattern: TextPattern, content: [Unicode.Scalar]) throws -> AlignedText {
        let string = text.string
        let pieces = try pattern.findMatches(string)
        let ranges = AlignedText.offsets(of: pieces.map(\.range), in: string)
        var out = AlignedText(scalars: [], origins: [])
        for (piece, range) in zip(pieces, ranges) {
            if piece.isMatch, !range.isEmpty {
                out.scalars += content
                out.origins += Array(repeating: text.origin(of: range), count: content.count)
            } else {
                out.scalars += text.scalars[range]
                out.origins += text.origins[range]
            }
        }
        return out
    }

    static func alignedPreTokenize(_ preTokenizer: any PreTokenizer, _ pieces: [(text: AlignedText, atStart: Bool)],
                                   file: String) throws -> [(text: AlignedText, atStart: Bool)] {
        func splitEach(_ transform: (AlignedText, Bool) throws -> [AlignedText]) throws
            -> [(text: AlignedText, atStart: Bool)] {
            var out: [(text: AlignedText, atStart: Bool)] = []
            for piece in pieces where !piece.text.isEmpty {
                for (i, part) in try transform(piece.text, piece.atStart).enumerated() where !part.isEmpty {
                    out.append((part, piece.atStart && i == 0))
                }
            }
            return out
        }
        func splitting(_ text: AlignedText, _ pattern: TextPattern, _ behavior: SplitBehavior,
                       invert: Bool = false) throws -> [AlignedText] {
            let string = text.string
            let ranges = try splitRanges(string, on: pattern, behavior: behavior, invert: invert)
            return AlignedText.offsets(of: ranges, in: string).map(text.slice)
        }
        switch preTokenizer {
        case let sequence as SequencePreTokenizer:
            return try sequence.preTokenizers.reduce(pieces) { try alignedPreTokenize($1, $0, file: file) }
        case let split as SplitPreTokenizer:
            return try splitEach { text, _ in
                try splitting(text, split.pattern, split.behavior, invert: split.invert)
            }
        case let chars as CharSplitPreTokenizer:
            return try splitEach { text, _ in try splitting(text, .predicate(chars.test), chars.behavior) }
        case let whitespace as WhitespacePreTokenizer:
            return try splitEach { text, _ in try splitting(text, whitespace.pattern, .removed, invert: true) }
        case let byteLevel as ByteLevelPreTokenizer:
            return try splitEach { text, _ in
                var text = text
                if byteLevel.addPrefixSpace, text.scalars.first != " " { text = text.prepending([" "]) }
                let words = try byteLevel.regex.map { try splitting(text, $0, .isolated) } ?? [text]
                return words.map { word in
                    var out = AlignedText(scalars: [], origins: [])
                    for (scalar, origin) in zip(word.scalars, word.origins) {
                        for byte in String(scalar).utf8 {
                            out.scalars.append(ByteLevelAlphabet.byteToScalar[Int(byte)])
                            out.origins.append(origin)
                        }
                    }
                    return out
                }
            }
        case let metaspace as MetaspacePreTokenizer:
            return try splitEach { text, atStart in
                var text = text
                text.scalars = text.scalars.map { $0 == " " ? metaspace.replacement : $0 }
                let startsWithReplacement = text.scalars.first == metaspace.replacement
                switch metaspace.prependScheme {
                case .always where !startsWithReplacement, .first where !startsWithReplacement && atStart:
                    text = text.prepending([metaspace.replacement])
                default:
                    break
                }
                guard metaspace.splitWords else { return [text] }
                return try splitting(text, .literal([metaspace.replacement]), .mergedWithNext)
            }
        default:
            throw TokenizerError(.unsupported, file: file, "offsets through the pre-tokenizer "
                + "\(type(of: preTokenizer)) are not tracked; use encode(pieces:) for spans")
        }
    }
}
