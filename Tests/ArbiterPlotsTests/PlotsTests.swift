import ArbiterFormats
@testable import ArbiterPlots
import Foundation
import Testing

/// Pixels of `image` inside `rect` (x, y, width, height) that differ from white.
func inkCount(_ image: RGBImage, x: Int, y: Int, width: Int, height: Int) -> Int {
    var n = 0
    for yy in y..<(y + height) { for xx in x..<(x + width) where image.pixel(x: xx, y: yy) != (255, 255, 255) { n += 1 } }
    return n
}

/// Pixels of `image` exactly equal to `color`.
func count(_ image: RGBImage, _ color: Color) -> Int {
    var n = 0
    for i in 0..<(image.width * image.height)
    where image.pixels[3 * i] == color.red && image.pixels[3 * i + 1] == color.green && image.pixels[3 * i + 2] == color.blue {
        n += 1
    }
    return n
}

/// Pixels with luminance below `threshold` in the central region (a quarter of each side around the centre).
func darkInCentre(_ image: RGBImage, threshold: Int = 160) -> Int {
    var n = 0
    for y in (image.height * 3 / 8)..<(image.height * 5 / 8) {
        for x in (image.width / 4)..<(image.width * 3 / 4) {
            let (r, g, b) = image.pixel(x: x, y: y)
            if (Int(r) + Int(g) + Int(b)) / 3 < threshold { n += 1 }
        }
    }
    return n
}

