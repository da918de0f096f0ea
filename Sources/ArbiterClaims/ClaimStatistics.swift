// The statistic of each claim, computed from AnalysisResults, and its verdict: holds (full threshold),
// holds directionally (weaker threshold), fails, or inconclusive (cannot be decided on these items, decided
// before any threshold is read). Function names match claim ids.
import ArbiterAnalyses

public enum Verdict: String, Sendable, Codable, Comparable {
    /// The claim cannot be decided on this model and data (too few items, no failures, a NaN statistic):
    /// neither holds nor fails, whatever the thresholds. It sorts below fails only so that no requirement
    /// (`verify --require`) counts it as met; it is not a weaker fail.
    case inconclusive
    case fails
    case holdsDirectionally = "holds directionally"
    case holds

    var rank: Int {
        switch self {
        case .inconclusive: -1
        case .fails: 0
        case .holdsDirectionally: 1
        case .holds: 2
        }
    }
    public static func < (a: Verdict, b: Verdict) -> Bool { a.rank < b.rank }
}

/// One claim measured on one model.
public struct ClaimResult: Sendable, Codable, Equatable {
    public let id: String
    public let verdict: Verdict
    /// The headline statistic and its interval (NaN bounds when not bootstrapped).
    public let statistic: Double
    public let low: Double
    public let high: Double
    /// The number it is compared with, and the control's value.
    public let threshold: Double
    public let control: Double
    public let samples: Int
    /// Readable account of the numbers behind the verdict.
    public let detail: String

    public var summary: String {
        "\(id): \(verdict.rawValue) — statistic \(fmt(statistic)) [\(fmt(low)), \(fmt(high))], threshold \(fmt(threshold)), control \(fmt(control)), n=\(samples); \(detail)"
    }
}

func fmt(_ x: Double) -> String {
    x.isNaN ? "nan" : String(format: abs(x) >= 100 || (abs(x) < 0.001 && x != 0) ? "%.3g" : "%.3f", x)
}

public enum ClaimStatistics {
    /// The joint cue edge (image and context knocked out together, as the paper's "cue" figures) first.
    static let jointCueToInstruction = "cues->instruction"
    static let cueToInstruction = [jointCueToInstruction, "context->instruction", "image->instruction"]
    static let cueToLast = ["cues->last", "context->last", "image->last"]

    /// Every claim's result, in specification order, with `thresholds` (the specification's by default).
    public static func evaluate(_ r: AnalysisResults, thresholds t: ClaimThresholds = .standard) -> [ClaimResult] {
        [anchors(r, thresholds: t), shallowNonselective(r, thresholds: t), deepSelective(r, thresholds: t),
         mlpInertia(r, thresholds: t), headsBlocking(r, thresholds: t), headsAmplification(r, thresholds: t),
         specificity(r, thresholds: t)]
    }

    /// The strongest negative shift among `edges` over both targets and all layers: (estimate, edge, target, layer).
    static func strongest(_ r: AnalysisResults, _ edges: [String]) -> (Estimate, String, String, Int)? {
        var best: (Estimate, String, String, Int)? = nil
        for edge in edges {
            for (target, curve) in (r.flow.shift[edge] ?? [:]).sorted(by: { $0.key < $1.key }) {
                for (layer, e) in curve.enumerated() where !e.value.isNaN {
                    if best == nil || e.value < best!.0.value { best = (e, edge, target, layer) }
                }
            }
        }
        return best
    }

    static func largestMagnitude(_ r: AnalysisResults, _ edges: [String]) -> Double {
        var m = 0.0
        for edge in edges { for (_, curve) in r.flow.shift[edge] ?? [:] { for e in curve where !e.value.isNaN { m = max(m, abs(e.value)) } } }
        return m
    }

    static func conflictCount(_ r: AnalysisResults) -> Int { r.following.counts["overall"]?[1] ?? 0 }

    /// The standard error of an estimate from its 95% interval (NaN without one).
    static func standardError(_ e: Estimate) -> Double { (e.high - e.low) / (2 * 1.96) }

