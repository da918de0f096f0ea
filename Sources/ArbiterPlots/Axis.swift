// Axis ranges, "nice" tick positions, compact tick labels, and the error charts throw for invalid arguments.
import Foundation

/// An invalid argument to a chart (data problems such as NaN or empty series are drawn, not thrown).
public enum PlotError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The requested image size is not positive or exceeds `RGBImage`'s limits.
    case invalidSize(width: Int, height: Int)
    /// An argument that cannot be drawn; the message names it.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .invalidSize(let w, let h): "plot size \(w)x\(h) must be positive and at most 16384 per side"
        case .invalidArgument(let message): message
        }
    }
}

func checkScale(_ scale: Int) throws(PlotError) {
    guard scale >= 1, scale <= 16 else { throw .invalidArgument("plot scale \(scale) must be in 1...16") }
}

func checkSize(width: Int, height: Int) throws(PlotError) {
    guard width > 0, height > 0, width <= 16384, height <= 16384, width * height <= 64 << 20 else {
        throw .invalidSize(width: width, height: height)
    }
}

/// A linear axis: the value range and where its ticks go.
struct Axis {
    var lo: Double
    var hi: Double
    var ticks: [Double]
    var step: Double

    /// Ticks covering `[lo, hi]`; `pad` widens the range by that fraction (not at an end that is 0 when
    /// `keepZero`, so bars start at the axis); `nice` then
    /// widens it to whole steps; `integral` keeps steps ≥ 1.
    init(lo rawLo: Double, hi rawHi: Double, maxTicks: Int, nice: Bool, integral: Bool = false, pad: Double = 0,
         keepZero: Bool = false) {
        var lo = rawLo, hi = rawHi
        if !(lo.isFinite && hi.isFinite) { lo = 0; hi = 1 }
        if lo > hi { swap(&lo, &hi) }
        // Keep hi - lo finite.
        lo = max(-Axis.largest, min(Axis.largest, lo)); hi = max(-Axis.largest, min(Axis.largest, hi))
        if hi - lo <= max(abs(lo), abs(hi)) * 1e-12 {
            let pad = lo == 0 ? 1 : abs(lo) * 0.1
            lo -= pad; hi += pad
        }
        if pad > 0 {
            let margin = (hi - lo) * pad
            if lo != 0 || !keepZero { lo -= margin }
            if hi != 0 || !keepZero { hi += margin }
        }
        var step = Axis.niceStep((hi - lo) / Double(max(1, maxTicks - 1)))
        if integral { step = max(1, step.rounded()) }
        if nice {
            lo = (lo / step).rounded(.down) * step
            hi = (hi / step).rounded(.up) * step
        }
        var ticks: [Double] = []
        var k = (lo / step - 1e-9).rounded(.up)
        while k * step <= hi + step * 1e-9, ticks.count < 100 {
            let t = k * step
            ticks.append(abs(t) < step * 1e-9 ? 0 : t)
            k += 1
        }
        self.lo = lo; self.hi = hi; self.ticks = ticks; self.step = step
    }

    /// 1, 2, 2.5 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let norm = raw / magnitude
        let factor: Double = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10
        return factor * magnitude
    }

    /// Largest magnitude an axis spans.
    static let largest = 1e300

    /// Maps a value to a pixel coordinate: `lo` → `from`, `hi` → `to`; far-away values are clamped to
    /// ±1e6 pixels so that clipping (not integer overflow) handles them.
    func map(_ v: Double, from: Double, to: Double) -> Double {
        let p = from + (v - lo) / (hi - lo) * (to - from)
        return p.isNaN ? p : max(-1e6, min(1e6, p))
    }

    /// The label of each tick.
    var labels: [String] { ticks.map { formatTick($0, step: step) } }
}

/// A compact tick label: "0", "0.25", "-1.5", "12", "1e-3", "2.5e5".
func formatTick(_ value: Double, step: Double) -> String {
    guard value.isFinite else { return value.isNaN ? "nan" : value > 0 ? "inf" : "-inf" }
    if value == 0 { return "0" }
    let step = step > 0 && step.isFinite ? step : abs(value)
    if step < 1e-3 || abs(value) >= 1e5 {
        let exponent = Int((log10(abs(value))).rounded(.down))
        let mantissa = value / pow(10, Double(exponent))
        return fixed(mantissa, decimals: 2) + "e" + String(exponent)
    }
    let decimals = max(0, Int((-log10(step)).rounded(.up)) + (Axis.needsExtraDigit(step) ? 1 : 0))
    return fixed(value, decimals: min(decimals, 6))
}