@Suite("ArbiterPlots")
struct PlotsTests {
    @Test func fontCoversPrintableASCIIWithInk() {
        for code in 33...126 {
            let ch = Character(Unicode.Scalar(UInt8(code)))
            #expect(BitmapFont.covers(ch), "missing glyph \(ch)")
            var canvas = Canvas(width: 20, height: 20)
            canvas.text(String(ch), x: 2, y: 2)
            #expect(inkCount(canvas.image, x: 0, y: 0, width: 20, height: 20) > 0, "glyph \(ch) has no ink")
        }
        var canvas = Canvas(width: 20, height: 20)
        canvas.text(" ", x: 2, y: 2)
        #expect(inkCount(canvas.image, x: 0, y: 0, width: 20, height: 20) == 0)
        for ch in "×→±−α≥≤…" { #expect(BitmapFont.covers(ch)) }
        // Unknown characters fall back to "?" rather than vanishing.
        #expect(BitmapFont.width(of: "字") == BitmapFont.width(of: "?"))
    }

    @Test func fontScalesByIntegerFactors() {
        #expect(BitmapFont.width(of: "Layer 12", scale: 3) == 3 * BitmapFont.width(of: "Layer 12"))
        var small = Canvas(width: 60, height: 40), big = Canvas(width: 60, height: 40)
        small.text("H", x: 0, y: 0); big.text("H", x: 0, y: 0, scale: 2)
        let a = inkCount(small.image, x: 0, y: 0, width: 60, height: 40)
        #expect(inkCount(big.image, x: 0, y: 0, width: 60, height: 40) == 4 * a)
    }

    @Test func tickLabelsAreCompact() {
        #expect(formatTick(0.25, step: 0.25) == "0.25")
        #expect(formatTick(-1.5, step: 0.5) == "-1.5")
        #expect(formatTick(0.001, step: 0.0005) == "1e-3")
        #expect(formatTick(2, step: 1) == "2")
        #expect(formatTick(0.1 + 0.2, step: 0.1) == "0.3")
        #expect(formatTick(250000, step: 50000) == "2.5e5")
        #expect(formatTick(-0.0000001, step: 0.5) == "0")
    }

    @Test func axisTicksAreNiceAndCoverTheRange() {
        let a = Axis(lo: -0.37, hi: 0.81, maxTicks: 6, nice: true)
        #expect(a.lo <= -0.37 && a.hi >= 0.81)
        #expect(a.ticks.first == a.lo && a.ticks.contains(0))
        #expect([0.2, 0.25, 0.5].contains(a.step))
        let constant = Axis(lo: 3, hi: 3, maxTicks: 5, nice: true)
        #expect(constant.lo < 3 && constant.hi > 3)
        let zero = Axis(lo: 0, hi: 0, maxTicks: 5, nice: true)
        #expect(zero.lo < 0 && zero.hi > 0)
        let layers = Axis(lo: 0, hi: 3, maxTicks: 20, nice: false, integral: true)
        #expect(layers.ticks == [0, 1, 2, 3])
    }

    @Test func quantileMatchesNumPyLinear() {
        #expect(quantile([1, 2, 3, 4], 0.5) == 2.5)
        #expect(quantile([3, .nan, 1, 2], 1) == 3)
        #expect(quantile([], 0.95) == nil)
        // numpy.percentile(range(20), 95) == 18.05
        #expect(abs((quantile((0..<20).map(Double.init), 0.95) ?? 0) - 18.05) < 1e-12)
    }

    @Test func everyChartHasTheRequestedSizeAndInkInThePlotArea() throws {
        let images = [try Samples.lineChart.render(width: 640, height: 400), try Samples.heatmap.render(width: 640, height: 400),
                      try Samples.barChart.render(width: 640, height: 400)]
        for image in images {
            #expect(image.width == 640 && image.height == 400)
            #expect(image.pixels.count == 640 * 400 * 3)
            #expect(inkCount(image, x: 200, y: 150, width: 240, height: 100) > 500)
        }
    }

    @Test func seriesLeavesPixelsOfItsColour() throws {
        let custom = Color(12, 200, 34)
        let chart = LineChart(x: [0, 1, 2, 3], series: [Series(name: "a", y: [0, 1, 0.5, 2], color: custom),
                                                        Series(name: "b", y: [1, 1, 1, 1])])
        let image = try chart.render()
        #expect(count(image, custom) > 100)
        #expect(count(image, Palette.color(1)) > 100)  // the second series uses the second palette colour
        let without = try LineChart(x: [0, 1, 2, 3], series: [Series(name: "b", y: [1, 1, 1, 1])]).render()
        #expect(count(without, custom) == 0)
    }

    @Test func nanLeavesAGap() throws {
        let colour = Palette.color(0)
        let whole = try LineChart(series: [Series(name: "", y: [1, 1, 1, 1, 1])], zeroLine: false).render()
        let gapped = try LineChart(series: [Series(name: "", y: [1, 1, .nan, 1, 1])], zeroLine: false).render()
        // The line is horizontal at the middle of the plot; find its row and compare coverage around x = 2.
        func columnsWithColour(_ image: RGBImage) -> Int {
            var columns = 0
            for x in 0..<image.width {
                if (0..<image.height).contains(where: { y in
                    let (r, g, b) = image.pixel(x: x, y: y); return (r, g, b) == (colour.red, colour.green, colour.blue)
                }) { columns += 1 }
            }
            return columns
        }
        let full = columnsWithColour(whole), gap = columnsWithColour(gapped)
        #expect(gap < full * 3 / 4, "a NaN in the middle removes two of four segments (\(gap) vs \(full) columns)")
        #expect(gap > full / 4)
        // Infinities behave like NaN, and an isolated point still shows as a dot.
        let isolated = try LineChart(series: [Series(name: "", y: [.infinity, 2, -.infinity])]).render()
        #expect(count(isolated, colour) > 5)
    }

    @Test func constantDataGetsAPaddedRange() throws {
        let image = try LineChart(series: [Series(name: "flat", y: [0.5, 0.5, 0.5])]).render()
        #expect(count(image, Palette.color(0)) > 100)
        let zeros = try Heatmap(values: [[0, 0], [0, 0]]).render()
        #expect(count(zeros, Heatmap.color(0, limit: 1)) > 1000)
        let oneBar = try BarChart(bars: [Bar(label: "zero", value: 0)]).render()
        #expect(oneBar.width == 800)
    }

    @Test(arguments: ["line", "line-nan", "heatmap", "heatmap-nan", "bar", "bar-nan", "grid"])
    func emptyDataSaysNoData(kind: String) throws {
        let image: RGBImage
        switch kind {
        case "line": image = try LineChart(title: "t", series: []).render()
        case "line-nan": image = try LineChart(series: [Series(name: "a", y: [.nan, .infinity])]).render()
        case "heatmap": image = try Heatmap(values: []).render()
        case "heatmap-nan": image = try Heatmap(values: [[.nan, .nan]]).render()
        case "bar": image = try BarChart(bars: []).render()
        case "bar-nan": image = try BarChart(bars: [Bar(label: "x", value: .nan)]).render()
        default: image = try Figure.grid([], columns: 2)
        }
        #expect(image.width == 800 && image.height == 480)
        #expect(darkInCentre(image) > 100, "\(kind): the centred 'no data' text is missing")
    }

    @Test func invalidArgumentsThrowTypedErrors() {
        #expect(throws: PlotError.invalidSize(width: -1, height: 10)) { try Samples.lineChart.render(width: -1, height: 10) }
        #expect(throws: PlotError.invalidSize(width: 100, height: 0)) { try Samples.heatmap.render(width: 100, height: 0) }
        #expect(throws: PlotError.invalidSize(width: 20000, height: 10)) { try Samples.barChart.render(width: 20000, height: 10) }
        #expect(throws: PlotError.self) { try LineChart(x: [0, 1], series: [Series(name: "a", y: [1])]).render() }
        #expect(throws: PlotError.self) { try LineChart(series: [Series(name: "a", y: [1], low: [0])]).render() }
        #expect(throws: PlotError.self) { try Heatmap(values: [[1]], limit: -1).render() }
        #expect(throws: PlotError.self) { try BarChart(bars: [Bar(label: "a", value: 1, low: 0)]).render() }
        #expect(throws: PlotError.self) { try Figure.grid([RGBImage(width: 2, height: 2, red: 0, green: 0, blue: 0)], columns: 0) }
    }

    @Test func tinyImagesDoNotCrash() throws {
        for (w, h) in [(1, 1), (7, 3), (40, 30), (90, 60)] {
            #expect(try Samples.lineChart.render(width: w, height: h).width == w)
            #expect(try Samples.heatmap.render(width: w, height: h).height == h)
            #expect(try Samples.barChart.render(width: w, height: h).width == w)
        }
    }

    @Test func heatmapColoursAreDivergingAndMarksAreOutlined() throws {
        let white = Heatmap.color(0, limit: 1)
        #expect(white.red > 240 && white.green > 240 && white.blue > 240)
        let blue = Heatmap.color(-1, limit: 1), red = Heatmap.color(1, limit: 1)
        #expect(blue.blue > blue.red && red.red > red.blue)
        #expect(Heatmap.color(5, limit: 1) == red)  // clamped
        let plain = try Heatmap(values: [[1, -1], [0.5, 0]]).render()
        let marked = try Heatmap(values: [[1, -1], [0.5, 0]], marked: [Heatmap.Cell(row: 0, column: 0), Heatmap.Cell(row: 9, column: 9)]).render()
        #expect(count(marked, .black) > count(plain, .black) + 100)
    }

    @Test func barChartDrawsHighlightAndReference() throws {
        let image = try Samples.barChart.render()
        #expect(count(image, Palette.vermillion) > 1000)
        #expect(count(image, Palette.blue) > 100)
        let noReference = try BarChart(bars: Samples.barChart.bars).render()
        #expect(inkCount(image, x: 600, y: 60, width: 190, height: 340) > inkCount(noReference, x: 600, y: 60, width: 190, height: 340))
    }

    @Test func gridPlacesPanels() throws {
        let panels = try Samples.panels.map { try $0.render(width: 300, height: 200) }
        let grid = try Figure.grid(panels, columns: 4, spacing: 10, title: "Knockout by edge kind")
        #expect(grid.width == 4 * 300 + 5 * 10)
        #expect(grid.height == 10 + 14 + 10 + 2 * 200 + 3 * 10)
        // The first panel is copied verbatim.
        #expect(grid.pixel(x: 10 + 150, y: 34 + 10 + 100) == panels[0].pixel(x: 150, y: 100))
        // The eighth cell is empty.
        #expect(inkCount(grid, x: 10 + 3 * 310, y: 34 + 220, width: 300, height: 200) == 0)
    }

    @Test func renderingIsDeterministic() throws {
        #expect(try Samples.lineChart.render() == Samples.lineChart.render())
        #expect(try PNGImage.encode(Samples.heatmap.render()) == PNGImage.encode(Samples.heatmap.render()))
        #expect(try Samples.barChart.render() == Samples.barChart.render())
    }

    @Test func pngRoundTrip() throws {
        let image = try Samples.lineChart.render(width: 320, height: 200)
        let data = try PNGImage.encode(image)
        let back = try PNGImage.decode(data: data, source: "round trip")
        #expect(back == image)
    }

    /// Writes the sample charts to $ARBITER_PLOT_SAMPLES (a directory) for looking at them.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["ARBITER_PLOT_SAMPLES"] != nil))
    func writeSamples() throws {
        let dir = URL(fileURLWithPath: ProcessInfo.processInfo.environment["ARBITER_PLOT_SAMPLES"] ?? "/tmp")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try PNGImage.write(Samples.lineChart.render(), to: dir.appendingPathComponent("line.png"))
        try PNGImage.write(Samples.heatmap.render(), to: dir.appendingPathComponent("heatmap.png"))
        try PNGImage.write(Samples.barChart.render(), to: dir.appendingPathComponent("bar.png"))
        let panels = try Samples.panels.map { try $0.render(width: 320, height: 220) }
        try PNGImage.write(Figure.grid(panels, columns: 4, title: "Knockout shift by edge kind"),
                           to: dir.appendingPathComponent("grid.png"))
        try PNGImage.write(LineChart(title: "empty", series: []).render(), to: dir.appendingPathComponent("nodata.png"))
        var font = Canvas(width: 640, height: 120)
        font.text(" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ", x: 8, y: 8)
        font.text("[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~ ×→←±−αβμσΔ≥≤≈·…°", x: 8, y: 24)
        font.text("The quick brown fox: 0.25, -1.5, 1e-3", x: 8, y: 44, scale: 2)
        font.text("Layer 12 → head 7", x: 8, y: 72, scale: 3)
        try PNGImage.write(font.image, to: dir.appendingPathComponent("font.png"))
    }
}

@Suite("ArbiterPlots extremes")
struct PlotsExtremeTests {
    @Test func extremeValuesDoNotTrap() throws {
        let huge = [1e308, -1e308, 1e-320, 5e-324, 0, .greatestFiniteMagnitude]
        let line = try LineChart(series: [Series(name: "huge", y: huge, low: huge.map { $0 / 2 }, high: huge)]).render()
        #expect(count(line, Palette.color(0)) > 0)
        let clipped = try LineChart(series: [Series(name: "a", y: [1e300, -1e300, 0.5])], yRange: 0...1).render()
        #expect(clipped.width == 800)
        let tiny = try LineChart(series: [Series(name: "a", y: [1e-320, 2e-320, 3e-320])]).render()
        #expect(count(tiny, Palette.color(0)) > 100)
        #expect(try Heatmap(values: [huge, huge.reversed()]).render().width == 800)
        #expect(try Heatmap(values: [[1, 2]], limit: 1e308).render().width == 800)
        let bars = try BarChart(bars: huge.map { Bar(label: "\($0)", value: $0, low: -$0, high: $0) },
                                reference: ReferenceDistribution(label: "r", values: huge, quantile: 0.95)).render()
        #expect(bars.height == 480)
        // Many columns: cells narrower than a pixel.
        let wide = try Heatmap(values: [(0..<3000).map { Double($0) - 1500 }], marked: [Heatmap.Cell(row: 0, column: 7)]).render()
        var blue = 0, red = 0
        for i in 0..<(wide.width * wide.height) {
            let r = Int(wide.pixels[3 * i]), b = Int(wide.pixels[3 * i + 2])
            if b > r + 100 { blue += 1 } else if r > b + 100 { red += 1 }
        }
        #expect(blue > 10_000 && red > 10_000)
        #expect(try LineChart(series: [Series(name: "w", y: [0, 1])], lineWidth: 400).render().width == 800)
    }
}

extension PlotsExtremeTests {
    @Test func heatmapNamesReplaceIndices() throws {
        let values = [[0.5, -0.2, 0.1], [0.0, 0.3, -0.6]]
        let named = try Heatmap(values: values, rowNames: ["follow-image", "follow-text"],
                                columnNames: ["image→last", "text→last", "instr→last"]).render(width: 600, height: 300)
        let plain = try Heatmap(values: values).render(width: 600, height: 300)
        #expect(named != plain)
        #expect(throws: PlotError.self) { try Heatmap(values: values, rowNames: ["a"]).render() }
        #expect(throws: PlotError.self) { try Heatmap(values: values, columnNames: ["a", "b"]).render() }
        if let dir = ProcessInfo.processInfo.environment["ARBITER_PLOT_SAMPLES"] {
            try PNGImage.write(named, to: URL(fileURLWithPath: dir).appendingPathComponent("heatmap-named.png"))
        }
    }
}

extension PlotsExtremeTests {
    @Test func scaleMultipliesTextAndLines() throws {
        let chart = LineChart(title: "scaled", xLabel: "layer", yLabel: "value", series: [Series(name: "a", y: [0, 1, 0.5, 2])])
        let one = try chart.render(width: 400, height: 240)
        let two = try chart.render(width: 800, height: 480, scale: 2)
        let ratio = Double(count(two, Palette.color(0))) / Double(count(one, Palette.color(0)))
        // Twice as long and twice as thick; exactly-coloured pixels are the fully covered core, which more than doubles.
        #expect(ratio > 3 && ratio < 8, "series pixels scale with the area (ratio \(ratio))")
        let darkOne = one.pixels.count { $0 < 60 }, darkTwo = two.pixels.count { $0 < 60 }
        #expect(Double(darkTwo) > 3 * Double(darkOne), "text and axes scale too")
        #expect(throws: PlotError.self) { try chart.render(scale: 0) }
        #expect(throws: PlotError.self) { try Samples.heatmap.render(scale: 17) }
        #expect(throws: PlotError.self) { try Figure.grid([one], columns: 1, scale: 0) }
        if let dir = ProcessInfo.processInfo.environment["ARBITER_PLOT_SAMPLES"] {
            let url = URL(fileURLWithPath: dir)
            try PNGImage.write(Samples.lineChart.render(width: 1600, height: 960, scale: 2), to: url.appendingPathComponent("line@2x.png"))
            try PNGImage.write(Samples.heatmap.render(width: 1600, height: 960, scale: 2), to: url.appendingPathComponent("heatmap@2x.png"))
            try PNGImage.write(Samples.barChart.render(width: 1600, height: 960, scale: 2), to: url.appendingPathComponent("bar@2x.png"))
        }
    }
}
