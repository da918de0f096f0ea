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

    /// Renders the chart. Throws `PlotError` for a non-positive or oversized image, mismatched array
    /// lengths, or a non-finite/empty `yRange`.
    public func render(width: Int = 800, height: Int = 480) throws(PlotError) -> RGBImage {
        try checkSize(width: width, height: height)
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
                throw .invalidArgument("series '\(s.name)' band has \(low.count)/\(high.count) values for \(s.y.count) points")
            }
        }
        if let r = yRange, !(r.lowerBound.isFinite && r.upperBound.isFinite) || r.lowerBound == r.upperBound {
            throw .invalidArgument("yRange \(r) must be finite and non-empty")
        }
        guard lineWidth.isFinite, lineWidth > 0 else { throw .invalidArgument("lineWidth \(lineWidth) must be positive") }

        var canvas = Canvas(width: width, height: height)
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
        let maxName = min(named.map { BitmapFont.width(of: $0.element.name) }.max() ?? 0, width * 3 / 10)
        let swatch = 22
        var right = 16, legendRows = 0
        var legendBottomHeight = 0
        if !named.isEmpty {
            switch legend {
            case .right: right = 18 + swatch + 6 + maxName + 10
            case .bottom:
                var rowWidth = 0
                legendRows = 1
                for (_, s) in named {
                    let w = swatch + 6 + min(BitmapFont.width(of: s.name), maxName) + 18
                    if rowWidth + w > width - 40, rowWidth > 0 { legendRows += 1; rowWidth = 0 }
                    rowWidth += w
                }
                legendBottomHeight = legendRows * 16 + 6
            case .none: break
            }
        }

        let bottom = Furniture.tickLength + 4 + 9 + (xLabel.isEmpty ? 8 : 8 + 9 + 8) + legendBottomHeight
        let plotHeightGuess = max(10, height - top - bottom)
        let yAxis = yRange.map { Axis(lo: $0.lowerBound, hi: $0.upperBound, maxTicks: max(2, plotHeightGuess / 45), nice: false) }
            ?? Axis(lo: dataLo, hi: dataHi, maxTicks: max(2, plotHeightGuess / 45), nice: true)
        let left = 8 + (yLabel.isEmpty ? 0 : 7 + 10) + Furniture.labelWidth(yAxis) + 4 + Furniture.tickLength
        let plot = Rect(x: left, y: top, width: width - left - right, height: height - top - bottom)
        let integral = xValues.allSatisfy { $0 == $0.rounded() }
        let xAxis = Axis(lo: xLo, hi: xHi, maxTicks: max(2, plot.width / 50 + 1), nice: false, integral: integral)
        let inset = 6.0
        func px(_ v: Double) -> Double { xAxis.map(v, from: Double(plot.x) + inset, to: Double(plot.maxX) - inset) }
        func py(_ v: Double) -> Double { yAxis.map(v, from: Double(plot.maxY) - inset, to: Double(plot.y) + inset) }

        canvas.clipped(to: plot) { c in
            for r in highlight where r.lowerBound.isFinite && r.upperBound.isFinite {
                let a = Int(px(r.lowerBound).rounded()), b = Int(px(r.upperBound).rounded())
                c.fill(Rect(x: min(a, b) - 3, y: plot.y, width: abs(b - a) + 6, height: plot.height), .highlight)
            }
        }
        Furniture.yAxis(yAxis, plot: plot, on: &canvas, inset: inset)
        Furniture.xAxis(xAxis, plot: plot, on: &canvas, inset: inset)
        canvas.clipped(to: plot) { c in
            if zeroLine, yAxis.lo < 0, yAxis.hi > 0 {
                c.hLine(plot.x, plot.maxX - 1, Int(py(0).rounded(.down)), .axis)
            }
            for (k, s) in series.enumerated() {
                let color = s.color ?? Palette.color(k)
                guard let low = s.low, let high = s.high else { continue }
                for run in runs(xs, low, high) {
                    if run.count == 1 {
                        let i = run[0]
                        c.stroke([(px(xs[i]), py(low[i])), (px(xs[i]), py(high[i]))], color, lineWidth: 3, alpha: 0.25)
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
                        for p in points { c.disc(p.0, p.1, radius: lineWidth + 1, color) }
                    }
                    if points.count > 1 {
                        c.stroke(points, color, lineWidth: lineWidth,
                                 dash: s.dashed ? [4 * lineWidth, 3 * lineWidth] : nil)
                    }
                }
            }
        }
        canvas.vLine(plot.x - 1, plot.y, plot.maxY, .axis)
        canvas.hLine(plot.x - 1, plot.maxX - 1, plot.maxY, .axis)

        if !xLabel.isEmpty {
            canvas.text(truncated(xLabel, maxWidth: plot.width), x: plot.midX,
                        y: plot.maxY + Furniture.tickLength + 4 + 9 + 8, align: .center)
        }
        if !yLabel.isEmpty {
            canvas.verticalText(truncated(yLabel, maxWidth: plot.height), centerX: 12, centerY: plot.midY)
        }

        // Legend.
        func entry(_ k: Int, _ s: Series, x: Int, y: Int) {
            let color = s.color ?? Palette.color(k)
            if s.low != nil { canvas.fill(Rect(x: x, y: y - 5, width: swatch, height: 11), color, alpha: 0.2) }
            canvas.stroke([(Double(x) + 1, Double(y) + 0.5), (Double(x + swatch) - 1, Double(y) + 0.5)], color,
                          lineWidth: lineWidth, dash: s.dashed ? [4 * lineWidth, 3 * lineWidth] : nil)
            canvas.text(truncated(s.name, maxWidth: maxName), x: x + swatch + 6, y: y, align: .left, valign: .middle)
        }
        switch legend {
        case .right:
            var y = plot.y + 8
            for (k, s) in named where y < height - 8 {
                entry(k, s, x: plot.maxX + 18, y: y)
                y += 16
            }
        case .bottom:
            var x = 20, y = height - legendBottomHeight + 6
            for (k, s) in named {
                let w = swatch + 6 + min(BitmapFont.width(of: s.name), maxName) + 18
                if x + w > width - 20, x > 20 { x = 20; y += 16 }
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
