// An independent reader of generated images: finds the objects from the pixels (connected components of
// non-background pixels), names their colour (nearest palette entry), their shape (row-width features) and
// where a single object sits. It shares no code with the rasteriser; agreement with the labels guards it.
import ArbiterData
import ArbiterFormats

enum Oracle {
    struct Blob {
        var points: [(x: Int, y: Int)] = []
        var sum = (0, 0, 0)
        var minX = Int.max, maxX = Int.min, minY = Int.max, maxY = Int.min
    }

    /// Objects: 8-connected components of pixels differing from the top-left corner pixel by more than 48 in
    /// some channel (background noise is at most ±12 per channel, so two background pixels differ by ≤ 24).
    static func blobs(_ image: RGBImage) -> [Blob] {
        let w = image.width, h = image.height
        let corner = image.pixel(x: 0, y: 0)
        func isObject(_ x: Int, _ y: Int) -> Bool {
            let p = image.pixel(x: x, y: y)
            return max(abs(Int(p.0) - Int(corner.0)), abs(Int(p.1) - Int(corner.1)), abs(Int(p.2) - Int(corner.2))) > 48
        }
        var seen = [Bool](repeating: false, count: w * h)
        var result: [Blob] = []
        for y in 0..<h {
            for x in 0..<w where !seen[y * w + x] && isObject(x, y) {
                var blob = Blob()
                var stack = [(x, y)]
                seen[y * w + x] = true
                while let (px, py) = stack.popLast() {
                    let p = image.pixel(x: px, y: py)
                    blob.points.append((px, py))
                    blob.sum.0 += Int(p.0); blob.sum.1 += Int(p.1); blob.sum.2 += Int(p.2)
                    blob.minX = min(blob.minX, px); blob.maxX = max(blob.maxX, px)
                    blob.minY = min(blob.minY, py); blob.maxY = max(blob.maxY, py)
                    for dy in -1...1 {
                        for dx in -1...1 {
                            let nx = px + dx, ny = py + dy
                            guard nx >= 0, ny >= 0, nx < w, ny < h, !seen[ny * w + nx], isObject(nx, ny) else { continue }
                            seen[ny * w + nx] = true
                            stack.append((nx, ny))
                        }
                    }
                }
                result.append(blob)
            }
        }
        return result
    }

    /// The palette colour nearest to the blob's mean colour.
    static func color(_ blob: Blob) -> String {
        let n = blob.points.count
        let mean = (blob.sum.0 / n, blob.sum.1 / n, blob.sum.2 / n)
        return Vocabulary.colors.min { a, b in
            distance(a.rgb, mean) < distance(b.rgb, mean)
        }!.name
    }

    private static func distance(_ c: (UInt8, UInt8, UInt8), _ m: (Int, Int, Int)) -> Int {
        let d = (Int(c.0) - m.0, Int(c.1) - m.1, Int(c.2) - m.2)
        return d.0 * d.0 + d.1 * d.1 + d.2 * d.2
    }

    /// Shape from row widths: a square fills its top row; a triangle has a point on top and a full base; a
    /// diamond is pointed at both ends; a cross is narrow a quarter of the way down; else a circle.
    static func shape(_ blob: Blob) -> String {
        let width = blob.maxX - blob.minX + 1, height = blob.maxY - blob.minY + 1
        func rowWidth(_ y: Int) -> Int { blob.points.filter { $0.y == y }.count }
        let top = rowWidth(blob.minY), bottom = rowWidth(blob.maxY), quarter = rowWidth(blob.minY + height / 4)
        if top == width && bottom == width { return "square" }
        if top <= 2 && bottom == width { return "triangle" }
        if top <= 2 && bottom <= 2 { return "diamond" }
        if 2 * quarter <= width { return "cross" }
        return "circle"
    }

    /// Left/right/top/bottom from the centroid's offset from the image centre (the larger axis wins).
    static func position(_ blob: Blob, size: Int) -> String {
        let n = blob.points.count
        let cx2 = 2 * blob.points.reduce(0) { $0 + $1.x } - n * (size - 1)   // 2n × offset
        let cy2 = 2 * blob.points.reduce(0) { $0 + $1.y } - n * (size - 1)
        if abs(cx2) >= abs(cy2) { return cx2 < 0 ? "left" : "right" }
        return cy2 < 0 ? "top" : "bottom"
    }

    /// What the oracle reads for `task` from the image, or a description of why it cannot.
    static func read(task: String, image: RGBImage) -> String {
        let found = blobs(image)
        switch task {
        case "count":
            let colors = Set(found.map(color))
            return colors.count <= 1 ? String(found.count) : "\(found.count) blobs of \(colors.count) colours"
        default:
            guard found.count == 1 else { return "\(found.count) blobs" }
            switch task {
            case "color": return color(found[0])
            case "shape": return shape(found[0])
            case "position": return position(found[0], size: image.width)
            default: return "unknown task \(task)"
            }
        }
    }
}
