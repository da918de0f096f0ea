// The statistic of each claim, computed from AnalysisResults, and its verdict: holds (full threshold),
// holds directionally (weaker threshold), fails, or inconclusive (cannot be decided on these items, decided
// before any threshold is read). Function names match claim ids.
import ArbiterAnalyses
import ArbiterInterventions

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

/// One number (or list of numbers) behind a verdict, by name: every sub-statistic a claim reads — intervals,
/// p-values, controls, random-set distributions, α, head ids, per-layer curves — is one measure, stored in the
/// golden claim files and compared by the claim tests (tolerances by `Kind`, docs/metrics.md).
public struct ClaimMeasure: Sendable, Codable, Equatable {
    /// `continuous`: a computed quantity, compared within 1e-5 · max(1, |stored|) (stored as float32,
    /// recomputed deterministically); `exact`: counts, layers, head ids, grid values — must be identical.
    public enum Kind: String, Sendable, Codable { case continuous, exact }
    public let name: String
    public let kind: Kind
    public let values: [Double]

    public init(_ name: String, _ kind: Kind = .continuous, _ values: [Double]) {
        self.name = name
        self.kind = kind
        self.values = values
    }

    /// An estimate as [value, low, high, n].
    static func estimate(_ name: String, _ e: Estimate?) -> ClaimMeasure {
        let e = e ?? Estimate(value: .nan, low: .nan, high: .nan, count: 0)
        return ClaimMeasure(name, .continuous, [e.value, e.low, e.high, Double(e.count)])
    }

    /// A per-layer curve as [value, low, high] per layer.
    static func curve(_ name: String, _ c: [Estimate]?) -> ClaimMeasure {
        ClaimMeasure(name, .continuous, (c ?? []).flatMap { [$0.value, $0.low, $0.high] })
    }

    /// A random-set control as [count, mean, 95th percentile, p-value, resolution].
    static func control(_ name: String, _ c: RandomSetControl) -> ClaimMeasure {
        ClaimMeasure(name, .continuous, [Double(c.count), c.mean, c.p95, c.pValue, c.resolution])
    }

    /// Whether `self` (a recomputed measure) agrees with `stored` within its kind's tolerance; NaN equals NaN.
    public func agrees(with stored: ClaimMeasure) -> Bool {
        guard name == stored.name, kind == stored.kind, values.count == stored.values.count else { return false }
        return zip(values, stored.values).allSatisfy { a, b in
            if a.isNaN || b.isNaN { return a.isNaN && b.isNaN }
            if a.isInfinite || b.isInfinite { return a == b }
            switch kind {
            case .exact: return Float(a) == Float(b)
            case .continuous: return abs(a - b) <= ClaimMeasure.tolerance * max(1, abs(b))
            }
        }
    }

    /// The relative tolerance of continuous measures: float32 storage (6e-8) with room for the last bits
    /// a different summation order leaves; far below any threshold's resolution.
    public static let tolerance = 1e-5
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
    /// Every sub-statistic the verdict read, by name.
    public var measures: [ClaimMeasure] = []

    public var summary: String {
        "\(id): \(verdict.rawValue) — statistic \(fmt(statistic)) [\(fmt(low)), \(fmt(high))], threshold "
            + "\(fmt(threshold)), control \(fmt(control)), n=\(samples); \(detail)"
    }

    func with(_ measures: [ClaimMeasure]) -> ClaimResult {
        var r = self
        r.measures = measures
        return r
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
        let shortfall = perTargetShortfall(r)
        let splitClaims = [anchors(r, thresholds: t), shallowNonselective(r, thresholds: t),
                           deepSelective(r, thresholds: t), mlpInertia(r, thresholds: t)].map { c in
            shortfall.isEmpty || c.verdict == .inconclusive ? c : undecided(c, shortfall)
        }
        return splitClaims + [headsBlocking(r, thresholds: t), headsAmplification(r, thresholds: t),
                              specificity(r, thresholds: t)]
    }

