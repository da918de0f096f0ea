// BPE model (tokenizers/src/models/bpe/model.rs and word.rs): characters (or byte-fallback tokens) merged by
// a priority queue of merge ranks, lowest rank first and leftmost first among equal ranks, with a word cache.
import Foundation

struct BPEModel: TokenizerModel {
    let vocabulary: Vocabulary
    /// (left id, right id) packed into one Int → (rank, merged id).
    let merges: [Int: (rank: Int, id: Int)]
    let unkToken: String?
    var unknownTokenID: Int? { unkId }
    let unkId: Int?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    let continuingSubwordPrefix: String?
    let endOfWordSuffix: String?
    /// The ids of `<0x00>` … `<0xFF>` where present (byte fallback).
    let byteIds: [Int?]
    let cache = WordCache()
    let file: String

    init(_ node: JSONNode) throws {
        file = node.file
        vocabulary = try Vocabulary(node.require("vocab"))
        unkToken = try node.optionalString("unk_token")
        fuseUnk = try node.bool("fuse_unk", default: false)
        byteFallback = try node.bool("byte_fallback", default: false)
        ignoreMerges = try node.bool("ignore_merges", default: false)
        continuingSubwordPrefix = try node.optionalString("continuing_subword_prefix")
        endOfWordSuffix = try node.optionalString("end_of_word_suffix")
        if let dropout = try node.optional("dropout"), try dropout.double() != 0 {
            throw dropout.error(.unsupported, "BPE dropout is random; only null or 0 is supported")
        }
        if let unk = unkToken {
            // Like tokenizers, a missing unk token only fails when it is needed; remember its id if present.
            unkId = vocabulary[unk]
        } else {
            unkId = nil
        }
        byteIds = (0..<256).map { [vocabulary] b in vocabulary[Self.byteToken(UInt8(b))] }

        var merges: [Int: (rank: Int, id: Int)] = [:]
        let mergeNodes = try node.require("merges").array()
        merges.reserveCapacity(mergeNodes.count)
        let prefixLength = continuingSubwordPrefix.map { $0.unicodeScalars.count } ?? 0
        for (rank, mergeNode) in mergeNodes.enumerated() {
            let (left, right) = try Self.parseMerge(mergeNode)
            guard let leftId = vocabulary[left] else {
                throw mergeNode.error(.inconsistent, "merge names '\(left)', which is not in the vocabulary")
            }
            guard let rightId = vocabulary[right] else {
                throw mergeNode.error(.inconsistent, "merge names '\(right)', which is not in the vocabulary")
            }
            var rightPart = right
            if let prefix = continuingSubwordPrefix, right.exactlyStarts(with: prefix) {
                rightPart = String(scalars: right.unicodeScalars.dropFirst(prefixLength))
            }
            let merged = left + rightPart
            guard let mergedId = vocabulary[merged] else {
                throw mergeNode.error(.inconsistent, "merge result '\(merged)' is not in the vocabulary")
            }
            merges[Self.pairKey(leftId, rightId)] = (rank, mergedId)  // later duplicates win, as in tokenizers
        }
        self.merges = merges
    }

