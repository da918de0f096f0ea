// Bar charts with error bars, and a reference distribution (e.g. ≥ 20 random head sets) drawn as a strip of
// points with a marked quantile next to the bars — for "blocking the top heads vs random head sets".
import ArbiterFormats

/// One bar of a `BarChart`.
public struct Bar: Sendable {
    public var label: String
    /// Non-finite values draw no bar (the label stays).
    public var value: Double
    /// Error-bar ends (both or neither; non-finite ends are skipped).
    public var low: Double?
    public var high: Double?
    /// Drawn in the highlight colour (vermillion) instead of blue.
    public var highlighted: Bool

    public init(label: String, value: Double, low: Double? = nil, high: Double? = nil, highlighted: Bool = false) {
        self.label = label; self.value = value; self.low = low; self.high = high; self.highlighted = highlighted
    }
}

/// A distribution drawn as a strip of points in its own slot after the bars, with a horizontal marker
/// (e.g. the 95th percentile) extended as a dashed line across the chart.
public struct ReferenceDistribution: Sendable {
    public var label: String
    public var values: [Double]
    /// The marked value; nil draws no marker.
    public var marker: Double?
    public var markerLabel: String

    public init(label: String, values: [Double], marker: Double?, markerLabel: String = "95th pct") {
        self.label = label; self.values = values; self.marker = marker; self.markerLabel = markerLabel
    }

    /// Quantile `q` of the finite `values` (NumPy's default linear interpolation); nil when none is finite.
    public static func quantile(of values: [Double], _ q: Double) -> Double? { ArbiterPlots.quantile(values, q) }

    /// A reference distribution marked at quantile `q` of `values` (NumPy's linear interpolation).
    public init(label: String, values: [Double], quantile q: Double, markerLabel: String? = nil) {
        let pct = fixed(q * 100, decimals: 1)
        self.init(label: label, values: values, marker: ReferenceDistribution.quantile(of: values, q),
                  markerLabel: markerLabel ?? "\(pct)th pct")
    }
}

/// A bar chart. `render` draws "no data" when nothing is finite.
public struct BarChart: Sendable {
    public var title: String
    public var yLabel: String
    public var bars: [Bar]
    public var reference: ReferenceDistribution?

    public init(title: String = "", yLabel: String = "", bars: [Bar], reference: ReferenceDistribution? = nil) {
        self.title = title; self.yLabel = yLabel; self.bars = bars; self.reference = reference
    }