    /// Why the claims decided on the per-target split (flow, routing, MLP attribution) cannot be: fewer conflict
    /// items of an instruction target than `Claims.Threshold.minimumPerTargetSplit` in each split — possible only
    /// in a run made with a lower `--minimum-per-target` (at the analyses' default such a run is refused).
    static func perTargetShortfall(_ r: AnalysisResults) -> [String] {
        guard r.configuration.minimumPerTarget < Claims.Threshold.minimumPerTargetSplit else { return [] }
        let minimum = 2 * Claims.Threshold.minimumPerTargetSplit
        return targets.compactMap { target in
            let n = r.following.counts[target]?[1] ?? 0
            return n < minimum ? "\(n) conflict items instructed to follow the \(target), fewer than \(minimum) "
                + "(\(Claims.Threshold.minimumPerTargetSplit) per split)" : nil
        }
    }

    /// `c` made inconclusive for `reasons`, its statistic and measures kept.
    static func undecided(_ c: ClaimResult, _ reasons: [String]) -> ClaimResult {
        inconclusive(c.id, reasons, statistic: c.statistic, low: c.low, high: c.high, threshold: c.threshold,
                     control: c.control, samples: c.samples, detail: c.detail).with(c.measures)
    }

    static let targets = InstructionTarget.allCases.map(\.rawValue)

    /// A cell of the knockout results: an edge, a target, a layer.
    struct Cell: CustomStringConvertible {
        let edge: String, target: String, layer: Int
        var description: String { "\(edge), layer \(layer), follow-\(target)" }
        func exact(_ name: String, edges: [String]) -> ClaimMeasure {
            ClaimMeasure(name, .exact, [Double(edges.firstIndex(of: edge) ?? -1),
                                        Double(ClaimStatistics.targets.firstIndex(of: target) ?? -1), Double(layer)])
        }
    }

    /// The cell of `shift` among `edges` (both targets, all layers) that `better` ranks first; NaNs skipped.
    static func extreme(_ shift: [String: [String: [Estimate]]], _ edges: [String],
                        by better: (Double, Double) -> Bool) -> Cell? {
        var best: (Double, Cell)? = nil
        for edge in edges {
            for target in targets {
                for (layer, e) in (shift[edge]?[target] ?? []).enumerated() where !e.value.isNaN {
                    if best == nil || better(e.value, best!.0) {
                        best = (e.value, Cell(edge: edge, target: target, layer: layer))
                    }
                }
            }
        }
        return best?.1
    }

    static func estimate(_ shift: [String: [String: [Estimate]]], _ cell: Cell) -> Estimate? {
        guard let curve = shift[cell.edge]?[cell.target], cell.layer < curve.count else { return nil }
        return curve[cell.layer]
    }

    /// Every curve of `edges` on both splits, as measures.
    static func splitCurves(_ r: AnalysisResults, _ edges: [String]) -> [ClaimMeasure] {
        edges.flatMap { edge in
            targets.flatMap { target in
                [ClaimMeasure.curve("\(edge).\(target).calibration", r.flow.calibrationShift[edge]?[target]),
                 ClaimMeasure.curve("\(edge).\(target).held_out", r.flow.heldOutShift[edge]?[target])]
            }
        }
    }

    static func conflictCount(_ r: AnalysisResults) -> Int { r.following.counts["overall"]?[1] ?? 0 }

    /// The standard error of an estimate from its 95% interval (NaN without one).
    static func standardError(_ e: Estimate) -> Double { (e.high - e.low) / (2 * 1.96) }

    /// The 95% lower bound of |a| − k·|b| for two estimates, their errors added in quadrature (as if
    /// independent: two targets are disjoint item groups; on one group the shifts are positively correlated
    /// and the bound is conservative).
    static func lowerBound(_ a: Estimate, minus k: Double, times b: Estimate) -> (value: Double, low: Double) {
        let value = abs(a.value) - k * abs(b.value)
        let se = (standardError(a) * standardError(a) + k * k * standardError(b) * standardError(b)).squareRoot()
        return (value, value - 1.96 * se)
    }

