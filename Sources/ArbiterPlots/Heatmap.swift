// Heatmaps (e.g. layer × head) with a diverging blue–white–red colour map symmetric around 0, a colour bar,
// and outlined cells (e.g. the top 5% heads).
import ArbiterFormats

/// A heatmap of `values[row][column]`; row 0 is drawn at the top. Non-finite cells are grey.
public struct Heatmap: Sendable {
    /// A cell position.
    public struct Cell: Hashable, Sendable {
        public var row: Int
        public var column: Int
        public init(row: Int, column: Int) { self.row = row; self.column = column }
    }

    public var title: String
    public var rowLabel: String
    public var columnLabel: String
    /// Rows of equal length (ragged rows are padded with missing cells).
    public var values: [[Double]]
    /// Cells outlined in black; cells outside the grid are ignored.
    public var marked: [Cell]
    /// The colour scale spans `-limit...limit`; nil uses the largest finite |value|.
    public var limit: Double?
    /// Label of the colour bar.
    public var valueLabel: String
    /// Names drawn instead of row/column indices (e.g. edge kinds); must match the grid when given.
    public var rowNames: [String]?
    public var columnNames: [String]?

    public init(title: String = "", rowLabel: String = "", columnLabel: String = "", values: [[Double]],
                marked: [Cell] = [], limit: Double? = nil, valueLabel: String = "", rowNames: [String]? = nil,
                columnNames: [String]? = nil) {
        self.title = title; self.rowLabel = rowLabel; self.columnLabel = columnLabel; self.values = values
        self.marked = marked; self.limit = limit; self.valueLabel = valueLabel
        self.rowNames = rowNames; self.columnNames = columnNames
    }

    /// The diverging colour of `value` on a scale `-limit...limit` (blue below 0, white at 0, red above).
    public static func color(_ value: Double, limit: Double) -> Color {
        guard value.isFinite else { return .missing }
        let t = limit > 0 ? max(-1, min(1, value / limit)) : 0
        // ColorBrewer RdBu anchors, from -1 to 1.
        let anchors: [Color] = [Color(5, 48, 97), Color(33, 102, 172), Color(67, 147, 195), Color(146, 197, 222),
                                Color(209, 229, 240), Color(247, 247, 247), Color(253, 219, 199),
                                Color(244, 165, 130), Color(214, 96, 77), Color(178, 24, 43), Color(103, 0, 31)]
        let position = (t + 1) / 2 * Double(anchors.count - 1)
        let i = min(anchors.count - 2, Int(position.rounded(.down)))
        return anchors[i].mixed(with: anchors[i + 1], position - Double(i))
    }

