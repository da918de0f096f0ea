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
    static let cueToInstruction = ["context->instruction", "image->instruction"]
    static let cueToLast = ["context->last", "image->last"]

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
            for (target, curve) in r.flow.shift[edge] ?? [:] {
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

    public static func shallowNonselective(_ r: AnalysisResults,
                                                 thresholds t: ClaimThresholds = .standard) -> ClaimResult {
        let n = conflictCount(r)
        guard let (peak, edge, _, _) = strongest(r, cueToInstruction), peak.value < 0 else {
            return ClaimResult(id: "shallow-nonselective", verdict: .fails, statistic: .nan, low: .nan, high: .nan,
                               threshold: t.nonSelectiveSI, control: .nan, samples: n,
                               detail: "no negative cue→instruction shift: there is no transfer band to examine")
        }
        // The band: layers where either target's shift on the peak edge is ≥ 50% of the peak.
        let curves = r.flow.shift[edge] ?? [:]
        let band = (0..<r.layers).filter { l in curves.values.contains { $0[l].value <= 0.5 * peak.value } }
        func bandMean(_ target: String) -> (Double, Double) {
            let values = band.compactMap { curves[target]?[$0] }
            return (mean(values.map(\.value)), values.map(\.high).max() ?? .nan)
        }
        let (imageShift, imageHigh) = bandMean("image"), (textShift, textHigh) = bandMean("text")
        let si = band.compactMap { r.routing.selectivity["instruction"]?[$0].value }.map(abs)
        let meanSI = mean(si)
        let inFirstHalf = (band.max() ?? r.layers) < (r.layers + 1) / 2
        let bothHurt = imageShift < 0 && textShift < 0
        let full = bothHurt && imageHigh < 0 && textHigh < 0 && meanSI <= t.nonSelectiveSI && inFirstHalf
        // Without a real transfer (the peak's CI reaching 0) there is no band, and "both hurt" is noise.
        let directional = bothHurt && peak.high < 0 && meanSI <= t.nonSelectiveSIDirectional
        return ClaimResult(id: "shallow-nonselective", verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
                           statistic: meanSI, low: .nan, high: .nan, threshold: t.nonSelectiveSI,
                           control: max(imageShift, textShift), samples: n,
                           detail: "band layers \(band) on \(edge) (\(inFirstHalf ? "first half" : "not in the first half")); mean shift follow-image \(fmt(imageShift)), follow-text \(fmt(textShift)); mean |SI| \(fmt(meanSI))")
    }

    public static func deepSelective(_ r: AnalysisResults, thresholds t: ClaimThresholds = .standard) -> ClaimResult {
        let n = conflictCount(r)
        let readout = (r.lens.agreement["instruction"]?.isEmpty == false) ? "instruction" : "last"
        let curve = r.lens.agreement[readout] ?? []
        let q = max(1, r.layers / 4)
        let deep = mean(curve.suffix(q).map(\.value)), shallow = mean(curve.prefix(q).map(\.value))
        let si = (r.routing.selectivity["last"] ?? []).map { abs($0.value) }
        let half = r.layers / 2
        let siDeep = mean(Array(si.suffix(r.layers - half))), siShallow = mean(Array(si.prefix(half)))
        let rises = siDeep > siShallow
        let full = deep >= t.deepAgreement && shallow <= t.shallowAgreementMax && rises
        let directional = deep > shallow && rises
        return ClaimResult(id: "deep-selective", verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
                           statistic: deep, low: curve.suffix(q).map(\.low).min() ?? .nan, high: curve.suffix(q).map(\.high).max() ?? .nan,
                           threshold: t.deepAgreement, control: shallow, samples: n,
                           detail: "LDAR at the \(readout) readout: deepest \(q) layers \(fmt(deep)), shallowest \(q) \(fmt(shallow)); last-position |SI| deep half \(fmt(siDeep)) vs shallow half \(fmt(siShallow))")
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
