// Line charts: several series over a shared x (e.g. layers), each with an optional shaded confidence band,
// plus a legend, ticks, axis labels, a title, a zero line and highlighted x-ranges.
import ArbiterFormats

/// One line of a `LineChart`.
public struct Series: Sendable {
    public var name: String
    /// One value per x; non-finite values leave gaps.
    public var y: [Double]
    /// Lower and upper edges of the shaded band (both or neither), one per x; non-finite values leave gaps.
    public var low: [Double]?
    public var high: [Double]?
    public var dashed: Bool
    /// nil: the palette colour of the series' position.
    public var color: Color?

    public init(name: String, y: [Double], low: [Double]? = nil, high: [Double]? = nil, dashed: Bool = false,
                color: Color? = nil) {
        self.name = name; self.y = y; self.low = low; self.high = high; self.dashed = dashed; self.color = color
    }
}

/// Where a chart's legend goes.
public enum LegendPosition: Sendable {
    case right, bottom, none
}

/// A line chart. `render` draws "no data" when no series has a finite point.
public struct LineChart: Sendable {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    /// Shared x values; empty means 0, 1, 2, ….
    public var x: [Double]
    public var series: [Series]
    /// X-ranges shaded behind the data (e.g. the layers a claim is about).
    public var highlight: [ClosedRange<Double>]
    /// Fixed y-range (data outside is clipped); nil fits the data.
    public var yRange: ClosedRange<Double>?
    /// Draw a horizontal line at y = 0 when 0 is in range.
    public var zeroLine: Bool
    public var legend: LegendPosition
    /// Dots at every data point.
    public var markers: Bool
    public var lineWidth: Double

