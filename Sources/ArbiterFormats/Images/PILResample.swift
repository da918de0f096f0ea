// Image resizing exactly as Pillow's `Image.resize` does it for 8-bit RGB images (src/libImaging/Resample.c,
// which transformers' PIL image-processing backend calls): separable convolution, horizontal pass first,
// filter support scaled by the downsampling factor (antialiasing), coefficients normalized in double
// precision then rounded to 22-bit fixed point, each pass rounded and clamped to 8 bits.
// Bit-exact with Pillow on x86-64 (Pillow's wheels are built without FMA contraction; Swift does not contract).

/// The resampling filters of `PIL.Image.Resampling` that Arbiter implements, by their PIL numbers.
public enum PILResampleFilter: Int, Sendable, CaseIterable {
    case bilinear = 2
    case bicubic = 3

    var support: Double {
        switch self {
        case .bilinear: return 1.0
        case .bicubic: return 2.0
        }
    }

    func weight(_ x: Double) -> Double {
        let x = x < 0 ? -x : x
        switch self {
        case .bilinear:
            return x < 1.0 ? 1.0 - x : 0.0
        case .bicubic:
            // Keys' cubic convolution with a = -0.5, written in Pillow's operation order.
            let a = -0.5
            if x < 1.0 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
            if x < 2.0 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0.0
        }
    }
}

public enum PILResample {
    static let precisionBits = 32 - 8 - 2

    /// Per output position: first source index, tap count, and `ksize` fixed-point coefficients.
    struct Coefficients {
        var ksize: Int
        var first: [Int]
        var count: [Int]
        var weights: [Int32]
    }

    /// Pillow's `precompute_coeffs` (box = whole image) followed by `normalize_coeffs_8bpc`.
    static func coefficients(inSize: Int, outSize: Int, filter: PILResampleFilter) -> Coefficients {
        let in0: Float = 0, in1 = Float(inSize)
        let scale = Double(in1 - in0) / Double(outSize)
        let filterScale = max(scale, 1.0)
        let support = filter.support * filterScale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        var first = [Int](repeating: 0, count: outSize)
        var count = [Int](repeating: 0, count: outSize)
        var weights = [Int32](repeating: 0, count: outSize * ksize)
        var k = [Double](repeating: 0, count: ksize)
        let one = Double(1 << precisionBits)
        for xx in 0..<outSize {
            let center = Double(in0) + (Double(xx) + 0.5) * scale
            let ss = 1.0 / filterScale
            var xmin = Int(center - support + 0.5)        // C (int) cast: truncation toward zero
            if xmin < 0 { xmin = 0 }
            var xmax = Int(center + support + 0.5)
            if xmax > inSize { xmax = inSize }
            xmax -= xmin
            var ww = 0.0
            for x in 0..<xmax {
                let w = filter.weight((Double(x + xmin) - center + 0.5) * ss)
                k[x] = w
                ww += w
            }
            for x in 0..<ksize {
                var value = x < xmax ? k[x] : 0
                if x < xmax && ww != 0.0 { value /= ww }
                weights[xx * ksize + x] = value < 0 ? Int32(-0.5 + value * one) : Int32(0.5 + value * one)
            }
            first[xx] = xmin
            count[xx] = xmax
        }
        return Coefficients(ksize: ksize, first: first, count: count, weights: weights)
    }

    /// Pillow's `clip8`: the fixed-point sum shifted down (arithmetic shift) and clamped to 0...255.
    @inline(__always)
    static func clip8(_ v: Int) -> UInt8 {
        let s = v >> precisionBits
        return s < 0 ? 0 : (s > 255 ? 255 : UInt8(s))
    }

    /// Resizes an RGB image (alpha, if any, is dropped) to `width` x `height` like `Image.resize` with `filter`.
    public static func resize(_ image: RGBImage, width: Int, height: Int, filter: PILResampleFilter) -> RGBImage {
        precondition(width > 0 && height > 0, "resize target \(width)x\(height) must be positive")
        let needHorizontal = width != image.width
        let needVertical = height != image.height
        if !needHorizontal && !needVertical { return image.droppingAlpha }

        let vertical = coefficients(inSize: image.height, outSize: height, filter: filter)
        // Rows of the source that the vertical pass reads.
        let rowFirst = vertical.first[0]
        let rowLast = vertical.first[height - 1] + vertical.count[height - 1]

        var source = image.pixels
        var sourceWidth = image.width
        var rowOffset = 0
        if needHorizontal {
            let horizontal = coefficients(inSize: image.width, outSize: width, filter: filter)
            let rows = rowLast - rowFirst
            var temp = [UInt8](repeating: 0, count: rows * width * 3)
            let half = 1 << (precisionBits - 1)
            for yy in 0..<rows {
                let rowBase = (yy + rowFirst) * image.width * 3
                for xx in 0..<width {
                    let xmin = horizontal.first[xx], n = horizontal.count[xx], kBase = xx * horizontal.ksize
                    var s0 = half, s1 = half, s2 = half
                    for x in 0..<n {
                        let k = Int(horizontal.weights[kBase + x])
                        let p = rowBase + (x + xmin) * 3
                        s0 += Int(image.pixels[p]) * k
                        s1 += Int(image.pixels[p + 1]) * k
                        s2 += Int(image.pixels[p + 2]) * k
                    }
                    let o = (yy * width + xx) * 3
                    temp[o] = clip8(s0); temp[o + 1] = clip8(s1); temp[o + 2] = clip8(s2)
                }
            }
            source = temp
            sourceWidth = width
            rowOffset = rowFirst
        }
        guard needVertical else {
            return RGBImage(width: width, height: height, pixels: source)
        }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        let half = 1 << (precisionBits - 1)
        for yy in 0..<height {
            let ymin = vertical.first[yy] - rowOffset, n = vertical.count[yy], kBase = yy * vertical.ksize
            for xx in 0..<sourceWidth {
                var s0 = half, s1 = half, s2 = half
                for y in 0..<n {
                    let k = Int(vertical.weights[kBase + y])
                    let p = ((y + ymin) * sourceWidth + xx) * 3
                    s0 += Int(source[p]) * k
                    s1 += Int(source[p + 1]) * k
                    s2 += Int(source[p + 2]) * k
                }
                let o = (yy * width + xx) * 3
                out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2)
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}
