// The rasteriser behind every chart: an RGB canvas with alpha blending, crisp rectangles, anti-aliased thick
// polylines (distance-to-segment coverage), scanline polygon fill and bitmap text.
import ArbiterFormats
import Foundation

/// An sRGB colour.
public struct Color: Sendable, Hashable {
    public var red: UInt8
    public var green: UInt8
    public var blue: UInt8
    public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) {
        self.red = red; self.green = green; self.blue = blue
    }

    public static let white = Color(255, 255, 255)
    public static let black = Color(0, 0, 0)
    static let text = Color(34, 34, 34)
    static let axis = Color(90, 90, 90)
    static let grid = Color(226, 226, 226)
    static let highlight = Color(236, 236, 236)
    static let missing = Color(200, 200, 200)

    /// Linear interpolation from `self` (t = 0) to `other` (t = 1).
    func mixed(with other: Color, _ t: Double) -> Color {
        func mix(_ a: UInt8, _ b: UInt8) -> UInt8 {
            UInt8(max(0, min(255, (Double(a) + (Double(b) - Double(a)) * t).rounded())))
        }
        return Color(mix(red, other.red), mix(green, other.green), mix(blue, other.blue))
    }
}

/// The Okabe–Ito colour-blind-safe palette, ordered for lines on white (yellow last: it is faint on white).
public enum Palette {
    public static let blue = Color(0, 114, 178)
    public static let orange = Color(230, 159, 0)
    public static let bluishGreen = Color(0, 158, 115)
    public static let vermillion = Color(213, 94, 0)
    public static let reddishPurple = Color(204, 121, 167)
    public static let skyBlue = Color(86, 180, 233)
    public static let black = Color(0, 0, 0)
    public static let yellow = Color(240, 228, 66)
    /// The series colours in order of use.
    public static let series: [Color] = [blue, orange, bluishGreen, vermillion, reddishPurple, skyBlue, black, yellow]
    /// The colour of series `index` (cycling).
    public static func color(_ index: Int) -> Color { series[((index % series.count) + series.count) % series.count] }
}

/// A pixel rectangle: `x..<x+width`, `y..<y+height`.
struct Rect: Equatable {
    var x: Int, y: Int, width: Int, height: Int
    init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x; self.y = y; self.width = max(0, width); self.height = max(0, height)
    }
    var maxX: Int { x + width }
    var maxY: Int { y + height }
    var midX: Int { x + width / 2 }
    var midY: Int { y + height / 2 }
    var isEmpty: Bool { width <= 0 || height <= 0 }
    func intersection(_ o: Rect) -> Rect {
        let x0 = max(x, o.x), y0 = max(y, o.y)
        return Rect(x: x0, y: y0, width: min(maxX, o.maxX) - x0, height: min(maxY, o.maxY) - y0)
    }
}

enum HAlign { case left, center, right }
enum VAlign { case top, middle, bottom }

/// An RGB drawing surface; every operation is clipped to `clip` (the whole canvas by default).
struct Canvas {
    let width: Int
    let height: Int
    var pixels: [UInt8]
    var clip: Rect
    /// Layout unit: text scale and the multiplier of every margin, tick and line width (1 at 800×480).
    let unit: Int