    /// A merge is "a b" (older files) or ["a", "b"] (tokenizers ≥ 0.20).
    private static func parseMerge(_ node: JSONNode) throws -> (String, String) {
        if case .string(let line) = node.value {
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw node.error(.malformed, "merge '\(line)' is not two tokens separated by one space")
            }
            return (String(parts[0]), String(parts[1]))
        }
        let pair = try node.array()
        guard pair.count == 2 else { throw node.error(.malformed, "a merge pair must have two tokens") }
        return (try pair[0].string(), try pair[1].string())
    }

    /// The byte-fallback token of a byte: `<0x0A>`.
    static func byteToken(_ byte: UInt8) -> String {
        let hex = String(byte, radix: 16, uppercase: true)
        return "<0x\(hex.count == 1 ? "0" + hex : hex)>"
    }

    @inline(__always)
    static func pairKey(_ a: Int, _ b: Int) -> Int { (a << 32) | b }

    func id(of token: String) -> Int? { vocabulary[token] }
    func token(of id: Int) -> String? { vocabulary.tokens[id] }
    var vocabularySize: Int { vocabulary.size }

    func tokenize(_ word: String) throws -> [Int] {
        if word.isEmpty { return [] }
        if ignoreMerges, let id = vocabulary[word] { return [id] }
        if let cached = cache.get(word) { return cached }
        let ids = try mergeWord(word).map(\.id)
        cache.set(word, ids)
        return ids
    }

    func tokenizeWithSpans(_ word: String) throws -> [(id: Int, span: Range<Int>)] {
        if word.isEmpty { return [] }
        if ignoreMerges, let id = vocabulary[word] { return [(id, 0..<word.unicodeScalars.count)] }
        return try mergeWord(word)
    }

    /// The initial symbols of a word: characters in the vocabulary, byte-fallback tokens, or (fused) unk.
    private func initialSymbols(_ word: String) throws -> [(id: Int, span: Range<Int>)] {
        var symbols: [(id: Int, span: Range<Int>)] = []
        var pendingUnk: Range<Int>? = nil
        let scalars = Array(word.unicodeScalars)
        for (i, scalar) in scalars.enumerated() {
            var piece = String(scalar)
            if i > 0, let prefix = continuingSubwordPrefix { piece = prefix + piece }
            if i == scalars.count - 1, let suffix = endOfWordSuffix { piece += suffix }
            if let id = vocabulary[piece] {
                if let pending = pendingUnk, let unk = unkId { symbols.append((unk, pending)) }
                pendingUnk = nil
                symbols.append((id, i..<i + 1))
                continue
            }
            if byteFallback {
                let bytes = Array(piece.utf8)
                let ids = bytes.compactMap { byteIds[Int($0)] }
                if ids.count == bytes.count {
                    // tokenizers leaves a pending unk where it is, to be flushed after these bytes.
                    symbols.append(contentsOf: ids.map { ($0, i..<i + 1) })
                    continue
                }
            }
            if let unk = unkToken {
                guard let unkId else {
                    throw TokenizerError(.missing, file: file, "BPE: unk token '\(unk)' is not in the vocabulary")
                }
                if let pending = pendingUnk {
                    if fuseUnk {
                        pendingUnk = pending.lowerBound..<i + 1
                        continue
                    }
                    symbols.append((unkId, pending))
                }
                pendingUnk = i..<i + 1
            }
            // Without an unk token, tokenizers drops the character.
        }
        if let pending = pendingUnk, let unk = unkId { symbols.append((unk, pending)) }
        return symbols
    }

    private struct Symbol {
        var id: Int
        var span: Range<Int>
        var prev: Int
        var next: Int
        var removed = false
    }

    private struct Candidate {
        let rank: Int
        let position: Int
        let newId: Int
    }

    private func mergeWord(_ word: String) throws -> [(id: Int, span: Range<Int>)] {
        let initial = try initialSymbols(word)
        if initial.count < 2 { return initial }
        var symbols = initial.enumerated().map { i, symbol in
            Symbol(id: symbol.id, span: symbol.span, prev: i - 1, next: i + 1 < initial.count ? i + 1 : -1)
        }
        var queue = MinHeap<Candidate> { a, b in a.rank != b.rank ? a.rank < b.rank : a.position < b.position }
        for i in 0..<(symbols.count - 1) {
            if let m = merges[Self.pairKey(symbols[i].id, symbols[i + 1].id)] {
                queue.push(Candidate(rank: m.rank, position: i, newId: m.id))
            }
        }
        while let top = queue.pop() {
            let current = symbols[top.position]
            if current.removed || current.next == -1 { continue }
            let nextPosition = current.next
            let right = symbols[nextPosition]
            // Skip stale entries: the pair at this position changed since it was queued.
            guard let m = merges[Self.pairKey(current.id, right.id)], m.id == top.newId else { continue }
            symbols[top.position].id = top.newId
            symbols[top.position].span = current.span.lowerBound..<right.span.upperBound
            symbols[top.position].next = right.next
            symbols[nextPosition].removed = true
            if right.next != -1 { symbols[right.next].prev = top.position }
            let merged = symbols[top.position]
            if merged.prev >= 0, let m = merges[Self.pairKey(symbols[merged.prev].id, merged.id)] {
                queue.push(Candidate(rank: m.rank, position: merged.prev, newId: m.id))
            }
            if merged.next != -1, let m = merges[Self.pairKey(merged.id, symbols[merged.next].id)] {
                queue.push(Candidate(rank: m.rank, position: top.position, newId: m.id))
            }
        }
        return symbols.filter { !$0.removed }.map { ($0.id, $0.span) }
    }
}
