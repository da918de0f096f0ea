// transformers' rescale and normalize of 8-bit samples (BaseImageProcessor.rescale / normalize, PIL backend):
// each sample v becomes Float(Double(v) · rescale_factor) (a float64 product rounded to float32), then
// (x − mean) / std in float32. Every family's image processor uses this table and its checks.

/// The value of each 8-bit sample of each RGB channel after rescale and normalize.
public struct PixelNormalization: Sendable {
    /// `table[channel][sample]`.
    public let table: [[Float]]

    /// `rescaleFactor` nil: no rescale; `mean`/`std` nil: no normalization (3 values each otherwise, checked by
    /// `validate`).
    public init(rescaleFactor: Double?, mean: [Double]?, std: [Double]?) {
        let m = mean?.map { Float($0) }, s = std?.map { Float($0) }
        var table = [[Float]](repeating: [Float](repeating: 0, count: 256), count: 3)
        for c in 0..<3 {
            for v in 0..<256 {
                var x = rescaleFactor.map { Float(Double(v) * $0) } ?? Float(v)
                if let m, let s { x = (x - m[c]) / s[c] }
                table[c][v] = x
            }
        }
        self.table = table
    }

    /// The checks of `rescale_factor`, `image_mean` and `image_std` of a processor config (`source`).
    public static func validate(doRescale: Bool, rescaleFactor: Double, doNormalize: Bool, mean: [Double],
                                std: [Double], source: String) throws {
        if doRescale, !rescaleFactor.isFinite {
            throw FormatError(.malformed, file: source, "rescale_factor \(rescaleFactor) is not finite")
        }
        guard doNormalize else { return }
        guard mean.count == 3, std.count == 3 else {
            throw FormatError(.inconsistent, file: source,
                              "image_mean has \(mean.count) and image_std \(std.count) values; RGB needs 3 each")
        }
        guard mean.allSatisfy(\.isFinite), std.allSatisfy({ $0.isFinite && Float($0) != 0 }) else {
            throw FormatError(.malformed, file: source,
                              "image_mean \(mean) / image_std \(std) must be finite, std non-zero")
        }
    }
}