    init(width: Int, height: Int, background: Color = .white, unit: Int = 1) {
        self.width = width
        self.height = height
        self.unit = max(1, unit)
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[3 * i] = background.red; pixels[3 * i + 1] = background.green; pixels[3 * i + 2] = background.blue
        }
        clip = Rect(x: 0, y: 0, width: width, height: height)
    }

    var bounds: Rect { Rect(x: 0, y: 0, width: width, height: height) }
    var image: RGBImage { RGBImage(width: width, height: height, pixels: pixels) }

    /// Runs `body` with drawing restricted to `rect` (within the current clip).
    mutating func clipped(to rect: Rect, _ body: (inout Canvas) -> Void) {
        let saved = clip
        clip = clip.intersection(rect)
        body(&self)
        clip = saved
    }

    @inline(__always)
    mutating func blend(_ x: Int, _ y: Int, _ c: Color, _ alpha: Double = 1) {
        guard x >= clip.x, x < clip.maxX, y >= clip.y, y < clip.maxY, alpha > 0 else { return }
        let i = 3 * (y * width + x)
        if alpha >= 1 {
            pixels[i] = c.red; pixels[i + 1] = c.green; pixels[i + 2] = c.blue
            return
        }
        func mix(_ old: UInt8, _ new: UInt8) -> UInt8 {
            UInt8(max(0, min(255, (Double(old) + (Double(new) - Double(old)) * alpha).rounded())))
        }
        pixels[i] = mix(pixels[i], c.red); pixels[i + 1] = mix(pixels[i + 1], c.green)
        pixels[i + 2] = mix(pixels[i + 2], c.blue)
    }

    mutating func fill(_ r: Rect, _ c: Color, alpha: Double = 1) {
        let area = r.intersection(clip)
        guard !area.isEmpty else { return }
        for y in area.y..<area.maxY { for x in area.x..<area.maxX { blend(x, y, c, alpha) } }
    }

    /// A rectangle outline `thickness` pixels wide, drawn inside `r`.
    mutating func strokeRect(_ r: Rect, _ c: Color, thickness: Int = 1) {
        let t = max(1, thickness)
        fill(Rect(x: r.x, y: r.y, width: r.width, height: t), c)
        fill(Rect(x: r.x, y: r.maxY - t, width: r.width, height: t), c)
        fill(Rect(x: r.x, y: r.y, width: t, height: r.height), c)
        fill(Rect(x: r.maxX - t, y: r.y, width: t, height: r.height), c)
    }

    mutating func hLine(_ x0: Int, _ x1: Int, _ y: Int, _ c: Color, thickness: Int = 1) {
        fill(Rect(x: min(x0, x1), y: y - (thickness - 1) / 2, width: abs(x1 - x0) + 1, height: thickness), c)
    }

    mutating func vLine(_ x: Int, _ y0: Int, _ y1: Int, _ c: Color, thickness: Int = 1) {
        fill(Rect(x: x - (thickness - 1) / 2, y: min(y0, y1), width: thickness, height: abs(y1 - y0) + 1), c)
    }

    /// An anti-aliased polyline `lineWidth` pixels wide with round joins (coverage is the maximum over segments,
    /// so joins are not blended twice). `dash` is an on/off pattern in pixels, or nil for solid lines.
    /// Points are pixel coordinates (pixel centres at +0.5); non-finite points must be removed by the caller.
    mutating func stroke(_ points: [(Double, Double)], _ c: Color, lineWidth: Double, dash: [Double]? = nil,
                         alpha: Double = 1) {
        guard !points.isEmpty else { return }
        var segments: [((Double, Double), (Double, Double))] = []
        if let dash, dash.count >= 2, dash.allSatisfy({ $0 > 0 }) {
            var phase = 0, left = dash[0], on = true
            for k in 1..<max(1, points.count) where points.count > 1 {
                var a = points[k - 1]
                let b = points[k]
                var length = hypot(b.0 - a.0, b.1 - a.1)
                while length > 1e-9 {
                    let step = min(left, length)
                    let t = step / length
                    let p = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
                    if on { segments.append((a, p)) }
                    a = p; length -= step; left -= step
                    if left <= 1e-9 { phase = (phase + 1) % dash.count; left = dash[phase]; on.toggle() }
                }
            }
        } else if points.count == 1 {
            segments = [(points[0], points[0])]
        } else {
            for k in 1..<points.count { segments.append((points[k - 1], points[k])) }
        }
        guard !segments.isEmpty else { return }
        let half = lineWidth / 2
        let reach = half + 1
        var minX = Double.infinity, minY = Double.infinity, maxX = -Double.infinity, maxY = -Double.infinity
        for (a, b) in segments {
            minX = min(minX, a.0, b.0); maxX = max(maxX, a.0, b.0)
            minY = min(minY, a.1, b.1); maxY = max(maxY, a.1, b.1)
        }
        let box = Rect(x: Int((minX - reach).rounded(.down)), y: Int((minY - reach).rounded(.down)),
                       width: Int((maxX - minX + 2 * reach).rounded(.up)) + 1,
                       height: Int((maxY - minY + 2 * reach).rounded(.up)) + 1).intersection(clip)
        guard !box.isEmpty else { return }
        var mask = [Float](repeating: 0, count: box.width * box.height)
        for (a, b) in segments {
            let x0 = max(box.x, Int((min(a.0, b.0) - reach).rounded(.down)))
            let x1 = min(box.maxX - 1, Int((max(a.0, b.0) + reach).rounded(.up)))
            let y0 = max(box.y, Int((min(a.1, b.1) - reach).rounded(.down)))
            let y1 = min(box.maxY - 1, Int((max(a.1, b.1) + reach).rounded(.up)))
            guard x0 <= x1, y0 <= y1 else { continue }
            let dx = b.0 - a.0, dy = b.1 - a.1
            let len2 = dx * dx + dy * dy
            for y in y0...y1 {
                let py = Double(y) + 0.5
                for x in x0...x1 {
                    let px = Double(x) + 0.5
                    var t = len2 > 0 ? ((px - a.0) * dx + (py - a.1) * dy) / len2 : 0
                    t = max(0, min(1, t))
                    let d = hypot(px - (a.0 + t * dx), py - (a.1 + t * dy))
                    let coverage = Float(max(0, min(1, half + 0.5 - d)))
                    let m = (y - box.y) * box.width + (x - box.x)
                    if coverage > mask[m] { mask[m] = coverage }
                }
            }
        }
        for y in box.y..<box.maxY {
            for x in box.x..<box.maxX {
                let m = mask[(y - box.y) * box.width + (x - box.x)]
                if m > 0 { blend(x, y, c, Double(m) * alpha) }
            }
        }
    }

    /// A filled anti-aliased disc.
    mutating func disc(_ cx: Double, _ cy: Double, radius: Double, _ c: Color, alpha: Double = 1) {
        stroke([(cx, cy)], c, lineWidth: 2 * radius, alpha: alpha)
    }

    /// Fills a polygon (even-odd rule, sampled at pixel centres).
    mutating func fillPolygon(_ points: [(Double, Double)], _ c: Color, alpha: Double = 1) {
        guard points.count >= 3 else { return }
        let ys = points.map(\.1)
        guard let lo = ys.min(), let hi = ys.max() else { return }
        let y0 = max(clip.y, Int(lo.rounded(.down))), y1 = min(clip.maxY - 1, Int(hi.rounded(.up)))
        guard y0 <= y1 else { return }
        for y in y0...y1 {
            let py = Double(y) + 0.5
            var xs: [Double] = []
            for k in 0..<points.count {
                let a = points[k], b = points[(k + 1) % points.count]
                if (a.1 <= py && b.1 > py) || (b.1 <= py && a.1 > py) {
                    xs.append(a.0 + (py - a.1) / (b.1 - a.1) * (b.0 - a.0))
                }
            }
            xs.sort()
            var k = 0
            while k + 1 < xs.count {
                let from = Int((xs[k] - 0.5).rounded(.up)), to = Int((xs[k + 1] - 0.5).rounded(.down))
                let a = max(from, clip.x), b = min(to, clip.maxX - 1)
                if a <= b { for x in a...b { blend(x, y, c, alpha) } }
                k += 2
            }
        }
    }

    /// Width of `text` at `scale` times the layout unit.
    func textWidth(_ text: String, scale: Int = 1) -> Int { BitmapFont.width(of: text, scale: scale * unit) }

    /// Draws `text` with its box anchored at `(x, y)` per the alignments. The box is `textWidth` wide and
    /// 7·scale·unit high (the cap height; descenders hang below).
    mutating func text(_ text: String, x: Int, y: Int, scale: Int = 1, _ c: Color = .text,
                       align: HAlign = .left, valign: VAlign = .top) {
        let s = max(1, scale) * unit
        let w = BitmapFont.width(of: text, scale: s)
        var cx = x - (align == .left ? 0 : align == .center ? w / 2 : w)
        let top = y - (valign == .top ? 0 : valign == .middle ? 7 * s / 2 : 7 * s)
        for ch in text {
            if ch != " " {
                let g = BitmapFont.glyph(ch)
                for (r, bits) in g.rows.enumerated() where bits != 0 {
                    for col in 0..<5 where bits & UInt8(1 << (4 - col)) != 0 {
                        fill(Rect(x: cx + (col - g.left) * s, y: top + r * s, width: s, height: s), c)
                    }
                }
            }
            cx += BitmapFont.advance(ch) * s
        }
    }

    /// Draws `text` rotated 90° counter-clockwise (reading upwards), centred on `(x, y)`.
    mutating func verticalText(_ text: String, centerX x: Int, centerY y: Int, scale: Int = 1, _ c: Color = .text) {
        let s = max(1, scale) * unit
        let w = BitmapFont.width(of: text, scale: s)
        var along = y + w / 2           // the baseline runs upwards from here
        let left = x - 7 * s / 2        // glyph row 0 (the top of capitals) is at the left
        for ch in text {
            if ch != " " {
                let g = BitmapFont.glyph(ch)
                for (r, bits) in g.rows.enumerated() where bits != 0 {
                    for col in 0..<5 where bits & UInt8(1 << (4 - col)) != 0 {
                        fill(Rect(x: left + r * s, y: along - (col - g.left + 1) * s, width: s, height: s), c)
                    }
                }
            }
            along -= BitmapFont.advance(ch) * s
        }
    }

    /// Draws the centred "no data" notice.
    mutating func noData(in r: Rect) {
        text("no data", x: r.midX, y: r.midY, scale: 3, .axis, align: .center, valign: .middle)
    }
}

