// Two-stage head ranking (issue #23), an option off by default: a cheap screen orders every head, then exact
// single-head ablation — the causal score `Heads.rank` computes for every head — for the first C heads of the
// screen's order only. The screen is either the per-head direct logit attribution on the calibration split
// (computed anyway: no passes) or the same single-head ablation at the last position only (one recomputed row
// per pass, from the baseline's keys and values). The ranking: the candidates by their exact causal score, then
// every other head in the screen's order.
import ArbiterInterventions
import Foundation

/// The screen of a two-stage head ranking.
public enum HeadScreen: String, Sendable, Codable, CaseIterable {
    /// Per-head direct logit attribution to s on the calibration conflict items (`Attribution`): no passes.
    case attribution = "dla"
    /// The head's output zeroed at the last position only (`Intervention.blockHeadsAt`): the mean drop of s,
    /// each pass recomputing the last position alone over the baseline's keys and values.
    case lastPosition = "last-position"
}

/// `AnalysisConfiguration.headRanking`: rank the heads in two stages — `screen` orders every head, exact
/// single-head ablation scores the screen's first `candidates` heads. nil there: exact ablation of every head.
public struct TwoStageRanking: Sendable, Codable, Equatable, CustomStringConvertible {
    public var screen: HeadScreen
    /// C: heads ablated exactly (more than the model has: every head).
    public var candidates: Int

    public init(screen: HeadScreen, candidates: Int) {
        self.screen = screen
        self.candidates = candidates
    }

    /// The command-line form: `exact` (nil), `dla:C` or `last-position:C` with C ≥ 1.
    public static func parse(_ text: String) throws -> TwoStageRanking? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed == "exact" { return nil }
        let parts = trimmed.split(separator: ":", omittingEmptySubsequences: false)
        let forms = "exact, dla:C or last-position:C (C heads ablated exactly, C ≥ 1)"
        guard parts.count == 2, let screen = HeadScreen(rawValue: String(parts[0])) else {
            throw AnalysisError.invalidParameter("'\(text)' is not a head ranking: give \(forms)")
        }
        guard let c = Int(parts[1]), c >= 1 else {
            throw AnalysisError.invalidParameter("'\(text)': the candidate count '\(parts[1])' is not an integer ≥ 1")
        }
        return TwoStageRanking(screen: screen, candidates: c)
    }

    public var description: String { "\(screen.rawValue):\(candidates)" }
}

/// What a two-stage ranking did (`HeadRanking.twoStage`).
public struct TwoStageRankingRecord: Sendable, Codable, Equatable {
    public var screen: HeadScreen
    /// C as configured.
    public var candidates: Int
    /// [layer][head] the screen's score: mean DLA, or the mean drop of s when the head is blocked at the last
    /// position.
    public var screenScores: [[Double]]
    /// Every head by decreasing screen score (ties: lower layer, then lower head, first).
    public var screenOrder: [HeadIndex]
    /// The heads that got exact single-head ablation: the first min(C, heads) of `screenOrder`.
    public var exactHeads: [HeadIndex]
}

/// How close a two-stage ranking comes to the exact one.
public struct HeadRankingAgreement: Sendable, Codable, Equatable {
    /// k: the top set's size (`HeadRanking.setSize`).
    public var setSize: Int
    /// |top-k two-stage ∩ top-k exact| / k.
    public var setOverlap: Double
    /// n = min(20, heads): |top-n ∩ top-n| / n.
    public var topCount: Int
    public var topOverlap: Double
    /// Spearman's ρ between the exact order of the exact top n and the order the two-stage ranking gives them
    /// (1: the same order; ranked among themselves, so a head pushed out of the two-stage top n still counts).
    public var topSpearman: Double

    public init(exact: [HeadIndex], twoStage: [HeadIndex], setSize k: Int, top: Int = 20) {
        setSize = k
        setOverlap = Double(Set(exact.prefix(k)).intersection(twoStage.prefix(k)).count) / Double(max(k, 1))
        let n = min(top, exact.count)
        topCount = n
        topOverlap = Double(Set(exact.prefix(n)).intersection(twoStage.prefix(n)).count) / Double(max(n, 1))
        let position = Dictionary(uniqueKeysWithValues: twoStage.enumerated().map { ($1, $0) })
        let heads = Array(exact.prefix(n))
        // Ranks among the n heads in the two-stage order (a head missing from it last).
        let reordered = heads.indices.sorted { (position[heads[$0]] ?? .max, $0) < (position[heads[$1]] ?? .max, $1) }
        var rank = [Int](repeating: 0, count: n)
        for (r, i) in reordered.enumerated() { rank[i] = r }
        let d2 = heads.indices.reduce(0.0) { $0 + Double(($1 - rank[$1]) * ($1 - rank[$1])) }
        topSpearman = n < 2 ? .nan : 1 - 6 * d2 / (Double(n) * Double(n * n - 1))
    }
}