    public init(title: String = "", xLabel: String = "", yLabel: String = "", x: [Double] = [],
                series: [Series], highlight: [ClosedRange<Double>] = [], yRange: ClosedRange<Double>? = nil,
                zeroLine: Bool = true, legend: LegendPosition = .right, markers: Bool = false, lineWidth: Double = 2) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.x = x; self.series = series
        self.highlight = highlight; self.yRange = yRange; self.zeroLine = zeroLine; self.legend = legend
        self.markers = markers; self.lineWidth = lineWidth
    }

    /// Renders the chart. `scale` multiplies text, margins and line widths (e.g. 1600×960 at scale 2 looks
    /// like 800×480 at scale 1). Throws `PlotError` for a non-positive or oversized image, a scale outside
    /// 1...16, mismatched array lengths, or a non-finite/empty `yRange`.
    public func render(width: Int = 800, height: Int = 480, scale: Int = 1) throws(PlotError) -> RGBImage {
        try checkSize(width: width, height: height)
        try checkScale(scale)
        let count = x.isEmpty ? (series.map(\.y.count).max() ?? 0) : x.count
        let xs = x.isEmpty ? (0..<count).map(Double.init) : x
        for s in series {
            guard x.isEmpty || s.y.count == x.count else {
                throw .invalidArgument("series '\(s.name)' has \(s.y.count) values for \(x.count) x values")
            }
            guard (s.low == nil) == (s.high == nil) else {
                throw .invalidArgument("series '\(s.name)' needs both low and high for a band, or neither")
            }
            if let low = s.low, let high = s.high, low.count != s.y.count || high.count != s.y.count {
                throw .invalidArgument("series '\(s.name)' band has \(low.count)/\(high.count) values for "
                                       + "\(s.y.count) points")
            }
        }
        if let r = yRange, !(r.lowerBound.isFinite && r.upperBound.isFinite) || r.lowerBound == r.upperBound {
            throw .invalidArgument("yRange \(r) must be finite and non-empty")
        }
        guard lineWidth.isFinite, lineWidth > 0 else {
            throw .invalidArgument("lineWidth \(lineWidth) must be positive")
        }

        var canvas = Canvas(width: width, height: height, unit: scale)
        let u = scale, lw = lineWidth * Double(scale)
        let top = Furniture.title(title, on: &canvas)

        // Data ranges over points with a finite x.
        var xValues: [Double] = [], yValues: [Double] = []
        for s in series {
            for i in 0..<min(s.y.count, xs.count) where xs[i].isFinite {
                if s.y[i].isFinite { xValues.append(xs[i]); yValues.append(s.y[i]) }
                if let low = s.low, let high = s.high { yValues.append(low[i]); yValues.append(high[i]) }
            }
        }
        guard let (xLo, xHi) = finiteRange(xValues), let (dataLo, dataHi) = finiteRange(yValues) else {
            canvas.noData(in: Rect(x: 0, y: top, width: width, height: height - top))
            return canvas.image
        }

        // Legend entries and the space they take.
        let named = series.enumerated().filter { !$0.element.name.isEmpty }
        let maxName = min(named.map { canvas.textWidth($0.element.name) }.max() ?? 0, width * 3 / 10)
        let swatch = 22 * u
        var right = 16 * u, legendRows = 0
        var legendBottomHeight = 0
        if !named.isEmpty {
            switch legend {
            case .right: right = (18 + 6 + 10) * u + swatch + maxName
            case .bottom:
                var rowWidth = 0
                legendRows = 1
                for (_, s) in named {
                    let w = swatch + min(canvas.textWidth(s.name), maxName) + 24 * u
                    if rowWidth + w > width - 40 * u, rowWidth > 0 { legendRows += 1; rowWidth = 0 }
                    rowWidth += w
                }
                legendBottomHeight = (legendRows * 16 + 6) * u
            case .none: break
            }
        }

        let bottom = (Furniture.tickLength + 4 + 9 + (xLabel.isEmpty ? 8 : 8 + 9 + 8)) * u + legendBottomHeight
        let plotHeightGuess = max(10, height - top - bottom)
        let yTicks = max(2, plotHeightGuess / (45 * u))
        let yAxis = yRange.map { Axis(lo: $0.lowerBound, hi: $0.upperBound, maxTicks: yTicks, nice: false) }
            ?? Axis(lo: dataLo, hi: dataHi, maxTicks: yTicks, nice: true)
        let left = (8 + (yLabel.isEmpty ? 0 : 7 + 10) + 4 + Furniture.tickLength) * u
            + Furniture.labelWidth(yAxis, unit: u)
        let plot = Rect(x: left, y: top, width: width - left - right, height: height - top - bottom)
        let integral = xValues.allSatisfy { $0 == $0.rounded() }
        let xAxis = Axis(lo: xLo, hi: xHi, maxTicks: max(2, plot.width / (50 * u) + 1), nice: false,
                         integral: integral)
        let inset = 6.0 * Double(u)
        func px(_ v: Double) -> Double { xAxis.map(v, from: Double(plot.x) + inset, to: Double(plot.maxX) - inset) }
        func py(_ v: Double) -> Double { yAxis.map(v, from: Double(plot.maxY) - inset, to: Double(plot.y) + inset) }

        canvas.clipped(to: plot) { c in
            for r in highlight where r.lowerBound.isFinite && r.upperBound.isFinite {
                let a = Int(px(r.lowerBound).rounded()), b = Int(px(r.upperBound).rounded())
                c.fill(Rect(x: min(a, b) - 3 * u, y: plot.y, width: abs(b - a) + 6 * u, height: plot.height),
                       .highlight)
            }
        }
        Furniture.yAxis(yAxis, plot: plot, on: &canvas, inset: inset)
        Furniture.xAxis(xAxis, plot: plot, on: &canvas, inset: inset)
        canvas.clipped(to: plot) { c in
            if zeroLine, yAxis.lo < 0, yAxis.hi > 0 {
                c.hLine(plot.x, plot.maxX - 1, Int(py(0).rounded(.down)), .axis, thickness: u)
            }
            for (k, s) in series.enumerated() {
                let color = s.color ?? Palette.color(k)
                guard let low = s.low, let high = s.high else { continue }
                for run in runs(xs, low, high) {
                    if run.count == 1 {
                        let i = run[0]
                        c.stroke([(px(xs[i]), py(low[i])), (px(xs[i]), py(high[i]))], color, lineWidth: 3 * Double(u),
                                 alpha: 0.25)
                        continue
                    }
                    let upper = run.map { (px(xs[$0]), py(high[$0])) }
                    let lower = run.reversed().map { (px(xs[$0]), py(low[$0])) }
                    c.fillPolygon(upper + lower, color, alpha: 0.2)
                }
            }
            for (k, s) in series.enumerated() {
                let color = s.color ?? Palette.color(k)
                for run in runs(xs, s.y) {
                    let points = run.map { (px(xs[$0]), py(s.y[$0])) }
                    if points.count == 1 || markers {
                        for p in points { c.disc(p.0, p.1, radius: lw + Double(u), color) }
                    }
                    if points.count > 1 {
                        c.stroke(points, color, lineWidth: lw, dash: s.dashed ? [4 * lw, 3 * lw] : nil)
                    }
                }
            }
        }
        canvas.fill(Rect(x: plot.x - u, y: plot.y, width: u, height: plot.height + u), .axis)
        canvas.fill(Rect(x: plot.x - u, y: plot.maxY, width: plot.width + u, height: u), .axis)

        if !xLabel.isEmpty {
            canvas.text(truncated(xLabel, maxWidth: plot.width, scale: u), x: plot.midX,
                        y: plot.maxY + (Furniture.tickLength + 4 + 9 + 8) * u, align: .center)
        }
        if !yLabel.isEmpty {
            canvas.verticalText(truncated(yLabel, maxWidth: plot.height, scale: u), centerX: 12 * u, centerY: plot.midY)
        }

        // Legend.
        func entry(_ k: Int, _ s: Series, x: Int, y: Int) {
            let color = s.color ?? Palette.color(k)
            if s.low != nil { canvas.fill(Rect(x: x, y: y - 5 * u, width: swatch, height: 11 * u), color, alpha: 0.2) }
            let mid = Double(y) + (u == 1 ? 0.5 : 0)
            canvas.stroke([(Double(x + u), mid), (Double(x + swatch - u), mid)], color,
                          lineWidth: lw, dash: s.dashed ? [4 * lw, 3 * lw] : nil)
            canvas.text(truncated(s.name, maxWidth: maxName, scale: u), x: x + swatch + 6 * u, y: y, align: .left,
                        valign: .middle)
        }
        switch legend {
        case .right:
            var y = plot.y + 8 * u
            for (k, s) in named where y < height - 8 * u {
                entry(k, s, x: plot.maxX + 18 * u, y: y)
                y += 16 * u
            }
        case .bottom:
            var x = 20 * u, y = height - legendBottomHeight + 6 * u
            for (k, s) in named {
                let w = swatch + min(canvas.textWidth(s.name), maxName) + 24 * u
                if x + w > width - 20 * u, x > 20 * u { x = 20 * u; y += 16 * u }
                entry(k, s, x: x, y: y)
                x += w
            }
        case .none: break
        }
        return canvas.image
    }
}

/// Index runs where `xs` and every array in `values` are finite (each array may be shorter than `xs`).
func runs(_ xs: [Double], _ values: [Double]...) -> [[Int]] {
    let n = values.reduce(xs.count) { min($0, $1.count) }
    var result: [[Int]] = [], current: [Int] = []
    for i in 0..<n {
        if xs[i].isFinite && values.allSatisfy({ $0[i].isFinite }) {
            current.append(i)
        } else if !current.isEmpty {
            result.append(current); current = []
        }
    }
    if !current.isEmpty { result.append(current) }
    return result
}
