// RGBImage: an 8-bit RGB raster (row-major, interleaved), with the alpha plane kept on the side when the
// source had one, so that callers can choose between PIL's `convert("RGB")` (alpha dropped) and
// transformers' `convert_to_rgb` (alpha composited onto white).

/// An 8-bit RGB image: `pixels` holds `width * height * 3` bytes, row-major, `R G B` interleaved.
/// `alpha` (one byte per pixel) is present when the source image had transparency (an alpha channel or a
/// tRNS chunk); `pixels` never has alpha applied to it.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]
    public var alpha: [UInt8]?

    /// Largest side Arbiter accepts for any image it decodes or allocates.
    public static let maximumSide = 16384
    /// Largest pixel count (64 M pixels: 192 MB of RGB bytes).
    public static let maximumPixels = 64 << 20

    /// Creates an image; the byte counts must match the size (a programming error otherwise; use
    /// `init(validatingWidth:height:pixels:alpha:)` for data from outside).
    public init(width: Int, height: Int, pixels: [UInt8], alpha: [UInt8]? = nil) {
        precondition(width > 0 && height > 0, "image size \(width)x\(height) must be positive")
        precondition(pixels.count == width * height * 3,
                     "\(width)x\(height) RGB needs \(width * height * 3) bytes, got \(pixels.count)")
        precondition(alpha == nil || alpha?.count == width * height, "alpha plane must hold \(width * height) bytes")
        self.width = width
        self.height = height
        self.pixels = pixels
        self.alpha = alpha
    }

    /// Creates an image from untrusted sizes and bytes, throwing `FormatError` naming `source` on a mismatch.
    public init(validatingWidth width: Int, height: Int, pixels: [UInt8], alpha: [UInt8]? = nil,
                source: String = "image") throws {
        guard width > 0, height > 0 else {
            throw FormatError(.malformed, file: source, "image size \(width)x\(height) must be positive")
        }
        try RGBImage.checkSize(width: width, height: height, source: source)
        guard pixels.count == width * height * 3 else {
            throw FormatError(.inconsistent, file: source,
                              "\(width)x\(height) RGB needs \(width * height * 3) bytes, got \(pixels.count)")
        }
        if let alpha, alpha.count != width * height {
            throw FormatError(.inconsistent, file: source,
                              "\(width)x\(height) alpha plane needs \(width * height) bytes, got \(alpha.count)")
        }
        self.init(width: width, height: height, pixels: pixels, alpha: alpha)
    }

    /// An image filled with one color.
    public init(width: Int, height: Int, red: UInt8, green: UInt8, blue: UInt8) {
        precondition(width > 0 && height > 0, "image size \(width)x\(height) must be positive")
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[3 * i] = red; pixels[3 * i + 1] = green; pixels[3 * i + 2] = blue
        }
        self.init(width: width, height: height, pixels: pixels)
    }

    /// Throws `.tooLarge` when a declared size is over `maximumSide` or `maximumPixels`.
    public static func checkSize(width: Int, height: Int, source: String) throws {
        guard width <= maximumSide, height <= maximumSide else {
            throw FormatError(.tooLarge, file: source,
                              "declared size \(width)x\(height) exceeds the \(maximumSide)-pixel limit per side")
        }
        guard width * height <= maximumPixels else {
            throw FormatError(.tooLarge, file: source,
                              "declared size \(width)x\(height) = \(width * height) pixels exceeds the "
                              + "\(maximumPixels)-pixel limit")
        }
    }

    /// The `(r, g, b)` of pixel `(x, y)`.
    public func pixel(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        let i = 3 * (y * width + x)
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }

    /// The image without its alpha plane (PIL's `Image.convert("RGB")`: colors kept as they are).
    public var droppingAlpha: RGBImage { RGBImage(width: width, height: height, pixels: pixels) }

    /// The image composited onto an opaque white background, as transformers' `convert_to_rgb` does for images
    /// with transparency (`PIL.Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")`), with
    /// Pillow's integer arithmetic (AlphaComposite.c: 7 extra precision bits, rounded divisions by 255).
    /// Images without alpha are returned unchanged.
    public func compositedOnWhite() -> RGBImage {
        guard let alpha else { return self }
        var out = pixels
        for i in 0..<(width * height) {
            let a = UInt32(alpha[i])
            if a == 0 {
                out[3 * i] = 255; out[3 * i + 1] = 255; out[3 * i + 2] = 255
                continue
            }
            // Pillow, with destination (255, 255, 255, 255): blend = 255 * (255 - a), outa255 = 255 * 255.
            let outa255: UInt32 = a * 255 + 255 * (255 - a)
            let coef1 = a * 255 * 255 * 128 / outa255
            let coef2 = 255 * 128 - coef1
            for c in 0..<3 {
                let tmp = UInt32(pixels[3 * i + c]) * coef1 + 255 * coef2 + (0x80 << 7)
                out[3 * i + c] = UInt8(truncatingIfNeeded: (((tmp >> 8) + tmp) >> 8) >> 7)
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}