extension Heads {
    /// Exact single-head ablations of `heads` of layer `l`: one (head, sample) request each, head-major in the
    /// order of `heads` (for every head of the layer: `rankingRequests(_:layer:heads:)`' requests).
    static func rankingRequests(_ conflict: [Int], layer l: Int, heads: [Int],
                                positions: HeadPositions? = nil) -> [ScoreRequest] {
        heads.flatMap { h in
            conflict.map {
                ScoreRequest(sample: $0,
                             interventions: InterventionSet([blocking([HeadIndex(layer: l, head: h)], at: positions)]),
                             startLayer: l)
            }
        }
    }

    /// The exact ablations of a two-stage ranking's candidates, per layer holding candidates (in layer order):
    /// the layer's candidates by head index and their requests, head-major (also counted by `VerifyPlan`).
    static func candidateRequests(_ conflict: [Int], candidates: [HeadIndex], positions: HeadPositions? = nil)
        -> [(layer: Int, heads: [Int], requests: [ScoreRequest])] {
        Set(candidates.map(\.layer)).sorted().map { l in
            let local = candidates.filter { $0.layer == l }.map(\.head).sorted()
            return (l, local, rankingRequests(conflict, layer: l, heads: local, positions: positions))
        }
    }

    /// The last-position screen of layer `l`: each head's output zeroed at the last position only, one
    /// (head, sample) request each, head-major, recomputing from the last position on (also counted by
    /// `VerifyPlan`).
    static func screenRequests(_ conflict: [Int], samples: [AnalysisSample], layer l: Int,
                               heads: Int) -> [ScoreRequest] {
        (0..<(heads * conflict.count)).map { j in
            let i = conflict[j % conflict.count]
            let head = HeadIndex(layer: l, head: j / conflict.count)
            let block = Intervention.blockHeadsAt([head], queries: .span("last"))
            return ScoreRequest(sample: i, interventions: InterventionSet([block]), startLayer: l,
                                unchangedBefore: samples[i].input.ids.count - 1)
        }
    }

    /// Heads by decreasing score, ties to the lower (layer, head): the order of `rank`'s exact ranking.
    static func order(_ heads: [HeadIndex], by score: [[Double]]) -> [HeadIndex] {
        heads.sorted { (score[$0.layer][$0.head], $1) > (score[$1.layer][$1.head], $0) }
    }

    /// Runs of consecutive items whose keys and values (`bytes` each) fit `budget` together, at least one item
    /// each: the chunks of the last-position screen when the baselines did not keep keys and values (also
    /// `VerifyPlan`'s memory).
    static func keyValueChunks(_ bytes: [Int], budget: Int) -> [Range<Int>] {
        var chunks: [Range<Int>] = [], start = 0, total = 0
        for (i, b) in bytes.enumerated() {
            if i > start && total + b > budget { chunks.append(start..<i); start = i; total = 0 }
            total += b
        }
        if start < bytes.count { chunks.append(start..<bytes.count) }
        return chunks
    }

    /// The screen's conflict items a chunk at a time: all at once when every baseline kept its keys and values,
    /// else chunks within `keyValueBudget` (`keyValueChunks`).
    static func screenChunks(runner: AnalysisRunner, samples: [AnalysisSample], baselines: [BaselineRun],
                             conflict: [Int], keyValueBudget: Int) -> [[Int]] {
        guard conflict.contains(where: { baselines[$0].keys == nil || !baselines[$0].keepsStreams }) else {
            return [conflict]
        }
        // Baselines without streams: the chunk's are computed again with its keys and values, within both budgets.
        let streams = conflict.contains { !baselines[$0].keepsStreams }
        return keyValueChunks(conflict.map {
            runner.keyValueBytes([samples[$0]]) + (streams ? runner.streamBytes([samples[$0]]) : 0)
        }, budget: keyValueBudget + (streams ? runner.streamBudget : 0))
            .map { Array(conflict[$0]) }
    }

