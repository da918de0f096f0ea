// Modality-following ratio (MFR) per instruction target with bootstrap CIs, and general ability
// (consistent and unimodal accuracy).

public struct ModalityFollowingResult: Sendable, Codable, Equatable {
    /// MFR per target ("image", "text") and "overall", over conflict samples.
    public var ratio: [String: Estimate]
    /// Follows / total per target.
    public var counts: [String: [Int]]
    /// Accuracy per other kind (consistent, image_only, text_only): expected answer set beats the others.
    public var accuracy: [String: Estimate]
    /// Mean following score s per target.
    public var meanScore: [String: Estimate]
    public var seed: UInt64
}

public enum ModalityFollowing {
    /// MFR and accuracies from scored samples.
    public static func measure(_ samples: [AnalysisSample], scores: [FollowingScore], seed: UInt64) -> ModalityFollowingResult {
        var ratio: [String: Estimate] = [:], counts: [String: [Int]] = [:], accuracy: [String: Estimate] = [:]
        var meanScore: [String: Estimate] = [:]
        let conflict = samples.indices.filter { samples[$0].kind == "conflict" && samples[$0].target != nil }
        for (offset, group) in [("image", conflict.filter { samples[$0].target == .image }),
                                ("text", conflict.filter { samples[$0].target == .text }),
                                ("overall", conflict)].enumerated() {
            let follows = group.1.map { scores[$0].follows ? 1.0 : 0.0 }
            ratio[group.0] = Estimate.bootstrap(follows, seed: seed &+ UInt64(offset))
            counts[group.0] = [Int(follows.reduce(0, +)), follows.count]
            meanScore[group.0] = Estimate.bootstrap(group.1.map { scores[$0].s }, seed: seed &+ UInt64(10 + offset))
        }
        for (offset, kind) in ["consistent", "image_only", "text_only"].enumerated() {
            let group = samples.indices.filter { samples[$0].kind == kind }
            guard !group.isEmpty else { continue }
            accuracy[kind] = Estimate.bootstrap(group.map { scores[$0].follows ? 1.0 : 0.0 }, seed: seed &+ UInt64(20 + offset))
        }
        return ModalityFollowingResult(ratio: ratio, counts: counts, accuracy: accuracy, meanScore: meanScore, seed: seed)
    }
}