/// Shortens `text` with "…" so that it fits `maxWidth` pixels at `scale`.
func truncated(_ text: String, maxWidth: Int, scale: Int = 1) -> String {
    guard BitmapFont.width(of: text, scale: scale) > maxWidth else { return text }
    var chars = Array(text)
    while !chars.isEmpty, BitmapFont.width(of: String(chars) + "…", scale: scale) > maxWidth { chars.removeLast() }
    return chars.isEmpty ? "" : String(chars) + "…"
}

/// Splits `text` at spaces into at most `maxLines` lines no wider than `maxWidth` (the last one truncated).
func wrapped(_ text: String, maxWidth: Int, maxLines: Int, scale: Int = 1) -> [String] {
    var lines: [String] = []
    var current = ""
    for word in text.split(separator: " ").map(String.init) {
        let candidate = current.isEmpty ? word : current + " " + word
        if BitmapFont.width(of: candidate, scale: scale) <= maxWidth || current.isEmpty {
            current = candidate
        } else {
            lines.append(current)
            current = word
        }
    }
    if !current.isEmpty { lines.append(current) }
    if lines.count > maxLines {
        let rest = lines[(maxLines - 1)...].joined(separator: " ")
        lines = Array(lines[..<(maxLines - 1)]) + [rest]
    }
    return lines.map { truncated($0, maxWidth: maxWidth, scale: scale) }
}