    /// [layer][head] mean drop of s when the head's output is zeroed at the last position only. Baselines without
    /// keys and values (over the run's budget) are run again with them, a chunk of items at a time within
    /// `keyValueBudget`, for the screen alone.
    static func lastPositionScreen(runner: AnalysisRunner, samples: [AnalysisSample], baselines: [BaselineRun],
                                   conflict: [Int], keyValueBudget: Int,
                                   progress: (String) -> Void) throws -> [[Double]] {
        let layers = runner.layers, heads = runner.heads
        // effects[l][h][k]: the drop on conflict item k.
        var effects = [[[Double]]](repeating: [[Double]](repeating: [Double](repeating: 0, count: conflict.count),
                                                          count: heads), count: layers)
        let chunks = screenChunks(runner: runner, samples: samples, baselines: baselines, conflict: conflict,
                                  keyValueBudget: keyValueBudget)
        var done = 0
        for (c, chunk) in chunks.enumerated() {
            let chunkSamples = chunk.map { samples[$0] }
            var chunkBaselines = chunk.map { baselines[$0] }
            if chunkBaselines.contains(where: { $0.keys == nil || !$0.keepsStreams }) {
                progress("last-position screen: keys and values of \(chunk.count) items "
                         + "(chunk \(c + 1)/\(chunks.count))")
                chunkBaselines = try runner.parallelMap(chunk.count) {
                    try runner.baseline(chunkSamples[$0], keepPatterns: false, keepKeysValues: true)
                }
            }
            for l in 0..<layers {
                progress("last-position screen, layer \(l + 1)/\(layers)")
                let requests = screenRequests(Array(chunk.indices), samples: chunkSamples, layer: l, heads: heads)
                let blocked = try runner.scores(requests, samples: chunkSamples, baselines: chunkBaselines)
                for (r, (request, score)) in zip(requests, blocked).enumerated() {
                    let drop = chunkBaselines[request.sample].score.s - score.s
                    effects[l][r / chunk.count][done + r % chunk.count] = drop
                }
            }
            done += chunk.count
        }
        // Summed per head in item order.
        return effects.map { layer in
            layer.map { items in
                var total = 0.0
                for e in items { total += e }
                return total / Double(conflict.count)
            }
        }
    }

    /// `rank` in two stages (`TwoStageRanking`): the screen orders every head, exact single-head ablation scores
    /// the first C, and the ranking is those C by their causal score (as `rank` orders them) followed by every
    /// other head in the screen's order. Heads without exact ablation have a NaN causal score. With C ≥ the
    /// model's heads, the same ranking as `rank`, bit for bit.
    static func rankTwoStage(runner: AnalysisRunner, samples: [AnalysisSample], baselines: [BaselineRun],
                             conflict: [Int], attribution: [[Double]], method: TwoStageRanking,
                             positions: HeadPositions? = nil, keyValueBudget: Int,
                             progress: (String) -> Void) throws -> HeadRanking {
        guard method.candidates >= 1 else {
            throw AnalysisError.invalidParameter("head ranking \(method): the candidate count must be ≥ 1")
        }
        let layers = runner.layers, heads = runner.heads
        let all = (0..<layers).flatMap { l in (0..<heads).map { HeadIndex(layer: l, head: $0) } }
        let screenScores: [[Double]]
        switch method.screen {
        case .attribution: screenScores = attribution
        case .lastPosition:
            screenScores = try lastPositionScreen(runner: runner, samples: samples, baselines: baselines,
                                                  conflict: conflict, keyValueBudget: keyValueBudget,
                                                  progress: progress)
        }
        let screenOrder = order(all, by: screenScores)
        let candidates = Array(screenOrder.prefix(method.candidates))
        var causal = [[Double]](repeating: [Double](repeating: .nan, count: heads), count: layers)
        let perLayer = candidateRequests(conflict, candidates: candidates, positions: positions)
        let scored = try runner.scores(calls: perLayer.map(\.requests), samples: samples, baselines: baselines) { k in
            progress(k.map { "single-head ablation of \(perLayer[$0].heads.count) candidates, layer "
                             + "\(perLayer[$0].layer + 1)/\(layers)" }
                     ?? "single-head ablation of \(candidates.count) candidates at once (keys and values run again)")
        }
        for (index, (l, local, requests)) in perLayer.enumerated() {
            let blocked = scored[index]
            // Summed per head in sample order, as `rank` does.
            let effects = requests.indices.map { baselines[requests[$0].sample].score.s - blocked[$0].s }
            for (j, h) in local.enumerated() {
                var total = 0.0
                for k in conflict.indices { total += effects[j * conflict.count + k] }
                causal[l][h] = total / Double(conflict.count)
            }
        }
        let exact = Set(candidates)
        return HeadRanking(causal: causal, attribution: attribution,
                           causalOrder: order(candidates, by: causal) + screenOrder.filter { !exact.contains($0) },
                           attributionOrder: order(all, by: attribution), calibrationCount: conflict.count,
                           twoStage: TwoStageRankingRecord(screen: method.screen, candidates: method.candidates,
                                                           screenScores: screenScores, screenOrder: screenOrder,
                                                           exactHeads: candidates))
    }
}

