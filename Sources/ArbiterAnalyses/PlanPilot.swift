// The pilot of `VerifyPlan` for a folder that can run (weights and tokenizer): a few of the run's own passes,
// timed on the model itself. The calibration (PlanCalibrationRun.swift) times layers of the model's shapes on
// random weights, which misses what a run spends around its products — hooks built and validated per pass,
// baselines caching every layer, prefix trees planned, batches of mixed runs — and those costs differ per stage.
// The pilot runs, per stage, its requests on a few of its items (the items' baselines computed first, untimed
// except in the baselines' own stage) through `AnalysisRunner.scores`, exactly as the run does, and scales the
// stage's predicted seconds by measured / predicted on those same requests.
import ArbiterModels
import Dispatch
import Foundation

public final class PlanPilot {
    let runner: AnalysisRunner
    /// Baselines computed so far, by sample id.
    private var baselines: [String: BaselineRun] = [:]
    /// Seconds spent piloting (the plan's own cost).
    public private(set) var seconds = 0.0

    /// Items whose baselines time the baselines stage, and the predicted seconds a stage pilot aims at.
    static let itemsPerStage = 8
    static let secondsPerStage = 0.4
    /// Seconds of baselines the pilot may compute (untimed) so that a stage's pilot passes can run over all of
    /// the stage's items; a model too slow for that pilots the first `itemsPerStage` items only.
    static let baselineBudgetSeconds = 8.0

    public init(session: ModelSession) { runner = AnalysisRunner(session: session) }

    private func elapsed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
        let began = DispatchTime.now().uptimeNanoseconds
        let value = try body()
        return (value, Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9)
    }

    /// Baselines of `samples` not computed yet (all workers, as the run computes them); their wall seconds.
    @discardableResult
    func computeBaselines(_ samples: [AnalysisSample], keepKeysValues: Bool,
                          keepStreams: Bool = true) throws -> Double {
        let missing = samples.filter { baselines[$0.id] == nil }
        let (runs, time) = try elapsed {
            try runner.parallelMap(missing.count) {
                try runner.baseline(missing[$0], keepKeysValues: keepKeysValues, keepStreams: keepStreams)
            }
        }
        for (s, run) in zip(missing, runs) { baselines[s.id] = run }
        seconds += time
        return time
    }

    /// Wall seconds of `requests` (indices into `samples`) through `scores`, as the run computes them.
    func time(_ requests: [ScoreRequest], samples: [AnalysisSample], keepKeysValues: Bool,
              keepStreams: Bool = true) throws -> Double {
        // The touched samples, in their order, and the requests renumbered onto them.
        let touched = Array(Set(requests.map(\.sample))).sorted()
        let index = Dictionary(uniqueKeysWithValues: touched.enumerated().map { ($1, $0) })
        let local = touched.map { samples[$0] }
        try computeBaselines(local, keepKeysValues: keepKeysValues, keepStreams: keepStreams)
        let renumbered = requests.map { r in
            ScoreRequest(sample: index[r.sample]!, interventions: r.interventions, startLayer: r.startLayer,
                         unchangedBefore: r.unchangedBefore)
        }
        let (_, time) = try elapsed {
            try runner.scores(renumbered, samples: local, baselines: local.map { baselines[$0.id]! })
        }
        seconds += time
        return time
    }

    /// The pilot's requests of a stage: those of its first `items` items, about `count` of them, taken as
    /// whole groups of the same interventions (a head, a head set, a knockout window), evenly spaced over the
    /// groups: the runner shares rows within such a group, so a group keeps the batches' shape (prefix trees of
    /// its items, batches of many runs) that thinning single requests out of it would break. With `items` at
    /// least the stage's items, a group is exactly as the run computes it: a stage of 500 items per head set
    /// builds deeper prefix trees and longer batches than 8 items do, and was measured 1.7× slower per pass.
    static func subset(_ requests: [ScoreRequest], count: Int, items limit: Int = itemsPerStage) -> [ScoreRequest] {
        var items: [Int] = [], seen = Set<Int>()
        for r in requests where !seen.contains(r.sample) && items.count < limit {
            seen.insert(r.sample)
            items.append(r.sample)
        }
        let chosen = Set(items)
        let candidates = requests.filter { chosen.contains($0.sample) }
        guard candidates.count > count, count > 0 else { return candidates }
        var groups: [[ScoreRequest]] = [], index: [String: Int] = [:]
        for r in candidates {
            let key = "\(r.startLayer) \(r.interventions)"
            if let k = index[key] { groups[k].append(r) } else { index[key] = groups.count; groups.append([r]) }
        }
        let perGroup = Double(candidates.count) / Double(groups.count)
        let wanted = min(groups.count, max(1, Int((Double(count) / perGroup).rounded(.up))))
        return (0..<wanted).flatMap { groups[$0 * groups.count / wanted] }
    }
}