    /// Renders the heatmap; `scale` multiplies text, margins and line widths. Throws `PlotError` for a bad
    /// image size or scale, a non-finite/negative `limit`, or names that do not match the rows/columns.
    public func render(width: Int = 800, height: Int = 480, scale: Int = 1) throws(PlotError) -> RGBImage {
        try checkSize(width: width, height: height)
        try checkScale(scale)
        if let limit, !(limit.isFinite && limit > 0) {
            throw .invalidArgument("heatmap limit \(limit) must be finite and positive")
        }
        let rows = values.count
        let columns = values.map(\.count).max() ?? 0
        if let rowNames, rowNames.count != rows {
            throw .invalidArgument("heatmap has \(rows) rows but \(rowNames.count) row names")
        }
        if let columnNames, columnNames.count != columns {
            throw .invalidArgument("heatmap has \(columns) columns but \(columnNames.count) column names")
        }
        var canvas = Canvas(width: width, height: height, unit: scale)
        let u = scale
        let top = Furniture.title(title, on: &canvas)
        let rowText = rowNames.map { $0.map { truncated($0, maxWidth: width / 5, scale: u) } }
            ?? (0..<rows).map { String($0) }
        let columnText = columnNames ?? (0..<columns).map { String($0) }
        guard rows > 0, columns > 0, let (lo, hi) = finiteRange(values.joined()) else {
            canvas.noData(in: Rect(x: 0, y: top, width: width, height: height - top))
            return canvas.image
        }
        let scaleLimit = limit ?? (max(abs(lo), abs(hi)) > 0 ? max(abs(lo), abs(hi)) : 1)
        let bar = Axis(lo: -scaleLimit, hi: scaleLimit, maxTicks: 5, nice: false)
        let barLabels = bar.labels.map { canvas.textWidth($0) }.max() ?? 0
        let right = (16 + 14 + 6 + (valueLabel.isEmpty ? 12 : 12 + 7 + 8)) * u + barLabels
        let rowTickWidth = rowText.map { canvas.textWidth($0) }.max() ?? 0
        let left = (8 + (rowLabel.isEmpty ? 0 : 17) + 4 + Furniture.tickLength) * u + rowTickWidth
        let bottom = (Furniture.tickLength + 4 + 9 + (columnLabel.isEmpty ? 8 : 8 + 9 + 8)) * u
        let plot = Rect(x: left, y: top, width: width - left - right, height: height - top - bottom)
        guard !plot.isEmpty else { return canvas.image }

        let cellW = Double(plot.width) / Double(columns), cellH = Double(plot.height) / Double(rows)
        func cellRect(_ r: Int, _ c: Int) -> Rect {
            let x0 = plot.x + Int((Double(c) * cellW).rounded(.down)),
                x1 = plot.x + Int((Double(c + 1) * cellW).rounded(.down))
            let y0 = plot.y + Int((Double(r) * cellH).rounded(.down)),
                y1 = plot.y + Int((Double(r + 1) * cellH).rounded(.down))
            return Rect(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
        }
        for r in 0..<rows {
            for c in 0..<columns {
                let v = c < values[r].count ? values[r][c] : .nan
                canvas.fill(cellRect(r, c), Heatmap.color(v, limit: scaleLimit))
            }
        }
        // Outline the boundary of the marked region (edges between marked and unmarked cells).
        let markedSet = Set(marked.filter { $0.row >= 0 && $0.row < rows && $0.column >= 0 && $0.column < columns })
        let t = max(1, min(3 * u, Int(min(cellW, cellH) / 6)))
        for cell in markedSet.sorted(by: { ($0.row, $0.column) < ($1.row, $1.column) }) {
            let rect = cellRect(cell.row, cell.column)
            if !markedSet.contains(Cell(row: cell.row - 1, column: cell.column)) {
                canvas.fill(Rect(x: rect.x, y: rect.y, width: rect.width, height: t), .black)
            }
            if !markedSet.contains(Cell(row: cell.row + 1, column: cell.column)) {
                canvas.fill(Rect(x: rect.x, y: rect.maxY - t, width: rect.width, height: t), .black)
            }
            if !markedSet.contains(Cell(row: cell.row, column: cell.column - 1)) {
                canvas.fill(Rect(x: rect.x, y: rect.y, width: t, height: rect.height), .black)
            }
            if !markedSet.contains(Cell(row: cell.row, column: cell.column + 1)) {
                canvas.fill(Rect(x: rect.maxX - t, y: rect.y, width: t, height: rect.height), .black)
            }
        }
        canvas.strokeRect(Rect(x: plot.x - u, y: plot.y - u, width: plot.width + 2 * u, height: plot.height + 2 * u),
                          .axis,
                          thickness: u)

        // Index ticks: every k-th row/column so labels do not collide.
        func every(_ cell: Double, need: Double) -> Int {
            for k in [1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100, 128, 200, 256, 500, 1000]
            where Double(k) * cell >= need {
                return k
            }
            return max(1, Int((need / max(cell, 1e-9)).rounded(.up)))
        }
        let rowStep = every(cellH, need: 12 * Double(u))
        for r in stride(from: 0, to: rows, by: rowStep) {
            let y = Int((Double(plot.y) + (Double(r) + 0.5) * cellH).rounded(.down))
            canvas.hLine(plot.x - (1 + Furniture.tickLength) * u, plot.x - u - 1, y, .axis, thickness: u)
            canvas.text(rowText[r], x: plot.x - (Furniture.tickLength + 4) * u, y: y, align: .right, valign: .middle)
        }
        // Names are truncated to their column when the columns are wide enough for some text, else thinned.
        let namedColumns = columnNames != nil && cellW >= 30 * Double(u)
        let widest = columnText.map { canvas.textWidth($0) }.max() ?? 0
        let columnStep = namedColumns ? 1 : every(cellW, need: Double(widest + 8 * u))
        for c in stride(from: 0, to: columns, by: columnStep) {
            let x = Int((Double(plot.x) + (Double(c) + 0.5) * cellW).rounded(.down))
            canvas.vLine(x, plot.maxY + u, plot.maxY + (1 + Furniture.tickLength) * u - 1, .axis, thickness: u)
            let label = namedColumns ? truncated(columnText[c], maxWidth: Int(cellW) - 4 * u, scale: u) : columnText[c]
            canvas.text(label, x: x, y: plot.maxY + (Furniture.tickLength + 4) * u, align: .center)
        }
        if !columnLabel.isEmpty {
            canvas.text(truncated(columnLabel, maxWidth: plot.width, scale: u), x: plot.midX,
                        y: plot.maxY + (Furniture.tickLength + 4 + 9 + 8) * u, align: .center)
        }
        if !rowLabel.isEmpty {
            canvas.verticalText(truncated(rowLabel, maxWidth: plot.height, scale: u), centerX: 12 * u,
                                centerY: plot.midY)
        }

        // Colour bar.
        let barRect = Rect(x: plot.maxX + 16 * u, y: plot.y, width: 14 * u, height: plot.height)
        for y in barRect.y..<barRect.maxY {
            let fraction = (Double(barRect.maxY - y) - 0.5) / Double(barRect.height)
            canvas.fill(Rect(x: barRect.x, y: y, width: barRect.width, height: 1),
                        Heatmap.color(-scaleLimit + 2 * scaleLimit * fraction, limit: scaleLimit))
        }
        canvas.strokeRect(Rect(x: barRect.x - u, y: barRect.y - u, width: barRect.width + 2 * u,
                               height: barRect.height + 2 * u),
                          .axis, thickness: u)
        for (t, label) in zip(bar.ticks, bar.labels) {
            let y = Int(bar.map(t, from: Double(barRect.maxY) - 0.5, to: Double(barRect.y) + 0.5).rounded(.down))
            canvas.hLine(barRect.maxX + u, barRect.maxX + 4 * u - 1, y, .axis, thickness: u)
            canvas.text(label, x: barRect.maxX + 6 * u, y: y, align: .left, valign: .middle)
        }
        if !valueLabel.isEmpty {
            canvas.verticalText(truncated(valueLabel, maxWidth: plot.height, scale: u),
                                centerX: barRect.maxX + 18 * u + barLabels, centerY: plot.midY)
        }
        return canvas.image
    }
}