    /// Instruction anchors, selection corrected by splitting: the strongest (most negative) cue→instruction
    /// shift and the largest direct cue→last |shift| are each picked — edge, target, layer — on the calibration
    /// items, and measured on the held-out items. Holds when the held-out anchor shift has its CI below 0 and
    /// |anchor| − k·|direct| has a 95% lower bound above 0; directionally with k = 1.
    public static func anchors(_ r: AnalysisResults, thresholds t: ClaimThresholds = .standard) -> ClaimResult {
        let id = "anchors"
        let n = conflictCount(r)
        let edges = cueToInstruction + cueToLast
        guard cueToInstruction.contains(where: { r.flow.shift[$0] != nil }) else {
            return ClaimResult(id: id, verdict: .fails, statistic: .nan, low: .nan, high: .nan, threshold: .nan,
                               control: .nan, samples: n,
                               detail: "no cue→instruction knockout results (the prompts have no instruction or "
                                   + "cue spans)")
        }
        let measures = splitCurves(r, edges)
        guard let anchorCell = extreme(r.flow.calibrationShift, cueToInstruction, by: <),
              let directCell = extreme(r.flow.calibrationShift, cueToLast, by: { abs($0) > abs($1) }),
              let a = estimate(r.flow.heldOutShift, anchorCell), let d = estimate(r.flow.heldOutShift, directCell),
              ![a.value, a.low, a.high, d.value, d.low, d.high].contains(where: \.isNaN) else {
            return inconclusive(id, ["no calibration/held-out split of the knockout results, or a NaN held-out shift"],
                                statistic: .nan, threshold: .nan, control: .nan, samples: n,
                                detail: "the anchor and direct cells are picked on calibration, measured on held-out")
                .with(measures)
        }
        let ratio = lowerBound(a, minus: t.anchorsRatio, times: d), order = lowerBound(a, minus: 1, times: d)
        let below = a.value < 0 && a.high < 0
        let full = below && ratio.low > 0
        let directional = below && order.low > 0
        let calA = estimate(r.flow.calibrationShift, anchorCell), calD = estimate(r.flow.calibrationShift, directCell)
        return ClaimResult(
            id: id, verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
            statistic: a.value, low: a.low, high: a.high, threshold: -t.anchorsRatio * abs(d.value),
            control: abs(d.value), samples: a.count,
            detail: "picked on calibration: strongest cue→instruction shift at \(anchorCell) "
                + "(\(fmt(calA?.value ?? .nan))), largest direct |shift| at \(directCell) "
                + "(\(fmt(calD?.value ?? .nan))); held-out: \(a) vs direct \(d); |anchor| − "
                + "\(fmt(t.anchorsRatio))·|direct| = \(fmt(ratio.value)), 95% lower bound \(fmt(ratio.low)); "
                + "|anchor| − |direct| lower bound \(fmt(order.low))")
            .with([anchorCell.exact("anchor_cell", edges: edges), directCell.exact("direct_cell", edges: edges),
                   .estimate("anchor.calibration", calA), .estimate("direct.calibration", calD),
                   .estimate("anchor.held_out", a), .estimate("direct.held_out", d),
                   ClaimMeasure("ratio_difference", .continuous, [ratio.value, ratio.low]),
                   ClaimMeasure("order_difference", .continuous, [order.value, order.low])] + measures)
    }

