// Modality-following ratio (MFR) per instruction target with bootstrap CIs, the share of third answers
// (the top token starts neither modality's answer), and general ability (consistent and unimodal accuracy);
// MFR per instruction paraphrase.
import ArbiterData

public struct ModalityFollowingResult: Sendable, Codable, Equatable {
    /// MFR per target ("image", "text") and "overall", over conflict samples.
    public var ratio: [String: Estimate]
    /// Follows / total per target.
    public var counts: [String: [Int]]
    /// Accuracy per other kind (consistent, image_only, text_only): expected answer set beats the others.
    public var accuracy: [String: Estimate]
    /// Mean following score s per target.
    public var meanScore: [String: Estimate]
    /// Share of conflict samples per target and "overall" whose top token over the whole vocabulary is the
    /// first token of no candidate answer of either modality (`ModalityFollowing.isThirdAnswer`).
    public var thirdAnswers: [String: Estimate]
    /// Third answers / total per target.
    public var thirdCounts: [String: [Int]]
    public var seed: UInt64
}

public enum ModalityFollowing {
    /// Whether the model's top answer is neither modality's: its top token over the whole vocabulary is no
    /// candidate's first token (tokens both sets share count as candidates': they may start either answer).
    /// The binary score s compares only the two sets, so it cannot show such answers.
    public static func isThirdAnswer(_ sample: AnalysisSample, _ score: FollowingScore) -> Bool {
        ![sample.instructed, sample.competitor, sample.shared].contains { $0.contains(score.top) }
    }

    /// MFR, third answers and accuracies from scored samples.
    public static func measure(_ samples: [AnalysisSample], scores: [FollowingScore],
                               seed: UInt64) -> ModalityFollowingResult {
        var ratio: [String: Estimate] = [:], counts: [String: [Int]] = [:], accuracy: [String: Estimate] = [:]
        var meanScore: [String: Estimate] = [:], thirdAnswers: [String: Estimate] = [:]
        var thirdCounts: [String: [Int]] = [:]
        let conflict = samples.indices.filter { samples[$0].kind == "conflict" && samples[$0].target != nil }
        for (offset, group) in [("image", conflict.filter { samples[$0].target == .image }),
                                ("text", conflict.filter { samples[$0].target == .text }),
                                ("overall", conflict)].enumerated() {
            let follows = group.1.map { scores[$0].follows ? 1.0 : 0.0 }
            ratio[group.0] = Estimate.bootstrap(follows, seed: seed &+ UInt64(offset))
            counts[group.0] = [Int(follows.reduce(0, +)), follows.count]
            meanScore[group.0] = Estimate.bootstrap(group.1.map { scores[$0].s }, seed: seed &+ UInt64(10 + offset))
            let third = group.1.map { isThirdAnswer(samples[$0], scores[$0]) ? 1.0 : 0.0 }
            thirdAnswers[group.0] = Estimate.bootstrap(third, seed: seed &+ UInt64(30 + offset))
            thirdCounts[group.0] = [Int(third.reduce(0, +)), third.count]
        }
        for (offset, kind) in ["consistent", "image_only", "text_only"].enumerated() {
            let group = samples.indices.filter { samples[$0].kind == kind }
            guard !group.isEmpty else { continue }
            accuracy[kind] = Estimate.bootstrap(group.map { scores[$0].follows ? 1.0 : 0.0 },
                                                seed: seed &+ UInt64(20 + offset))
        }
        return ModalityFollowingResult(ratio: ratio, counts: counts, accuracy: accuracy, meanScore: meanScore,
                                       thirdAnswers: thirdAnswers, thirdCounts: thirdCounts, seed: seed)
    }
}

/// The modality-following ratio of one instruction paraphrase.
public struct InstructionFollowing: Sendable, Codable, Equatable {
    /// The paraphrase id (`img-01`, …) and its split (`train`, `heldout`; nil when the item has none).
    public var id: String
    public var split: String?
    public var text: String
    public var target: String?
    public var follows: Int
    public var total: Int
    public var ratio: Double { Double(follows) / Double(total) }
}

extension ModalityFollowing {
    /// Follows / total per instruction paraphrase over the conflict samples, in paraphrase-id order (which
    /// wordings a model follows; held-out ones show whether it reads the instruction or keys on a word).
    /// `samples` are matched to `items` by id; conflict items that name no paraphrase are left out.
    public static func byInstruction(_ samples: [(id: String, kind: String, follows: Bool)],
                                     items: [ConflictItem]) -> [InstructionFollowing] {
        let byID = Dictionary(items.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var groups: [String: InstructionFollowing] = [:]
        for sample in samples where sample.kind == "conflict" {
            guard let item = byID[sample.id], let id = item.instructionID else { continue }
            var g = groups[id] ?? InstructionFollowing(id: id, split: item.instructionSplit?.rawValue,
                                                       text: item.instruction ?? "",
                                                       target: item.target?.rawValue, follows: 0, total: 0)
            g.total += 1
            if sample.follows { g.follows += 1 }
            groups[id] = g
        }
        return groups.values.sorted { $0.id < $1.id }
    }
}