    public static func anchors(_ r: AnalysisResults, thresholds t: ClaimThresholds = .standard) -> ClaimResult {
        let n = conflictCount(r)
        guard let (e, edge, target, layer) = strongest(r, cueToInstruction) else {
            return ClaimResult(id: "anchors", verdict: .fails, statistic: .nan, low: .nan, high: .nan, threshold: .nan, control: .nan,
                               samples: n, detail: "no cue→instruction knockout results (the prompts have no instruction or cue spans)")
        }
        let direct = largestMagnitude(r, cueToLast)
        let ratio = direct > 0 ? abs(e.value) / direct : .infinity
        let full = e.value < 0 && e.high < 0 && abs(e.value) >= t.anchorsRatio * direct
        let directional = e.value < 0 && abs(e.value) > direct
        return ClaimResult(id: "anchors", verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
                           statistic: e.value, low: e.low, high: e.high, threshold: -t.anchorsRatio * direct,
                           control: direct, samples: n,
                           detail: "strongest cue→instruction shift \(fmt(e.value)) at \(edge), layer \(layer), follow-\(target); strongest direct cue→last |shift| \(fmt(direct)); ratio \(fmt(ratio))")
    }

    /// Shallow non-selective transfer, on the joint cue→instruction edge: in its transfer band both targets
    /// are hurt (CIs below 0) and alike — the difference of their band shifts has a 95% interval inside
    /// ±`nonSelectiveEquivalence` × their mean magnitude (an equivalence test, not a comparison of signs) —
    /// and the instruction tokens' attention does not depend on the instruction (mean |SI| ≤ threshold).
    public static func shallowNonselective(_ r: AnalysisResults,
                                                 thresholds t: ClaimThresholds = .standard) -> ClaimResult {
        let n = conflictCount(r)
        let id = "shallow-nonselective"
        guard let curves = r.flow.shift[jointCueToInstruction], let image = curves["image"], let text = curves["text"],
              image.count == r.layers, text.count == r.layers else {
            return ClaimResult(id: id, verdict: .fails, statistic: .nan, low: .nan, high: .nan, threshold: t.nonSelectiveSI,
                               control: .nan, samples: n,
                               detail: "no cues→instruction knockout results (the prompts have no instruction or no cues)")
        }
        let peak = (image + text).map(\.value).filter { !$0.isNaN }.min() ?? .nan
        guard peak < 0, let peakEstimate = (image + text).first(where: { $0.value == peak }) else {
            return ClaimResult(id: id, verdict: .fails, statistic: .nan, low: .nan, high: .nan, threshold: t.nonSelectiveSI,
                               control: .nan, samples: n,
                               detail: "knocking both cues out of the instruction tokens never lowers following: there is no transfer band")
        }
        // The band: layers where either target's shift is ≥ 50% of the peak.
        let band = (0..<r.layers).filter { image[$0].value <= 0.5 * peak || text[$0].value <= 0.5 * peak }
        func bandMean(_ curve: [Estimate]) -> (value: Double, high: Double, se: Double) {
            let values = band.map { curve[$0] }
            return (mean(values.map(\.value)), values.map(\.high).max() ?? .nan, mean(values.map(standardError)))
        }
        let i = bandMean(image), x = bandMean(text)
        // Equivalence of the two targets: independent item groups, so the standard errors add in quadrature.
        let difference = i.value - x.value
        let se = (i.se * i.se + x.se * x.se).squareRoot()
        let (dLow, dHigh) = (difference - 1.96 * se, difference + 1.96 * se)
        let margin = t.nonSelectiveEquivalence * (abs(i.value) + abs(x.value)) / 2
        let alike = dLow >= -margin && dHigh <= margin
        let si = band.compactMap { r.routing.selectivity["instruction"]?[$0].value }.map(abs)
        let meanSI = mean(si)
        let inFirstHalf = (band.max() ?? r.layers) < (r.layers + 1) / 2
        let bothHurt = i.value < 0 && x.value < 0
        let full = bothHurt && i.high < 0 && x.high < 0 && alike && meanSI <= t.nonSelectiveSI && inFirstHalf
        let directional = bothHurt && peakEstimate.high < 0 && abs(difference) <= margin
            && meanSI <= t.nonSelectiveSIDirectional
        return ClaimResult(id: id, verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
                           statistic: meanSI, low: dLow, high: dHigh, threshold: t.nonSelectiveSI,
                           control: margin, samples: n,
                           detail: "band layers \(band) on cues->instruction (\(inFirstHalf ? "first half" : "not in the first half")); mean shift follow-image \(fmt(i.value)), follow-text \(fmt(x.value)); difference \(fmt(difference)) [\(fmt(dLow)), \(fmt(dHigh))] \(alike ? "within" : "not within") ±\(fmt(margin)); mean |SI| \(fmt(meanSI))")
    }