    /// Shallow non-selective transfer, on the joint cue→instruction edge, selection corrected by splitting:
    /// its transfer band is picked on the calibration items (layers where either target's shift is ≥ 50% of
    /// the peak) and tested on the held-out ones: both targets hurt (CIs below 0) and alike — the difference of
    /// their band shifts has a 95% interval inside ±`nonSelectiveEquivalence` × their mean magnitude (an
    /// equivalence test, not a comparison of signs) — and the instruction tokens' attention does not depend on
    /// the instruction (mean |SI| ≤ threshold). Directionally: the same with the wider margin and |SI| bound.
    public static func shallowNonselective(_ r: AnalysisResults,
                                           thresholds t: ClaimThresholds = .standard) -> ClaimResult {
        let n = conflictCount(r)
        let id = "shallow-nonselective"
        let joint = jointCueToInstruction
        func curves(_ shift: [String: [String: [Estimate]]]) -> ([Estimate], [Estimate])? {
            guard let c = shift[joint], let image = c["image"], let text = c["text"],
                  image.count == r.layers, text.count == r.layers else { return nil }
            return (image, text)
        }
        guard curves(r.flow.shift) != nil else {
            return ClaimResult(id: id, verdict: .fails, statistic: .nan, low: .nan, high: .nan,
                               threshold: t.nonSelectiveSI,
                               control: .nan, samples: n,
                               detail: "no cues→instruction knockout results (the prompts have no "
                                       + "instruction or no cues)")
        }
        let measures = splitCurves(r, [joint])
            + [ClaimMeasure.curve("selectivity.instruction", r.routing.selectivity["instruction"])]
        guard let (calImage, calText) = curves(r.flow.calibrationShift),
              let (image, text) = curves(r.flow.heldOutShift) else {
            return inconclusive(id, ["no calibration/held-out split of the knockout results"], statistic: .nan,
                                threshold: t.nonSelectiveSI, control: .nan, samples: n,
                                detail: "the band is picked on calibration and tested on held-out").with(measures)
        }
        let peak = (calImage + calText).map(\.value).filter { !$0.isNaN }.min() ?? .nan
        guard peak < 0 else {
            return ClaimResult(id: id, verdict: .fails, statistic: .nan, low: .nan, high: .nan,
                               threshold: t.nonSelectiveSI,
                               control: .nan, samples: n,
                               detail: "knocking both cues out of the instruction tokens never lowers following on the "
                                   + "calibration items: there is no transfer band").with(measures)
        }
        // The band, on calibration: layers where either target's shift is ≥ 50% of the peak.
        let band = (0..<r.layers).filter { calImage[$0].value <= 0.5 * peak || calText[$0].value <= 0.5 * peak }
        func bandMean(_ curve: [Estimate]) -> (value: Double, high: Double, se: Double) {
            let values = band.map { curve[$0] }
            return (mean(values.map(\.value)), values.map(\.high).max() ?? .nan, mean(values.map(standardError)))
        }
        let i = bandMean(image), x = bandMean(text)
        guard ![i.value, i.high, i.se, x.value, x.high, x.se].contains(where: \.isNaN) else {
            return inconclusive(id, ["NaN held-out shift in the band \(band)"], statistic: .nan,
                                threshold: t.nonSelectiveSI, control: .nan, samples: n, detail: "").with(measures)
        }
        // Equivalence of the two targets: independent item groups, so the standard errors add in quadrature.
        let difference = i.value - x.value
        let se = (i.se * i.se + x.se * x.se).squareRoot()
        let (dLow, dHigh) = (difference - 1.96 * se, difference + 1.96 * se)
        let magnitude = (abs(i.value) + abs(x.value)) / 2
        let margin = t.nonSelectiveEquivalence * magnitude
        let marginDirectional = t.nonSelectiveEquivalenceDirectional * magnitude
        let alike = dLow >= -margin && dHigh <= margin
        let alikeDirectional = dLow >= -marginDirectional && dHigh <= marginDirectional
        let siBand = band.compactMap { r.routing.selectivity["instruction"]?[$0] }
        let meanSI = mean(siBand.map { abs($0.value) })
        // The band's SI with an interval (the mean of the layers' bounds: the layers share their items, so the
        // bounds are averaged, not narrowed), which must lie inside ±bound: an equivalence, not a point.
        let siLow = mean(siBand.map(\.low)), siHigh = mean(siBand.map(\.high))
        func siWithin(_ bound: Double) -> Bool { meanSI <= bound && siLow >= -bound && siHigh <= bound }
        // The selectivity index is a ratio of the instruction tokens' attention to image and to context: where
        // that attention is near zero the ratio is noise, not a reading.
        let masses = targets.flatMap { target in
            band.compactMap { r.routing.cueMass["instruction"]?[target]?[$0].value }
        }
        let bandMass = mean(masses)
        if !masses.isEmpty, !(bandMass >= Claims.Threshold.minimumCueMass) {
            return inconclusive(id, ["the instruction tokens' attention to the cues in the band \(band) is "
                                     + "\(fmt(bandMass)), below \(Claims.Threshold.minimumCueMass): their selectivity "
                                     + "index cannot be read"],
                                statistic: .nan, threshold: t.nonSelectiveSI, control: .nan, samples: n, detail: "")
                .with(measures + [ClaimMeasure("band_cue_mass", .continuous, [bandMass])])
        }
        let inFirstHalf = (band.max() ?? r.layers) < (r.layers + 1) / 2
        let bothHurt = i.value < 0 && x.value < 0 && i.high < 0 && x.high < 0
        let full = bothHurt && alike && siWithin(t.nonSelectiveSI) && inFirstHalf
        let directional = bothHurt && alikeDirectional && siWithin(t.nonSelectiveSIDirectional)
        let heldOutItems = band.first.map { image[$0].count + text[$0].count } ?? 0
        return ClaimResult(id: id, verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
                           statistic: meanSI, low: dLow, high: dHigh, threshold: t.nonSelectiveSI,
                           control: margin, samples: heldOutItems,
                           detail: "band layers \(band) on cues->instruction, picked on calibration "
                               + "(peak \(fmt(peak)); "
                               + "\(inFirstHalf ? "first half" : "not in the first half")); held-out mean shift "
                               + "follow-image \(fmt(i.value)), follow-text \(fmt(x.value)); difference "
                               + "\(fmt(difference)) [\(fmt(dLow)), \(fmt(dHigh))] \(alike ? "within" : "not within") "
                               + "±\(fmt(margin)) (directional ±\(fmt(marginDirectional))); "
                               + "mean |SI| \(fmt(meanSI)), SI interval "
                               + "[\(fmt(siLow)), \(fmt(siHigh))]")
            .with([ClaimMeasure("band", .exact, band.map(Double.init)),
                   ClaimMeasure("peak.calibration", .continuous, [peak]),
                   ClaimMeasure("band_shift.image", .continuous, [i.value, i.high, i.se]),
                   ClaimMeasure("band_shift.text", .continuous, [x.value, x.high, x.se]),
                   ClaimMeasure("difference", .continuous, [difference, dLow, dHigh]),
                   ClaimMeasure("margins", .continuous, [margin, marginDirectional]),
                   ClaimMeasure("si", .continuous, [meanSI, siLow, siHigh]),
                   ClaimMeasure("band_cue_mass", .continuous, [bandMass])] + measures)
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
                               detail: "no logit-lens readout at the instruction tokens (the prompts have no "
                                       + "instruction)")
        }
        let q = max(1, r.layers / 4)
        let deepLayers = Array(curve.suffix(q)), shallowLayers = Array(curve.prefix(q))
        let deep = mean(deepLayers.map(\.value)), shallow = mean(shallowLayers.map(\.value))
        let seDeep = mean(deepLayers.map(standardError)), seShallow = mean(shallowLayers.map(standardError))
        let riseLow = deep - shallow - 1.96 * (seDeep * seDeep + seShallow * seShallow).squareRoot()
        let rises = riseLow > 0
        // How much the anchors' readout says at all: the largest mean |s| over layers and targets.
        let scores = (r.lens.meanScore["instruction"] ?? [:]).values.flatMap { $0.map { abs($0.value) } }
            .filter { !$0.isNaN }
        let carries = (scores.max() ?? 0) > 1e-3
        let full = carries && deep >= t.deepAgreement && shallow <= t.shallowAgreementMax && rises
        let directional = carries && deep > shallow && rises
        let measures = [ClaimMeasure.curve("ldar.instruction", curve), .curve("ldar.last", r.lens.agreement["last"]),
                        ClaimMeasure("quarters", .continuous, [deep, seDeep, shallow, seShallow]),
                        ClaimMeasure("rise", .continuous, [deep - shallow, riseLow]),
                        ClaimMeasure("largest_mean_abs_score", .continuous, [scores.max() ?? 0])]
            + targets.map { ClaimMeasure.curve("score.instruction.\($0)", r.lens.meanScore["instruction"]?[$0]) }
        return ClaimResult(id: "deep-selective", verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
                           statistic: deep, low: deep - 1.96 * seDeep, high: deep + 1.96 * seDeep,
                           threshold: t.deepAgreement, control: shallow, samples: n,
                           detail: carries
                               ? "LDAR at the instruction tokens: deepest \(q) layers \(fmt(deep)), shallowest \(q) "
                                 + "\(fmt(shallow)); rise \(fmt(deep - shallow)), 95% lower bound "
                                 + "\(fmt(riseLow))\(rises ? "" : " (not above 0)")"
                               : "the instruction tokens' logit lens never tells the answers apart (largest mean |s| "
                                 + "\(fmt(scores.max() ?? 0))): they carry no decision")
            .with(measures)
    }

    /// Semantic inertia: the deep MLPs' total direct logit attribution to the following score. Holds when its
    /// 95% CI lies below 0 overall and for each instruction target; directionally when it does overall.
    public static func mlpInertia(_ r: AnalysisResults, thresholds t: ClaimThresholds = .standard) -> ClaimResult {
        let id = "mlp-inertia"
        let totals = r.attribution.deepMLPTotal
        let e = totals["overall"] ?? Estimate(value: .nan, low: .nan, high: .nan, count: 0)
        let perTarget = targets.map { totals[$0] ?? Estimate(value: .nan, low: .nan, high: .nan, count: 0) }
        func below(_ e: Estimate) -> Bool { e.value < 0 && e.high < 0 }
        let attn = r.attribution.deepAttentionTotal["overall"]?.value ?? .nan
        let measures = [ClaimMeasure.estimate("deep_mlp_total.overall", e)]
            + targets.map { ClaimMeasure.estimate("deep_mlp_total.\($0)", totals[$0]) }
            + [ClaimMeasure.estimate("deep_attention_total.overall", r.attribution.deepAttentionTotal["overall"]),
               ClaimMeasure("deep_start", .exact, [Double(r.attribution.deepStart)])]
            + targets.map { ClaimMeasure.curve("mlp_dla.\($0)", r.attribution.mlp[$0]) }
        let detail = "deep MLP DLA total (layers \(r.attribution.deepStart)–\(r.layers - 1)) \(e); "
            + zip(targets, perTarget).map { "follow-\($0) \($1)" }.joined(separator: ", ")
            + "; deep attention total \(fmt(attn))"
        guard ![e.value, e.low, e.high].contains(where: \.isNaN) else {
            return inconclusive(id, ["NaN deep MLP attribution (no conflict items?)"], statistic: e.value,
                                threshold: 0, control: attn, samples: e.count, detail: detail).with(measures)
        }
        let full = below(e) && perTarget.allSatisfy(below)
        let directional = below(e)
        return ClaimResult(id: id, verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
                           statistic: e.value, low: e.low, high: e.high, threshold: 0, control: attn, samples: e.count,
                           detail: detail).with(measures)
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
        let measures = headMeasures(r) + [
            ClaimMeasure("mfr", .continuous, [h.baselineMFR, h.blockedMFR, h.relativeDrop]),
            .estimate("score_shift", h.blockedScoreShift), ClaimMeasure("held_out", .exact, [Double(h.heldOutCount)]),
            .control("control", c), ClaimMeasure("random_drops", .continuous, h.randomRelativeDrops)]
        guard why.isEmpty else {
            return inconclusive("heads-blocking", why, statistic: h.relativeDrop, threshold: t.blockingDrop,
                                control: c.p95, samples: h.heldOutCount, detail: detail).with(measures)
        }
        let significant = c.pValue < t.significance
        let full = significant && h.relativeDrop >= t.blockingDrop
        let directional = significant && h.relativeDrop > 0
        return ClaimResult(id: "heads-blocking", verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
                           statistic: h.relativeDrop, low: .nan, high: .nan, threshold: t.blockingDrop, control: c.p95,
                           samples: h.heldOutCount, detail: detail).with(measures)
    }

    /// The top set and the random sets, as head ids (layer · heads per layer + head).
    static func headMeasures(_ r: AnalysisResults) -> [ClaimMeasure] {
        let h = r.interventions
        func ids(_ heads: [HeadIndex]) -> [Double] { heads.map { Double($0.layer * r.headsPerLayer + $0.head) } }
        return [ClaimMeasure("top_heads", .exact, ids(h.heads)),
                ClaimMeasure("random_set_heads", .exact, h.randomSets.flatMap(ids))]
    }

    public static func headsAmplification(_ r: AnalysisResults,
                                          thresholds t: ClaimThresholds = .standard) -> ClaimResult {
        let h = r.interventions, c = h.amplificationControl
        let alphas = Dictionary(grouping: h.randomAlphas, by: { $0 }).sorted { $0.key < $1.key }
            .map { "\($0.value.count) at ×\(fmt($0.key))" }.joined(separator: ", ")
        let topUp = h.extraConflictItems > 0
            ? " (\(h.extraFailedCount) of them among \(h.extraConflictItems) conflict items generated to top up the "
                + "held-out failures)"
            : ""
        let detail = "α = \(fmt(h.alpha)) (grid \(h.alphaGrid.map(fmt)), chosen on \(h.calibrationFailedCount) "
            + "calibration failures; random sets' α: \(alphas.isEmpty ? "-" : alphas)); fixed "
            + "\(fmt(h.amplifiedFixRate)) "
            + "of \(h.failedCount) failed items\(topUp); \(describe(c))"
        var why: [String] = []
        let minimum = Claims.Threshold.minimumFailed
        let search = h.extraConflictCap == 0
            ? "no more could be generated: the items are a fixed dataset, or the run's top-up was 0"
            : "after generating \(h.extraConflictItems) more conflict items (cap \(h.extraConflictCap))"
        if h.failedCount == 0 {
            why.append("no failed held-out conflict items to fix (the model follows every instruction; \(search))")
        } else if h.failedCount < minimum {
            why.append("\(h.failedCount) failed held-out conflict items, fewer than \(minimum) (\(search))")
        }
        why += randomSetShortfall(c, matching: h.randomSetMatching)
        if why.isEmpty && (h.amplifiedFixRate.isNaN || c.pValue.isNaN) {
            why.append("NaN statistic (fix rate \(fmt(h.amplifiedFixRate)), p \(fmt(c.pValue)))")
        }
        let measures = headMeasures(r) + [
            ClaimMeasure("alpha", .exact, [h.alpha]), ClaimMeasure("alpha_grid", .exact, h.alphaGrid),
            ClaimMeasure("failed", .exact, [Double(h.calibrationFailedCount), Double(h.failedCount),
                                            Double(h.extraConflictItems), Double(h.extraFailedCount),
                                            Double(h.extraConflictCap)]),
            ClaimMeasure("fix_rate", .continuous, [h.amplifiedFixRate]), .control("control", c),
            ClaimMeasure("random_alphas", .exact, h.randomAlphas),
            ClaimMeasure("random_fix_rates", .continuous, h.randomFixRates)]
        guard why.isEmpty else {
            return inconclusive("heads-amplification", why, statistic: h.amplifiedFixRate,
                                threshold: t.amplificationFix, control: c.p95, samples: h.failedCount, detail: detail)
                .with(measures)
        }
        let significant = c.pValue < t.significance
        let full = significant && h.amplifiedFixRate >= t.amplificationFix
        let directional = significant && h.amplifiedFixRate > 0
        return ClaimResult(id: "heads-amplification",
                           verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
                           statistic: h.amplifiedFixRate, low: .nan, high: .nan, threshold: t.amplificationFix,
                           control: c.p95, samples: h.failedCount, detail: detail).with(measures)
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
            if a.change.value > margin {
                text += ", a gain beyond the ±\(fmt(margin)) margin (ability changed, not lost)"
            }
            else if a.change.value < -margin { text += ", a loss beyond the ±\(fmt(margin)) margin" }
            return text
        }.joined(separator: "; ") + " (top heads blocked, held-out items)"
        var why: [String] = []
        let minimum = Claims.Threshold.minimumAbilityItems
        for kind in Heads.abilityKinds {
            let count = kinds.first { $0.kind == kind }?.count ?? 0
            if count < minimum { why.append("\(count) held-out \(kind) items, fewer than \(minimum)") }
        }
        if why.isEmpty,
           kinds.contains(where: { $0.change.value.isNaN || $0.change.low.isNaN || $0.change.high.isNaN }) {
            why.append("NaN accuracy change")
        }
        let measures = [ClaimMeasure("top_heads", .exact, headMeasures(r)[0].values)] + kinds.map { a in
            ClaimMeasure("ability.\(a.kind)", .continuous,
                         [Double(a.count), a.before, a.after, a.change.value, a.change.low, a.change.high])
        }
        guard why.isEmpty, let worst else {
            return inconclusive("specificity", why.isEmpty ? ["no accuracy change measured"] : why,
                                statistic: worst?.change.value ?? .nan, low: worst?.change.low ?? .nan,
                                high: worst?.change.high ?? .nan, threshold: margin, control: worst?.before ?? .nan,
                                samples: n, detail: detail).with(measures)
        }
        let full = kinds.allSatisfy { within($0, margin) }
        let directional = kinds.allSatisfy { within($0, t.specificityMaxChangeDirectional) }
        return ClaimResult(id: "specificity", verdict: full ? .holds : directional ? .holdsDirectionally : .fails,
                           statistic: worst.change.value, low: worst.change.low, high: worst.change.high,
                           threshold: margin, control: worst.before, samples: n, detail: detail).with(measures)
    }
}
