// Example charts shaped like Arbiter's reports, shared by the tests and the sample-writing test.
import ArbiterPlots
import Foundation

enum Samples {
    static let edgeKinds = ["image→last", "text→last", "instr→last", "image→instr", "text→instr", "image→text", "last→last"]

    /// Knockout shift curves for two conditions, with confidence bands, a NaN gap and a highlighted range.
    static var lineChart: LineChart {
        let layers = (0..<32).map(Double.init)
        func curve(_ phase: Double, _ amp: Double) -> [Double] {
            layers.map { amp * tanh(($0 - phase) / 6) * exp(-($0 - 16) * ($0 - 16) / 200) }
        }
        var image = curve(10, 0.6)
        image[20] = .nan
        let text = curve(14, -0.35)
        return LineChart(
            title: "Knockout shift by layer (follow-image vs follow-text)",
            xLabel: "layer", yLabel: "Δ logit diff (±95% CI)", x: layers,
            series: [
                Series(name: "follow-image", y: image, low: image.map { $0 - 0.08 }, high: image.map { $0 + 0.08 }),
                Series(name: "follow-text", y: text, low: text.map { $0 - 0.05 }, high: text.map { $0 + 0.05 }),
                Series(name: "random heads", y: layers.map { 0.02 * sin($0 / 5) }, dashed: true),
            ],
            highlight: [12...18])
    }

    /// A 32 × 32 layer × head heatmap with the top cells marked.
    static var heatmap: Heatmap {
        var values: [[Double]] = []
        for l in 0..<32 {
            values.append((0..<32).map { h in
                let a = Double(l * 7 + h * 13 % 17)
                return sin(a / 9) * Double(l) / 32 - cos(Double(h) / 11) * 0.2
            })
        }
        values[3][4] = .nan
        let flat = values.enumerated().flatMap { l, row in row.enumerated().map { (l, $0.offset, $0.element) } }
            .filter { $0.2.isFinite }.sorted { $0.2 > $1.2 }
        let top = flat.prefix(flat.count / 20).map { Heatmap.Cell(row: $0.0, column: $0.1) }
        return Heatmap(title: "Head attribution (top 5% outlined)", rowLabel: "layer", columnLabel: "head",
                       values: values, marked: top, valueLabel: "attribution")
    }

    /// Top heads vs random head sets.
    static var barChart: BarChart {
        let random = (0..<24).map { 0.05 * sin(Double($0) * 1.7) + 0.02 * Double($0 % 5) }
        return BarChart(
            title: "Blocking heads: change in follow-text rate",
            yLabel: "Δ follow-text rate",
            bars: [Bar(label: "top 5% heads", value: -0.32, low: -0.4, high: -0.25, highlighted: true),
                   Bar(label: "top 5% heads (amplified ×2)", value: 0.18, low: 0.1, high: 0.26),
                   Bar(label: "bottom heads", value: 0.01, low: -0.03, high: 0.05)],
            reference: ReferenceDistribution(label: "random head sets", values: random, quantile: 0.95))
    }

    /// One small panel per edge kind.
    static var panels: [LineChart] {
        edgeKinds.enumerated().map { k, kind in
            let y = (0..<32).map { l in 0.3 * tanh(Double(l - 4 * k) / 5) }
            return LineChart(title: kind, xLabel: "layer", yLabel: "shift", series: [Series(name: kind, y: y)],
                             legend: .none)
        }
    }
}
