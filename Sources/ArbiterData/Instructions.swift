// Modality instructions (our own wording, not the paper's) and output-format sentences ("constraints").
// Each instruction paraphrase has a stable id and a split: `heldout` paraphrases are kept out of anything
// fitted on the data (probes, head selection) so results can be checked on unseen wording.

/// Which modality an instruction tells the model to follow.
public enum ConflictTarget: String, Codable, Sendable, CaseIterable {
    case image, text
}

public enum InstructionSplit: String, Codable, Sendable, CaseIterable {
    case train, heldout
}

public struct InstructionParaphrase: Sendable, Equatable, Codable {
    public let id: String
    public let target: ConflictTarget
    public let split: InstructionSplit
    public let text: String
}

public enum Instructions {
    private static func make(_ prefix: String, _ target: ConflictTarget, _ texts: [String], heldout: Int)
        -> [InstructionParaphrase] {
        texts.enumerated().map { i, text in
            let number = i + 1 < 10 ? "0\(i + 1)" : "\(i + 1)"
            return InstructionParaphrase(id: "\(prefix)-\(number)", target: target,
                                         split: i >= texts.count - heldout ? .heldout : .train, text: text)
        }
    }

    /// Follow-image paraphrases: ids `img-01` … `img-13`; the last three are held out.
    public static let followImage: [InstructionParaphrase] = make("img", .image, [
        "Rely on the image, not the text, when they disagree.",
        "If the text context and the picture conflict, answer according to the picture.",
        "Base your answer on what the image shows, even if the text context says otherwise.",
        "Do not rely on the text context; use the image content instead.",
        "Ignore the text context and trust the visual evidence.",
        "When the two sources disagree, the image is the one to believe.",
        "The picture is authoritative: answer from it rather than from the written context.",
        "Never let the text context override what you see in the image.",
        "Look at the image and answer from it; the text context may be wrong.",
        "Visual content takes priority over the text context in case of a mismatch.",
        "Should the description contradict the picture, go with the picture.",
        "Disregard the written description and answer based on the image alone.",
        "Your answer must reflect the image, whatever the text context claims.",
    ], heldout: 3)

    /// Follow-text paraphrases: ids `txt-01` … `txt-13`; the last three are held out.
    public static let followText: [InstructionParaphrase] = make("txt", .text, [
        "Trust the text context over the picture.",
        "If the text context and the picture conflict, answer according to the text context.",
        "Base your answer on what the text context says, even if the image shows otherwise.",
        "Do not rely on the picture; use the text context instead.",
        "Ignore the image and trust the written description.",
        "When the two sources disagree, the text context is the one to believe.",
        "The text context is authoritative: answer from it rather than from the picture.",
        "Never let the image override what the text context states.",
        "Read the text context and answer from it; the image may be misleading.",
        "The text context takes priority over visual content in case of a mismatch.",
        "Should the picture contradict the description, go with the description.",
        "Disregard the image and answer based on the text context alone.",
        "Your answer must reflect the text context, whatever the image appears to show.",
    ], heldout: 3)

    public static var all: [InstructionParaphrase] { followImage + followText }

    public static func paraphrases(for target: ConflictTarget) -> [InstructionParaphrase] {
        target == .image ? followImage : followText
    }

    public static func paraphrases(for target: ConflictTarget, split: InstructionSplit) -> [InstructionParaphrase] {
        paraphrases(for: target).filter { $0.split == split }
    }

    public static func paraphrase(id: String) -> InstructionParaphrase? { all.first { $0.id == id } }

    /// Output-format sentences (the paper's "constraint"). No trailing space: a trailing space becomes a token
    /// of its own in most tokenizers and moves the last position off the sentence.
    public static let constraints: [String] = [
        "Answer the question using a single word or phrase. The answer is",
        "Answer the question using a single word or phrase.",
        "Reply with one word. The answer is",
        "Give a short answer. The answer is",
    ]
}