    /// Renders the chart; `scale` multiplies text, margins and line widths. Throws `PlotError` for a bad
    /// image size or scale, or a bar with only one error-bar end.
    public func render(width: Int = 800, height: Int = 480, scale: Int = 1) throws(PlotError) -> RGBImage {
        try checkSize(width: width, height: height)
        try checkScale(scale)
        for b in bars where (b.low == nil) != (b.high == nil) {
            throw .invalidArgument("bar '\(b.label)' needs both low and high for an error bar, or neither")
        }
        var canvas = Canvas(width: width, height: height, unit: scale)
        let u = scale, du = Double(scale)
        let top = Furniture.title(title, on: &canvas)
        var all: [Double] = []
        for b in bars where b.value.isFinite {
            all.append(b.value)
            if let l = b.low, let h = b.high { all.append(l); all.append(h) }
        }
        if let reference {
            all += reference.values
            if let m = reference.marker { all.append(m) }
        }
        guard let (lo, hi) = finiteRange(all) else {
            canvas.noData(in: Rect(x: 0, y: top, width: width, height: height - top))
            return canvas.image
        }
        let slots = bars.count + (reference == nil ? 0 : 1)
        let bottom = (Furniture.tickLength + 6 + 3 * 11 + 6) * u
        let yAxis = Axis(lo: min(0, lo), hi: max(0, hi), maxTicks: max(2, (height - top - bottom) / (45 * u)),
                         nice: true,
                         pad: 0.03, keepZero: true)
        let left = (8 + (yLabel.isEmpty ? 0 : 17) + 4 + Furniture.tickLength) * u + Furniture.labelWidth(yAxis, unit: u)
        let markerLabel = reference?.marker == nil ? ""
            : truncated(reference?.markerLabel ?? "", maxWidth: width / 5, scale: u)
        let right = markerLabel.isEmpty ? 16 * u : 20 * u + canvas.textWidth(markerLabel)
        let plot = Rect(x: left, y: top, width: width - left - right, height: height - top - bottom)
        guard !plot.isEmpty else { return canvas.image }
        let slot = Double(plot.width) / Double(slots)
        func py(_ v: Double) -> Double { yAxis.map(v, from: Double(plot.maxY), to: Double(plot.y)) }
        func center(_ k: Int) -> Double { Double(plot.x) + (Double(k) + 0.5) * slot }

        Furniture.yAxis(yAxis, plot: plot, on: &canvas)
        let labelWidth = max(8 * u, Int(slot) - 6 * u)
        canvas.clipped(to: plot) { c in
            for (k, b) in bars.enumerated() where b.value.isFinite {
                let half = slot * 0.3
                let y0 = py(0), y1 = py(b.value)
                let rect = Rect(x: Int((center(k) - half).rounded()), y: Int(min(y0, y1).rounded()),
                                width: max(1, Int((2 * half).rounded())), height: max(1, Int(abs(y1 - y0).rounded())))
                c.fill(rect, b.highlighted ? Palette.vermillion : Palette.blue)
            }
        }
        if yAxis.lo < 0, yAxis.hi > 0 {
            canvas.hLine(plot.x, plot.maxX - 1, Int(py(0).rounded(.down)), .axis, thickness: u)
        }
        canvas.clipped(to: plot) { c in
            for (k, b) in bars.enumerated() where b.value.isFinite {
                guard let l = b.low, let h = b.high, l.isFinite, h.isFinite else { continue }
                let x = center(k), cap = min(8 * du, slot * 0.15)
                c.stroke([(x, py(l)), (x, py(h))], .black, lineWidth: 1.5 * du)
                c.stroke([(x - cap, py(l)), (x + cap, py(l))], .black, lineWidth: 1.5 * du)
                c.stroke([(x - cap, py(h)), (x + cap, py(h))], .black, lineWidth: 1.5 * du)
            }
            if let reference {
                let x = center(bars.count)
                if let m = reference.marker, m.isFinite {
                    c.stroke([(Double(plot.x), py(m)), (Double(plot.maxX), py(m))], .axis, lineWidth: du,
                             dash: [6 * du, 4 * du])
                }
                // Deterministic jitter: the golden-ratio sequence spreads points evenly across the strip.
                let finite = reference.values.filter(\.isFinite)
                for (i, v) in finite.enumerated() {
                    let jitter = (Double(i) * 0.6180339887498949).truncatingRemainder(dividingBy: 1) - 0.5
                    c.disc(x + jitter * slot * 0.5, py(v), radius: 3 * du, Color(110, 110, 110), alpha: 0.75)
                }
                if let m = reference.marker, m.isFinite {
                    c.stroke([(x - slot * 0.35, py(m)), (x + slot * 0.35, py(m))], .black, lineWidth: 3 * du)
                }
            }
        }
        if let reference, let m = reference.marker, m.isFinite, m >= yAxis.lo, m <= yAxis.hi {
            // Direct label at the end of the dashed marker line, outside the plot where no point can hide it.
            canvas.text(markerLabel, x: plot.maxX + 6 * u, y: Int(py(m).rounded(.down)), align: .left, valign: .middle)
        }
        canvas.fill(Rect(x: plot.x - u, y: plot.y, width: u, height: plot.height + u), .axis)
        canvas.fill(Rect(x: plot.x - u, y: plot.maxY, width: plot.width + u, height: u), .axis)
        var labels = bars.map(\.label)
        if let reference { labels.append(reference.label + " (n=\(reference.values.filter(\.isFinite).count))") }
        for (k, label) in labels.enumerated() {
            let x = Int(center(k).rounded(.down))
            for (line, text) in wrapped(label, maxWidth: labelWidth, maxLines: 3, scale: u).enumerated() {
                canvas.text(text, x: x, y: plot.maxY + (Furniture.tickLength + 4 + line * 11) * u, align: .center)
            }
        }
        if !yLabel.isEmpty {
            canvas.verticalText(truncated(yLabel, maxWidth: plot.height, scale: u), centerX: 12 * u, centerY: plot.midY)
        }
        return canvas.image
    }
}
