// Small multiples: panels rendered separately, laid out in a grid in one image.
import ArbiterFormats

/// Figures made of several charts.
public enum Figure {
    /// Lays `panels` out row by row in `columns` columns; each cell is as large as the largest panel and
    /// panels are centred in their cells. An optional `title` goes above the grid. No panels give a
    /// "no data" image of the default chart size. `scale` multiplies the title's text (match the panels').
    /// Throws `PlotError` for `columns < 1`, negative `spacing`, a scale outside 1...16, or a result larger
    /// than `RGBImage`'s limits.
    public static func grid(_ panels: [RGBImage], columns: Int, spacing: Int = 8, title: String = "",
                            scale: Int = 1) throws(PlotError) -> RGBImage {
        try checkScale(scale)
        guard columns >= 1 else { throw .invalidArgument("grid needs at least one column, got \(columns)") }
        guard spacing >= 0 else { throw .invalidArgument("grid spacing \(spacing) must not be negative") }
        guard !panels.isEmpty else {
            var canvas = Canvas(width: 800, height: 480, unit: scale)
            let top = Furniture.title(title, on: &canvas)
            canvas.noData(in: Rect(x: 0, y: top, width: 800, height: 480 - top))
            return canvas.image
        }
        let cellW = panels.map(\.width).max() ?? 1, cellH = panels.map(\.height).max() ?? 1
        let cols = min(columns, panels.count)
        let rows = (panels.count + cols - 1) / cols
        let titleHeight = title.isEmpty ? 0 : (10 + 7 * Furniture.titleScale + 10) * scale
        let width = cols * cellW + (cols + 1) * spacing
        let height = titleHeight + rows * cellH + (rows + 1) * spacing
        try checkSize(width: width, height: height)
        var canvas = Canvas(width: width, height: height, unit: scale)
        if !title.isEmpty { _ = Furniture.title(title, on: &canvas) }
        for (k, panel) in panels.enumerated() {
            let x0 = spacing + (k % cols) * (cellW + spacing) + (cellW - panel.width) / 2
            let y0 = titleHeight + spacing + (k / cols) * (cellH + spacing) + (cellH - panel.height) / 2
            for y in 0..<panel.height {
                let src = 3 * y * panel.width, dst = 3 * ((y0 + y) * width + x0)
                canvas.pixels.replaceSubrange(dst..<(dst + 3 * panel.width),
                                              with: panel.pixels[src..<(src + 3 * panel.width)])
            }
        }
        return canvas.image
    }
}
