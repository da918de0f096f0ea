// The knockout claims (anchors, shallow-nonselective) and mlp-inertia on doctored analysis results: the extreme
// is picked on the calibration items and tested on the held-out ones, directional verdicts rest on intervals,
// and a selectivity index read from attention near zero is inconclusive rather than a number.
@testable import ArbiterAnalyses
import ArbiterClaims
import Testing

@Suite("Knockout claims and mlp-inertia on doctored results")
struct FlowClaimTests {
    static func flat(_ value: Double, layers: Int, half: Double = 0.02, count: Int = 100) -> [Estimate] {
        (0..<layers).map { _ in Estimate(value: value, low: value - half, high: value + half, count: count) }
    }

    /// `curve` with layer `layer` set to `value`.
    static func dip(_ value: Double, at layer: Int, layers: Int) -> [Estimate] {
        var c = flat(0, layers: layers)
        c[layer] = Estimate(value: value, low: value - 0.05, high: value + 0.05, count: 100)
        return c
    }

    /// Results with `layers` layers: the joint cue→instruction edge dips to `calibration` / `heldOut` at layer 1
    /// for both targets, the direct cue→last edge stays at `direct`, the instruction tokens attend with
    /// `cueMass` to the cues and SI 0.
    static func results(calibration: Double, heldOut: Double, direct: Double = 0.1, cueMass: Double = 0.5,
                        layers: Int = 8) -> AnalysisResults {
        var r = SyntheticResults.results(seed: 5)
        r.layers = layers
        func edges(_ anchor: Double) -> [String: [String: [Estimate]]] {
            ["cues->instruction": ["image": dip(anchor, at: 1, layers: layers),
                                   "text": dip(anchor, at: 1, layers: layers)],
             "cues->last": ["image": flat(direct, layers: layers), "text": flat(direct, layers: layers)]]
        }
        r.flow = InformationFlowResult(window: 1, shift: edges((calibration + heldOut) / 2),
                                       calibrationShift: edges(calibration), heldOutShift: edges(heldOut), seed: 1)
        r.routing = AttentionRoutingResult(
            imageShare: [:],
            cueMass: ["instruction": ["image": flat(cueMass, layers: layers), "text": flat(cueMass, layers: layers)]],
            selectivity: ["instruction": flat(0, layers: layers, half: 0.01)], seed: 1)
        return r
    }

    @Test("anchors holds on a held-out effect far beyond k × direct; directionally between 1× and k×")
    func anchorsIntervals() {
        let strong = ClaimStatistics.anchors(Self.results(calibration: -1, heldOut: -1))
        #expect(strong.verdict == .holds, "\(strong.summary)")
        #expect(strong.measures.contains { $0.name == "anchor_cell" && $0.values == [0, 0, 1] })
        // |a| = 0.18 against |d| = 0.1: beyond 1× but not 2×, with intervals that separate it from 1×.
        let between = ClaimStatistics.anchors(Self.results(calibration: -1, heldOut: -0.18, direct: 0.1))
        #expect(between.verdict == .holdsDirectionally, "\(between.summary)")
    }

