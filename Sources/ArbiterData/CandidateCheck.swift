// Candidate lists scored by their first token: the two modalities' lists must not share a first token, or the
// binary image-vs-text probability cannot tell them apart.
import ArbiterTokenizers
import Foundation

extension ConflictSet {
    /// The first token id of `candidate` that carries text (encoded without special tokens; with `leadingSpace`,
    /// as " candidate", the form an answer takes after "The answer is"). Leading tokens that decode to
    /// whitespace only (a lone SentencePiece "▁" when the word itself is not in the vocabulary) are passed over:
    /// they say nothing about which answer is coming.
    public static func firstToken(of candidate: String, tokenizer: Tokenizer, leadingSpace: Bool) throws -> Int? {
        let ids = try tokenizer.encode(leadingSpace ? " " + candidate : candidate, addSpecialTokens: false)
        for id in ids {
            let text = try tokenizer.decode([id])
            if !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return id }
        }
        return ids.first
    }

    /// Checks every item's candidate lists against `tokenizer`: an item whose image and text candidates share
    /// a first token is a problem (thrown, or skipped with `options.skipBadItems`; the returned set lists it).
    /// Items whose two answers are the same on purpose (`consistent`) are not checked.
    public func validateCandidates(tokenizer: Tokenizer, leadingSpace: Bool = false,
                                   options: LoadOptions = .init()) throws -> ConflictSet {
        var collector = ProblemCollector(file: source, options: options)
        collector.skipped = skipped
        collector.warnings = warnings
        var kept: [ConflictItem] = []
        for (index, item) in items.enumerated() {
            func first(_ list: [String]) throws -> [Int: String] {
                var out: [Int: String] = [:]
                for c in list {
                    if let id = try Self.firstToken(of: c, tokenizer: tokenizer, leadingSpace: leadingSpace),
                       out[id] == nil {
                        out[id] = c
                    }
                }
                return out
            }
            if item.kind == .consistent || ConflictItem.sameAnswer(item.answerImg, item.answerText) {
                kept.append(item)
                continue
            }
            do {
                let image = try first(item.answerImgCandidates), text = try first(item.answerTextCandidates)
                if let shared = image.keys.sorted().first(where: { text[$0] != nil }) {
                    let token = tokenizer.token(of: shared) ?? "?"
                    try collector.report(DatasetProblem(
                        id: item.id, index: index, kind: .candidateCollision,
                        problem: "image candidate '\(image[shared]!)' and text candidate '\(text[shared]!)' both start "
                                 + "with token \(shared) ('\(token)') of \(tokenizer.name)"))
                    continue
                }
            } catch let error as DatasetError {
                throw error
            } catch {
                try collector.report(DatasetProblem(id: item.id, index: index, kind: .invalidValue,
                                                    problem: "a candidate cannot be tokenized: \(error)"))
                continue
            }
            kept.append(item)
        }
        return ConflictSet(source: source, items: kept, imageRoot: imageRoot, skipped: collector.skipped,
                           warnings: collector.warnings)
    }
}
