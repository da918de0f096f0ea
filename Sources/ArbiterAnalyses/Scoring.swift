// Scoring a sample (docs/metrics.md): at the last position, p(instructed) and p(competitor) are the summed
// probabilities of the first tokens of each answer set; q = p_I / (p_I + p_C) is the binary following
// probability; s = log p_I − log p_C is the following score; the sample follows ⇔ s > 0.
import ArbiterTensor
import Foundation

public struct FollowingScore: Sendable, Codable, Equatable {
    /// The top token over the whole vocabulary (argmax of the logits; the first on ties).
    public let top: Int
    public let pInstructed: Double
    public let pCompetitor: Double
    public var q: Double { pInstructed / (pInstructed + pCompetitor) }
    public let s: Double
    public var follows: Bool { s > 0 }

    /// Stored values (a sharded run's partial results, placeholders).
    init(top: Int, pInstructed: Double, pCompetitor: Double, s: Double) {
        self.top = top
        self.pInstructed = pInstructed
        self.pCompetitor = pCompetitor
        self.s = s
    }

    /// From one row of logits over the vocabulary.
    public init<C: Collection>(logits: C, instructed: [Int],
                               competitor: [Int]) where C.Element == Float, C.Index == Int {
        let start = logits.startIndex
        var maximum = -Double.infinity, best = -Float.infinity, bestIndex = 0
        for (i, v) in logits.enumerated() {
            maximum = max(maximum, Double(v))
            if v > best { best = v; bestIndex = i }
        }
        top = bestIndex
        var z = 0.0
        for v in logits { z += exp(Double(v) - maximum) }
        func mass(_ ids: [Int]) -> (p: Double, logp: Double) {
            var m = -Double.infinity
            for id in ids { m = max(m, Double(logits[start + id])) }
            var sum = 0.0
            for id in ids { sum += exp(Double(logits[start + id]) - m) }
            let logp = m + log(sum) - maximum - log(z)
            return (exp(logp), logp)
        }
        let a = mass(instructed), b = mass(competitor)
        pInstructed = a.p
        pCompetitor = b.p
        s = a.logp - b.logp
    }

    /// ∂s/∂logit_k: p_k/P_I for instructed k, −p_k/P_C for competing k, 0 elsewhere (the softmax normaliser
    /// cancels). Used to linearise s for direct logit attribution.
    public static func gradient<C: Collection>(logits: C, instructed: [Int], competitor: [Int]) -> [(Int, Double)]
    where C.Element == Float, C.Index == Int {
        let start = logits.startIndex
        func weights(_ ids: [Int], sign: Double) -> [(Int, Double)] {
            let m = ids.map { Double(logits[start + $0]) }.max() ?? 0
            let e = ids.map { exp(Double(logits[start + $0]) - m) }
            let total = e.reduce(0, +)
            return zip(ids, e).map { ($0, sign * $1 / total) }
        }
        return weights(instructed, sign: 1) + weights(competitor, sign: -1)
    }
}