    /// Deep selective arbitration at the anchors: the logit-lens decision at the instruction tokens agrees
    /// with the final answer in the deepest quarter (≥ deepAgreement), not in the shallowest (≤
    /// shallowAgreementMax), and the rise is beyond noise: the difference of the two quarters' means has a 95%
    /// interval above 0 (each quarter's standard error the mean of its layers' — the layers share their items,
    /// so their errors are not independent — and the two quarters' added in quadrature). Where the instruction
    /// tokens never carry a decision (|s| ≈ 0 at every layer), it fails.
    public static func deepSelective(_ r: AnalysisResults, thresholds t: ClaimThresholds = .standard) -> ClaimResult {
        let n = conflictCount(r)
        guard let curve = r.lens.agreement["instruction"], curve.count == r.layers, r.layers > 0 else {
            return ClaimResult(id: "deep-selective", verdict: .fails, statistic: .nan, low: .nan, high: .nan,
                               threshold: t.deepAgreement, control: .nan, samples: n,
                               detail: "no logit-lens readout at the instruction tokens (the prompts have no instruction)")
        }
        let q = max(1, r.layers / 4)
        let deepLayers = Array(curve.suffix(q)), shallowLayers = Array(curve.prefix(q))
        let deep = mean(deepLayers.map(\.value)), shallow = mean(shallowLayers.map(\.value))
        let seDeep = mean(deepLayers.map(standardError)), seShallow = mean(shallowLayers.map(standardError))
        let riseLow = deep - shallow - 1.96 * (seDeep * seDeep + seShallow * seShallow).squareRoot()
        let rises = riseLow > 0
        // How much the anchors' readout says at all: the largest mean |s| over layers and targets.
        let scores = (r.lens.meanScore["instruction"] ?? [:]).values.flatMap { $0.map { abs($0.value) } }.filter { !$0.isNaN }
        let carries = (scores.max() ?? 0) > 1e-3
        let full = carries && deep >= t.deepAgreement && shallow <= t.shallowAgreementMax && rises
        let directional = carries && deep > shallow && rises
        return ClaimResult(id: "deep-selective", verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
                           statistic: deep, low: deep - 1.96 * seDeep, high: deep + 1.96 * seDeep,
                           threshold: t.deepAgreement, control: shallow, samples: n,
                           detail: carries
                               ? "LDAR at the instruction tokens: deepest \(q) layers \(fmt(deep)), shallowest \(q) \(fmt(shallow)); rise \(fmt(deep - shallow)), 95% lower bound \(fmt(riseLow))\(rises ? "" : " (not above 0)")"
                               : "the instruction tokens' logit lens never tells the answers apart (largest mean |s| \(fmt(scores.max() ?? 0))): they carry no decision")
    }

    public static func mlpInertia(_ r: AnalysisResults, thresholds t: ClaimThresholds = .standard) -> ClaimResult {
        let e = r.attribution.deepMLPTotal["overall"] ?? Estimate(value: .nan, low: .nan, high: .nan, count: 0)
        let full = e.value < 0 && e.high < 0
        let directional = e.value < 0
        let attn = r.attribution.deepAttentionTotal["overall"]?.value ?? .nan
        return ClaimResult(id: "mlp-inertia", verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
                           statistic: e.value, low: e.low, high: e.high, threshold: 0, control: attn, samples: e.count,
                           detail: "deep MLP DLA total (layers \(r.attribution.deepStart)–\(r.layers - 1)) \(e); follow-image \(r.attribution.deepMLPTotal["image"].map(\.description) ?? "-"), follow-text \(r.attribution.deepMLPTotal["text"].map(\.description) ?? "-"); deep attention total \(fmt(attn))")
    }

