// Plots of the verify report, drawn with ArbiterPlots: knockout shift curves per edge kind and target,
// routing selectivity, logit-lens agreement, attention vs MLP attribution by layer, the layer × head map of
// causal head scores with the top set marked, and blocking/amplification against the random head sets.
import ArbiterAnalyses
import ArbiterClaims
import ArbiterFormats
import ArbiterInterventions
import ArbiterPlots
import Foundation

enum ReportPlots {
    /// Writes the report's PNGs into `folder`; returns (path relative to the report folder, caption) pairs.
    static func write(_ all: [VerifyReport.Entry], to folder: URL) throws -> [(String, String)] {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var out: [(String, String)] = []
        func save(_ image: RGBImage, _ name: String, _ caption: String) throws {
            try PNGImage.write(image, to: folder.appendingPathComponent(name))
            out.append(("plots/\(name)", caption))
        }
        for (r, _) in all {
            let m = r.model
            let x = (0..<r.layers).map(Double.init)
            func series(_ name: String, _ e: [Estimate]?, dashed: Bool = false) -> Series {
                let e = e ?? []
                return Series(name: name, y: e.map(\.value), low: e.map(\.low), high: e.map(\.high), dashed: dashed)
            }
            // 1. Knockout shift curves: one panel per edge kind, both targets.
            var panels: [RGBImage] = []
            for edge in FlowEdge.paperEdges.map(\.description) {
                let byTarget = r.flow.shift[edge] ?? [:]
                let chart = LineChart(title: edge, xLabel: "layer", yLabel: "shift I(l)", x: x,
                                      series: [series("follow-image", byTarget["image"]),
                                               series("follow-text", byTarget["text"], dashed: true)])
                panels.append(try chart.render(width: 420, height: 300))
            }
            try save(try Figure.grid(panels, columns: 3), "\(m)-knockout.png",
                     "\(m): knockout shift per layer (window \(r.flow.window)), by edge kind and instruction target")
            // 2. Routing selectivity.
            let routing = LineChart(title: "attention routing selectivity (image share, follow-image minus "
                                           + "follow-text)",
                                    xLabel: "layer", yLabel: "selectivity index", x: x,
                                    series: [series("instruction tokens", r.routing.selectivity["instruction"]),
                                             series("last position", r.routing.selectivity["last"], dashed: true)])
            try save(try routing.render(), "\(m)-selectivity.png", "\(m): attention-routing selectivity by layer")
            // 3. Logit lens.
            let lens = LineChart(title: "logit-lens decision agreement with the final answer (LDAR)", xLabel: "layer",
                                 yLabel: "agreement", x: x,
                                 series: [series("instruction anchors", r.lens.agreement["instruction"]),
                                          series("last position", r.lens.agreement["last"], dashed: true)],
                                 yRange: 0...1, zeroLine: false)
            try save(try lens.render(), "\(m)-logit-lens.png", "\(m): logit-lens agreement by layer")
            // 4. Attribution.
            let attribution = LineChart(title: "direct logit attribution to the following score s", xLabel: "layer",
                                        yLabel: "DLA", x: x,
                                        series: [series("attention", r.attribution.attention["overall"]),
                                                 series("MLP", r.attribution.mlp["overall"], dashed: true)],
                                        highlight: [Double(r.attribution.deepStart)...Double(r.layers - 1)])
            try save(try attribution.render(), "\(m)-attribution.png",
                     "\(m): attention vs MLP attribution by layer (deep half shaded)")
            // 5. Head scores.
            let top = r.interventions.heads
            let heatmap = Heatmap(title: "causal head score (mean drop of s when blocked); top \(top.count) outlined",
                                  rowLabel: "layer", columnLabel: "head", values: r.ranking.causal,
                                  marked: top.map { Heatmap.Cell(row: $0.layer, column: $0.head) },
                                  valueLabel: "s drop")
            try save(try heatmap.render(), "\(m)-heads.png", "\(m): layer × head causal scores, top 5% marked")
            // 6. Blocking and amplification vs random sets.
            let h = r.interventions
            // Titles short enough for half a figure; the p-values are the claims' tests.
            let blocking = BarChart(title: "MFR drop, \(top.count) heads blocked (p = "
                                           + "\(VerifyReport.f(h.blockingControl.pValue)))",
                                    yLabel: "relative drop",
                                    bars: [Bar(label: "top heads", value: h.relativeDrop, highlighted: true),
                                           Bar(label: "paper (~0.6)", value: Claims.Threshold.blockingDrop)],
                                    reference: ReferenceDistribution(label: "random sets",
                                                                     values: h.randomRelativeDrops.filter { !$0.isNaN },
                                                                     quantile: RandomSetControl.percentile))
            let amplification = BarChart(title: "failures fixed at x\(h.alpha) (p = "
                                                + "\(VerifyReport.f(h.amplificationControl.pValue)))",
                                         yLabel: "fix rate",
                                         bars: [Bar(label: "top heads", value: h.amplifiedFixRate, highlighted: true),
                                                Bar(label: "paper (~0.6)", value: Claims.Threshold.amplificationFix)],
                                         reference: ReferenceDistribution(label: "random sets",
                                                                          values: h.randomFixRates.filter { !$0.isNaN },
                                                                          quantile: RandomSetControl.percentile))
            try save(try Figure.grid([try blocking.render(width: 560, height: 400),
                                      try amplification.render(width: 560, height: 400)],
                                     columns: 2),
                     "\(m)-head-interventions.png", "\(m): blocking and amplifying the top heads vs random head sets")
        }
        return out
    }
}