extension VerifyPlan {
    /// The head ranking stages of a two-stage ranking: the last-position screen (after running the screen's items
    /// again for their keys and values when the baselines cannot keep them), then the candidates' exact ablation.
    /// Which heads the screen picks is a result: their layers, where the passes resume, are assumed spread evenly
    /// over the layers (the first layers holding one more), or with `candidatesFirst` in the first layers (the
    /// worst case).
    static func twoStageRankingStages(counter: PlanCounter, method: TwoStageRanking, samples: [AnalysisSample],
                                      conflict: [Int], positions: HeadPositions? = nil,
                                      candidatesFirst: Bool) -> [PlanStage] {
        let layers = counter.shape.layers, heads = counter.shape.heads
        var out: [PlanStage] = []
        if method.screen == .lastPosition {
            if !counter.keysKept || !counter.streamsKept {
                var again = counter.baselineStage(count: conflict.count, like: conflict.map { samples[$0] })
                again.name = "head ranking screen: keys and values (items run again)"
                again.assumption = "keys and values or residual streams over the budget: the screen's items run "
                    + "again, a chunk at a time"
                out.append(again)
            }
            let screen = (0..<layers).flatMap {
                Heads.screenRequests(conflict, samples: samples, layer: $0, heads: heads)
            }
            out.append(counter.stage("head ranking screen (last-position ablation)", screen, samples, assumption: "",
                                     keysKept: true))
        }
        let total = layers * heads, c = min(method.candidates, total)
        let perLayer = (0..<layers).map { l in c / layers + (l < c % layers ? 1 : 0) }
        let candidates = candidatesFirst
            ? (0..<c).map { HeadIndex(layer: $0 / heads, head: $0 % heads) }
            : (0..<layers).flatMap { l in (0..<perLayer[l]).map { HeadIndex(layer: l, head: $0) } }
        let perLayerRequests = Heads.candidateRequests(conflict, candidates: candidates, positions: positions)
        let requests = perLayerRequests.flatMap(\.requests)
        let screen = method.screen == .attribution ? "DLA screen" : "last-position screen"
        out.append(counter.stage("head ranking (single-head ablation of \(c) candidates, \(screen))", requests,
                                 samples, assumption: c == total ? ""
                                    : "the candidates spread evenly over the layers (worst case: the first layers)"))
        return out
    }

    /// Bytes of keys and values the last-position screen holds at once when the baselines cannot keep them (its
    /// largest chunk, `Heads.keyValueChunks`); 0 without that screen.
    static func screenKeyValueBytes(_ samples: [AnalysisSample], shape: PlanModelShape,
                                    configuration c: AnalysisConfiguration, budget: Int) throws -> Int {
        guard c.headRanking?.screen == .lastPosition else { return 0 }
        let calibration = try AnalysisSuite.split(samples, configuration: c).calibration.map { samples[$0] }
        let bytes = calibration.filter { $0.kind == "conflict" && $0.target != nil }.map {
            $0.input.ids.count * shape.layers * 2 * shape.keyValueHeads * shape.headDim * MemoryLayout<Float>.size
        }
        return Heads.keyValueChunks(bytes, budget: budget).map { bytes[$0].reduce(0, +) }.max() ?? 0
    }
}