    /// An inconclusive result: `reasons` say why the claim cannot be decided (they never depend on thresholds).
    static func inconclusive(_ id: String, _ reasons: [String], statistic: Double, low: Double = .nan,
                             high: Double = .nan, threshold: Double, control: Double, samples: Int,
                             detail: String) -> ClaimResult {
        ClaimResult(id: id, verdict: .inconclusive, statistic: statistic, low: low, high: high, threshold: threshold,
                    control: control, samples: samples,
                    detail: "inconclusive: \(reasons.joined(separator: "; ")) — \(detail)")
    }

    /// Why a random-set control cannot decide a verdict: too few sets for its p-value's resolution.
    static func randomSetShortfall(_ c: RandomSetControl, matching: String) -> [String] {
        let minimum = Claims.Threshold.minimumRandomSets
        if c.count == 0 { return ["no random head sets (\(matching))"] }
        return c.count < minimum
            ? ["\(c.count) random head sets, fewer than \(minimum): the p-value cannot go below 1/\(c.count + 1)"] : []
    }

    static func describe(_ c: RandomSetControl) -> String {
        "\(c.count) random sets: mean \(fmt(c.mean)), 95th percentile \(fmt(c.p95)), p = \(fmt(c.pValue)) "
            + "(resolution \(fmt(c.resolution)))"
    }

    public static func headsBlocking(_ r: AnalysisResults, thresholds t: ClaimThresholds = .standard) -> ClaimResult {
        let h = r.interventions, c = h.blockingControl
        let heads = h.heads.map(\.description).joined(separator: ", ")
        let detail = "MFR \(fmt(h.baselineMFR)) → \(fmt(h.blockedMFR)) blocking \(h.heads.count) heads (\(heads)); "
            + "mean score shift \(h.blockedScoreShift); \(describe(c)), drawn \(h.randomSetMatching)"
        var why: [String] = []
        let minimum = Claims.Threshold.minimumHeldOutConflict
        if h.heldOutCount < minimum { why.append("\(h.heldOutCount) held-out conflict items, fewer than \(minimum)") }
        if !(h.baselineMFR > 0) { why.append("the model follows none of the held-out conflict items: no MFR to cut") }
        why += randomSetShortfall(c, matching: h.randomSetMatching)
        if why.isEmpty && (h.relativeDrop.isNaN || c.pValue.isNaN) {
            why.append("NaN statistic (drop \(fmt(h.relativeDrop)), p \(fmt(c.pValue)))")
        }
        guard why.isEmpty else {
            return inconclusive("heads-blocking", why, statistic: h.relativeDrop, threshold: t.blockingDrop,
                                control: c.p95, samples: h.heldOutCount, detail: detail)
        }
        let significant = c.pValue < t.significance
        let full = significant && h.relativeDrop >= t.blockingDrop
        let directional = significant && h.relativeDrop > 0
        return ClaimResult(id: "heads-blocking", verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
                           statistic: h.relativeDrop, low: .nan, high: .nan, threshold: t.blockingDrop, control: c.p95,
                           samples: h.heldOutCount, detail: detail)
    }