    @Test("""
          a trial run (--minimum-per-target below 4) with fewer than 8 items of a target: the split claims are \
          inconclusive, their statistics kept; the same numbers at the default minimum decide
          """)
    func trialRunUndecided() {
        var r = Self.results(calibration: -1, heldOut: -1)
        r.following.counts["image"] = [2, 3]
        r.following.counts["text"] = [9, 9]
        let decided = ClaimStatistics.evaluate(r)
        #expect(decided.first { $0.id == "anchors" }?.verdict == .holds)
        r.configuration.minimumPerTarget = 1
        let trial = ClaimStatistics.evaluate(r)
        for id in ["anchors", "shallow-nonselective", "deep-selective", "mlp-inertia"] {
            let c = trial.first { $0.id == id }!, before = decided.first { $0.id == id }!
            #expect(c.verdict == .inconclusive, "\(id): \(c.summary)")
            #expect(c.detail.contains("3 conflict items instructed to follow the image, fewer than 8 (4 per split)")
                    && !c.detail.contains("follow the text"), "\(c.detail)")
            #expect(c.statistic.bitPattern == before.statistic.bitPattern
                    && c.measures.map(\.name) == before.measures.map(\.name))
        }
        // The head claims keep their own minimums, so they are as before.
        for id in ["heads-blocking", "heads-amplification", "specificity"] {
            #expect(trial.first { $0.id == id }?.verdict == decided.first { $0.id == id }?.verdict, "\(id)")
        }
        // Enough items of both targets: a lowered minimum changes nothing.
        r.following.counts["image"] = [8, 8]
        #expect(ClaimStatistics.evaluate(r).map(\.verdict) == decided.map(\.verdict))
    }

    @Test("anchors: an extreme found on calibration that is absent on held-out does not hold")
    func anchorsSelectionCorrected() {
        // On all items (the average) the dip is −0.5, enough for the v2 test; the held-out half shows nothing.
        let r = Self.results(calibration: -1, heldOut: 0)
        let c = ClaimStatistics.anchors(r)
        #expect(c.verdict == .fails, "\(c.summary)")
        #expect(c.statistic == 0)
    }

    @Test("shallow-nonselective: the band comes from calibration; held-out shifts decide")
    func shallowBandFromCalibration() {
        #expect(ClaimStatistics.shallowNonselective(Self.results(calibration: -1, heldOut: -1)).verdict == .holds)
        let c = ClaimStatistics.shallowNonselective(Self.results(calibration: -1, heldOut: 0))
        #expect(c.verdict == .fails, "\(c.summary)")
        #expect(c.measures.contains { $0.name == "band" && $0.values == [1] })
    }

    @Test("shallow-nonselective: a small mean SI whose interval reaches past ±0.10 is not non-selective enough")
    func shallowSIInterval() {
        var r = Self.results(calibration: -1, heldOut: -1)
        r.routing.selectivity["instruction"] = Self.flat(0.05, layers: 8, half: 0.1)
        let c = ClaimStatistics.shallowNonselective(r)
        #expect(c.verdict == .holdsDirectionally, "\(c.summary)")
        r.routing.selectivity["instruction"] = Self.flat(0.05, layers: 8, half: 0.2)
        #expect(ClaimStatistics.shallowNonselective(r).verdict == .fails)
    }

    @Test("shallow-nonselective is inconclusive when the anchors barely attend to the cues (SI unreadable)")
    func shallowCueMassGuard() {
        let c = ClaimStatistics.shallowNonselective(Self.results(calibration: -1, heldOut: -1, cueMass: 1e-8))
        #expect(c.verdict == .inconclusive && c.detail.contains("selectivity index cannot be read"), "\(c.summary)")
    }

    @Test("mlp-inertia holds when every target's CI is below 0, directionally on the overall CI alone")
    func mlpInertiaPerTarget() {
        var r = SyntheticResults.results(seed: 2)
        func e(_ v: Double) -> Estimate { Estimate(value: v, low: v - 0.1, high: v + 0.1, count: 50) }
        r.attribution.deepMLPTotal = ["overall": e(-0.5), "image": e(-0.5), "text": e(-0.5)]
        #expect(ClaimStatistics.mlpInertia(r).verdict == .holds)
        r.attribution.deepMLPTotal = ["overall": e(-0.5), "image": e(-1.0), "text": e(0.05)]
        #expect(ClaimStatistics.mlpInertia(r).verdict == .holdsDirectionally)
        r.attribution.deepMLPTotal = ["overall": e(-0.05), "image": e(-1.0), "text": e(0.05)]
        #expect(ClaimStatistics.mlpInertia(r).verdict == .fails)
        r.attribution.deepMLPTotal = ["overall": Estimate(value: .nan, low: .nan, high: .nan, count: 0)]
        #expect(ClaimStatistics.mlpInertia(r).verdict == .inconclusive)
    }
}