extension Axis {
    /// Steps like 0.25 or 2.5e-2 need one digit more than their power of ten.
    static func needsExtraDigit(_ step: Double) -> Bool {
        let scaled = step / pow(10, (log10(step)).rounded(.down))
        return abs(scaled - scaled.rounded()) > 1e-6
    }
}

/// `value` with at most `decimals` decimals, trailing zeros removed, no "-0".
func fixed(_ value: Double, decimals: Int) -> String {
    let scale = pow(10, Double(decimals))
    let n = (abs(value) * scale).rounded()
    guard n < 9e15 else { return String(value) }
    var digits = String(Int64(n))
    if decimals > 0 {
        while digits.count <= decimals { digits = "0" + digits }
        let cut = digits.index(digits.endIndex, offsetBy: -decimals)
        var fraction = String(digits[cut...])
        while fraction.hasSuffix("0") { fraction.removeLast() }
        digits = String(digits[..<cut]) + (fraction.isEmpty ? "" : "." + fraction)
    }
    return (value < 0 && n != 0 ? "-" : "") + digits
}

/// The finite values among `values`, with their minimum and maximum (nil when none).
func finiteRange<S: Sequence>(_ values: S) -> (Double, Double)? where S.Element == Double {
    var lo = Double.infinity, hi = -Double.infinity
    for v in values where v.isFinite { lo = min(lo, v); hi = max(hi, v) }
    return lo <= hi ? (lo, hi) : nil
}

/// Quantile `q` (linear interpolation between order statistics, as NumPy's default) of the finite values.
func quantile(_ values: [Double], _ q: Double) -> Double? {
    let sorted = values.filter(\.isFinite).sorted()
    guard !sorted.isEmpty, q.isFinite else { return nil }
    let position = max(0, min(1, q)) * Double(sorted.count - 1)
    let i = Int(position.rounded(.down))
    let j = min(i + 1, sorted.count - 1)
    return sorted[i] + (sorted[j] - sorted[i]) * (position - Double(i))
}

/// Shared chart furniture: title, frame, grid, ticks and labels.
enum Furniture {
    static let titleScale = 2
    static let tickLength = 4

    /// Draws `title` centred at the top; returns the y below it.
    static func title(_ title: String, on canvas: inout Canvas) -> Int {
        let u = canvas.unit
        guard !title.isEmpty else { return 8 * u }
        let fitting = truncated(title, maxWidth: canvas.width - 16 * u, scale: titleScale * u)
        canvas.text(fitting, x: canvas.width / 2, y: 10 * u, scale: titleScale, align: .center)
        return (10 + 7 * titleScale + 14) * u
    }

    /// Y ticks, tick labels and horizontal grid lines for `axis` on the left of `plot`.
    /// `inset` keeps the range ends that many pixels inside the plot.
    static func yAxis(_ axis: Axis, plot: Rect, on canvas: inout Canvas, grid: Bool = true, inset: Double = 0) {
        let labels = axis.labels
        for (t, label) in zip(axis.ticks, labels) {
            let y = Int(axis.map(t, from: Double(plot.maxY) - inset, to: Double(plot.y) + inset).rounded(.down))
            let u = canvas.unit
            if grid { canvas.hLine(plot.x, plot.maxX - 1, y, .grid, thickness: u) }
            canvas.hLine(plot.x - tickLength * u, plot.x - 1, y, .axis, thickness: u)
            canvas.text(label, x: plot.x - (tickLength + 4) * u, y: y, align: .right, valign: .middle)
        }
    }

    /// Width the tick labels of `axis` need.
    static func labelWidth(_ axis: Axis, unit: Int) -> Int {
        axis.labels.map { BitmapFont.width(of: $0, scale: unit) }.max() ?? 0
    }

    /// X ticks and labels for `axis` under `plot`, skipping labels that would overlap.
    static func xAxis(_ axis: Axis, plot: Rect, on canvas: inout Canvas, grid: Bool = false, inset: Double = 0) {
        var lastRight = Int.min
        let u = canvas.unit
        for (t, label) in zip(axis.ticks, axis.labels) {
            let x = Int(axis.map(t, from: Double(plot.x) + inset, to: Double(plot.maxX) - inset).rounded(.down))
            if grid { canvas.vLine(x, plot.y, plot.maxY - 1, .grid, thickness: u) }
            canvas.vLine(x, plot.maxY, plot.maxY + tickLength * u - 1, .axis, thickness: u)
            let w = canvas.textWidth(label)
            if x - w / 2 > lastRight + 6 * u {
                canvas.text(label, x: x, y: plot.maxY + (tickLength + 4) * u, align: .center)
                lastRight = x - w / 2 + w
            }
        }
    }
}