    public static func headsAmplification(_ r: AnalysisResults,
                                          thresholds t: ClaimThresholds = .standard) -> ClaimResult {
        let h = r.interventions, c = h.amplificationControl
        let alphas = Dictionary(grouping: h.randomAlphas, by: { $0 }).sorted { $0.key < $1.key }
            .map { "\($0.value.count) at ×\(fmt($0.key))" }.joined(separator: ", ")
        let detail = "α = \(fmt(h.alpha)) (grid \(h.alphaGrid.map(fmt)), chosen on \(h.calibrationFailedCount) "
            + "calibration failures; random sets' α: \(alphas.isEmpty ? "-" : alphas)); fixed \(fmt(h.amplifiedFixRate)) "
            + "of \(h.failedCount) failed items; \(describe(c))"
        var why: [String] = []
        let minimum = Claims.Threshold.minimumFailed
        if h.failedCount == 0 {
            why.append("no failed held-out conflict items to fix (the model follows every instruction)")
        } else if h.failedCount < minimum {
            why.append("\(h.failedCount) failed held-out conflict items, fewer than \(minimum)")
        }
        why += randomSetShortfall(c, matching: h.randomSetMatching)
        if why.isEmpty && (h.amplifiedFixRate.isNaN || c.pValue.isNaN) {
            why.append("NaN statistic (fix rate \(fmt(h.amplifiedFixRate)), p \(fmt(c.pValue)))")
        }
        guard why.isEmpty else {
            return inconclusive("heads-amplification", why, statistic: h.amplifiedFixRate,
                                threshold: t.amplificationFix, control: c.p95, samples: h.failedCount, detail: detail)
        }
        let significant = c.pValue < t.significance
        let full = significant && h.amplifiedFixRate >= t.amplificationFix
        let directional = significant && h.amplifiedFixRate > 0
        return ClaimResult(id: "heads-amplification", verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
                           statistic: h.amplifiedFixRate, low: .nan, high: .nan, threshold: t.amplificationFix,
                           control: c.p95, samples: h.failedCount, detail: detail)
    }

    /// General ability, per item kind: each kind's accuracy change (after − before blocking the top heads) must
    /// be equivalent to 0 within the margin — the point estimate and its 95% CI inside ±margin.
    public static func specificity(_ r: AnalysisResults, thresholds t: ClaimThresholds = .standard) -> ClaimResult {
        let kinds = r.interventions.ability
        let n = kinds.reduce(0) { $0 + $1.count }
        // The kind furthest from no change is the headline.
        let worst = kinds.filter { !$0.change.value.isNaN }.max { abs($0.change.value) < abs($1.change.value) }
        func within(_ a: AbilityChange, _ margin: Double) -> Bool {
            abs(a.change.value) <= margin && a.change.low >= -margin && a.change.high <= margin
        }
        let margin = t.specificityMaxChange
        let detail = kinds.map { a in
            var text = "\(a.kind) \(fmt(a.before)) → \(fmt(a.after)), change \(a.change)"
            if a.change.value > margin { text += ", a gain beyond the ±\(fmt(margin)) margin (ability changed, not lost)" }
            else if a.change.value < -margin { text += ", a loss beyond the ±\(fmt(margin)) margin" }
            return text
        }.joined(separator: "; ") + " (top heads blocked, held-out items)"
        var why: [String] = []
        let minimum = Claims.Threshold.minimumAbilityItems
        for kind in Heads.abilityKinds {
            let count = kinds.first { $0.kind == kind }?.count ?? 0
            if count < minimum { why.append("\(count) held-out \(kind) items, fewer than \(minimum)") }
        }
        if why.isEmpty, kinds.contains(where: { $0.change.value.isNaN || $0.change.low.isNaN || $0.change.high.isNaN }) {
            why.append("NaN accuracy change")
        }
        guard why.isEmpty, let worst else {
            return inconclusive("specificity", why.isEmpty ? ["no accuracy change measured"] : why,
                                statistic: worst?.change.value ?? .nan, low: worst?.change.low ?? .nan,
                                high: worst?.change.high ?? .nan, threshold: margin, control: worst?.before ?? .nan,
                                samples: n, detail: detail)
        }
        let full = kinds.allSatisfy { within($0, margin) }
        let directional = kinds.allSatisfy { within($0, t.specificityMaxChangeDirectional) }
        return ClaimResult(id: "specificity", verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
                           statistic: worst.change.value, low: worst.change.low, high: worst.change.high,
                           threshold: margin, control: worst.before, samples: n, detail: detail)
    }
}
