// Qwen2-VL / Qwen2.5-VL image preprocessing as transformers 5.24 does it, mirroring
// transformers/models/qwen2_vl/image_processing_pil_qwen2_vl.py (smart_resize, Qwen2VLImageProcessorPil.resize,
// patchify, _preprocess) on the PIL backend (image_processing_backends.PilBackend). Qwen2.5-VL has no processor
// of its own: its preprocessor_config.json names Qwen2VLImageProcessor too.
//
// Which backend: without torchvision, AutoImageProcessor picks `Qwen2VLImageProcessorPil` (Tools/golden_qwen_vl.py
// checks this), so the pipeline is: convert_to_rgb (alpha composited onto white) → smart_resize →
// PIL bicubic resize of the uint8 image → uint8·rescale_factor in float64 → float32 → (x − mean) / std in
// float32 → patches `[grid_h·grid_w, C·temporal·patch·patch]`, the still image repeated `temporal_patch_size`
// times, rows ordered by merge block (block row, block column, row in block, column in block).
//
// Deliberate difference: transformers 5.24's smart_resize silently scales up an image smaller than one merged
// patch (patch_size × merge_size) and silently exceeds max_pixels for extreme aspect ratios; Arbiter refuses
// both with an error naming the values (as Qwen's own qwen-vl-utils and transformers ≤ 4.4x did for the first).
import ArbiterFormats
import ArbiterTensor
import Foundation

/// The patch grid of one image in vision-tower patches: temporal, height, width (`image_grid_thw`).
public struct VisionGrid: Sendable, Equatable, CustomStringConvertible {
    public var t: Int
    public var h: Int
    public var w: Int

    public init(t: Int, h: Int, w: Int) {
        self.t = t
        self.h = h
        self.w = w
    }

    public var patches: Int { t * h * w }
    public var description: String { "[\(t), \(h), \(w)]" }
}

/// Pixel patches of one image and its grid, as `Qwen2VLImageProcessor` returns them.
public struct Qwen2VLPixels: Sendable {
    /// `[grid.patches, C · temporal_patch_size · patch_size²]`, Float32.
    public var pixelValues: Tensor
    public var grid: VisionGrid
    /// The size the image was resized to (`smart_resize`).
    public var resizedHeight: Int
    public var resizedWidth: Int

    public init(pixelValues: Tensor, grid: VisionGrid, resizedHeight: Int, resizedWidth: Int) {
        self.pixelValues = pixelValues
        self.grid = grid
        self.resizedHeight = resizedHeight
        self.resizedWidth = resizedWidth
    }
}

/// The fields of a Qwen2-VL `preprocessor_config.json`, with transformers' defaults for missing keys.
public struct Qwen2VLImageProcessorConfig: Codable, Sendable, Equatable {
    public var imageProcessorType: String
    public var doResize: Bool
    public var resample: Int
    public var doRescale: Bool
    public var rescaleFactor: Double
    public var doNormalize: Bool
    public var imageMean: [Double]
    public var imageStd: [Double]
    public var doConvertRGB: Bool
    /// `size.shortest_edge`, overridden by `min_pixels` (a pixel count, despite the key name).
    public var minPixels: Int
    /// `size.longest_edge`, overridden by `max_pixels`.
    public var maxPixels: Int
    public var patchSize: Int
    public var temporalPatchSize: Int
    public var mergeSize: Int

    public static let supportedTypes = ["Qwen2VLImageProcessor", "Qwen2VLImageProcessorFast",
                                        "Qwen2VLImageProcessorPil"]

    public init(imageProcessorType: String = "Qwen2VLImageProcessor", doResize: Bool = true, resample: Int = 3,
                doRescale: Bool = true, rescaleFactor: Double = 1.0 / 255.0, doNormalize: Bool = true,
                imageMean: [Double] = CLIPImageProcessorConfig.openAIMean,
                imageStd: [Double] = CLIPImageProcessorConfig.openAIStd, doConvertRGB: Bool = true,
                minPixels: Int = 56 * 56, maxPixels: Int = 28 * 28 * 1280, patchSize: Int = 14,
                temporalPatchSize: Int = 2, mergeSize: Int = 2) {
        self.imageProcessorType = imageProcessorType
        self.doResize = doResize
        self.resample = resample
        self.doRescale = doRescale
        self.rescaleFactor = rescaleFactor
        self.doNormalize = doNormalize
        self.imageMean = imageMean
        self.imageStd = imageStd
        self.doConvertRGB = doConvertRGB
        self.minPixels = minPixels
        self.maxPixels = maxPixels
        self.patchSize = patchSize
        self.temporalPatchSize = temporalPatchSize
        self.mergeSize = mergeSize
    }

    enum CodingKeys: String, CodingKey {
        case imageProcessorType = "image_processor_type"
        case doResize = "do_resize", resample, doRescale = "do_rescale", rescaleFactor = "rescale_factor"
        case doNormalize = "do_normalize", imageMean = "image_mean", imageStd = "image_std"
        case doConvertRGB = "do_convert_rgb", size, minPixels = "min_pixels", maxPixels = "max_pixels"
        case patchSize = "patch_size", temporalPatchSize = "temporal_patch_size", mergeSize = "merge_size"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Qwen2VLImageProcessorConfig()
        imageProcessorType = try c.decodeIfPresent(String.self, forKey: .imageProcessorType) ?? d.imageProcessorType
        doResize = try c.decodeIfPresent(Bool.self, forKey: .doResize) ?? d.doResize
        resample = try c.decodeIfPresent(Int.self, forKey: .resample) ?? d.resample
        doRescale = try c.decodeIfPresent(Bool.self, forKey: .doRescale) ?? d.doRescale
        rescaleFactor = try c.decodeIfPresent(Double.self, forKey: .rescaleFactor) ?? d.rescaleFactor
        doNormalize = try c.decodeIfPresent(Bool.self, forKey: .doNormalize) ?? d.doNormalize
        imageMean = try Self.channels(c, .imageMean) ?? d.imageMean
        imageStd = try Self.channels(c, .imageStd) ?? d.imageStd
        doConvertRGB = try c.decodeIfPresent(Bool.self, forKey: .doConvertRGB) ?? d.doConvertRGB
        // Qwen2VLImageProcessorPil.__init__: min_pixels / max_pixels override size's shortest/longest edge.
        let size = c.contains(.size) && (try? c.decodeNil(forKey: .size)) == false
            ? try c.decode([String: Int].self, forKey: .size) : [:]
        minPixels = try c.decodeIfPresent(Int.self, forKey: .minPixels) ?? size["shortest_edge"] ?? d.minPixels
        maxPixels = try c.decodeIfPresent(Int.self, forKey: .maxPixels) ?? size["longest_edge"] ?? d.maxPixels
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? d.patchSize
        temporalPatchSize = try c.decodeIfPresent(Int.self, forKey: .temporalPatchSize) ?? d.temporalPatchSize
        mergeSize = try c.decodeIfPresent(Int.self, forKey: .mergeSize) ?? d.mergeSize
    }

    private static func channels(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> [Double]? {
        guard c.contains(key), try !c.decodeNil(forKey: key) else { return nil }
        if let v = try? c.decode(Double.self, forKey: key) { return [v, v, v] }
        return try c.decode([Double].self, forKey: key)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(imageProcessorType, forKey: .imageProcessorType)
        try c.encode(doResize, forKey: .doResize)
        try c.encode(resample, forKey: .resample)
        try c.encode(doRescale, forKey: .doRescale)
        try c.encode(rescaleFactor, forKey: .rescaleFactor)
        try c.encode(doNormalize, forKey: .doNormalize)
        try c.encode(imageMean, forKey: .imageMean)
        try c.encode(imageStd, forKey: .imageStd)
        try c.encode(doConvertRGB, forKey: .doConvertRGB)
        try c.encode(minPixels, forKey: .minPixels)
        try c.encode(maxPixels, forKey: .maxPixels)
        try c.encode(patchSize, forKey: .patchSize)
        try c.encode(temporalPatchSize, forKey: .temporalPatchSize)
        try c.encode(mergeSize, forKey: .mergeSize)
    }

    /// Side length of one merged patch: both resized sides are multiples of it.
    public var factor: Int { patchSize * mergeSize }

    /// Throws a `FormatError` naming `source` for values the processor cannot run with.
    public func validate(source: String) throws {
        guard Self.supportedTypes.contains(imageProcessorType) else {
            throw FormatError(.unsupported, file: source,
                              "image_processor_type '\(imageProcessorType)' is not supported (Arbiter implements "
                              + "\(Self.supportedTypes.joined(separator: ", ")))")
        }
        for (name, value) in [("patch_size", patchSize), ("temporal_patch_size", temporalPatchSize),
                              ("merge_size", mergeSize)] where value <= 0 || value > 1024 {
            throw FormatError(.malformed, file: source, "\(name) \(value) must be in 1...1024")
        }
        if doResize {
            guard PILResampleFilter(rawValue: resample) != nil else {
                throw FormatError(.unsupported, file: source,
                                  "resample \(resample) is not supported (2 = bilinear, 3 = bicubic)")
            }
            // Above the image cap the resized image would be refused anyway; here it also keeps smart_resize's
            // arithmetic (which upsizes small images to min_pixels) far from Int's range.
            guard maxPixels <= RGBImage.maximumPixels else {
                throw FormatError(.tooLarge, file: source, "max_pixels \(maxPixels) exceeds the "
                    + "\(RGBImage.maximumPixels)-pixel limit of a resized image")
            }
            guard minPixels >= 0, maxPixels >= factor * factor, minPixels <= maxPixels else {
                throw FormatError(.malformed, file: source,
                                  "min_pixels \(minPixels) / max_pixels \(maxPixels) must satisfy 0 ≤ min_pixels ≤ "
                                  + "max_pixels and max_pixels ≥ (patch_size·merge_size)² = \(factor * factor)")
            }
        }
        try PixelNormalization.validate(doRescale: doRescale, rescaleFactor: rescaleFactor, doNormalize: doNormalize,
                                        mean: imageMean, std: imageStd, source: source)
    }
}

/// Turns an `RGBImage` into Qwen2-VL pixel patches and their grid, as transformers 5.24's
/// `Qwen2VLImageProcessorPil` does for one image.
public struct Qwen2VLImageProcessor: Sendable {
    public let config: Qwen2VLImageProcessorConfig

    /// Validates `config`; errors name `source` (the config file).
    public init(config: Qwen2VLImageProcessorConfig, source: String = "preprocessor_config.json") throws {
        try config.validate(source: source)
        self.config = config
    }

    /// Reads and validates a `preprocessor_config.json`.
    public init(contentsOf url: URL) throws {
        let config = try JSONFile.decode(Qwen2VLImageProcessorConfig.self, from: url)
        try self.init(config: config, source: url.path)
    }

    /// transformers' `smart_resize`: both sides multiples of `patch_size · merge_size`, the pixel count within
    /// `min_pixels…max_pixels`, the aspect ratio kept as closely as possible. Python's float arithmetic
    /// (banker's rounding in `round`, `floor`/`ceil` of doubles) is reproduced step by step.
    public func smartResize(height: Int, width: Int, source: String = "image") throws -> (height: Int, width: Int) {
        let factor = config.factor
        let label = "\(source) \(width)x\(height)"
        guard height >= factor, width >= factor else {
            throw FormatError(.unsupported, file: label,
                              "the image is smaller than one merged patch: height \(height) and width \(width) must "
                              + "both be at least patch_size·merge_size = \(factor)")
        }
        let h = Double(height), w = Double(width), f = Double(factor)
        let ratio = max(h, w) / min(h, w)
        guard ratio <= 200 else {
            throw FormatError(.unsupported, file: label, "absolute aspect ratio must be at most 200, got \(ratio)")
        }
        var hBar = Int((h / f).rounded(.toNearestOrEven)) * factor
        var wBar = Int((w / f).rounded(.toNearestOrEven)) * factor
        let minPixels = Double(config.minPixels), maxPixels = Double(config.maxPixels)
        if Double(hBar * wBar) > maxPixels {
            let beta = ((h * w) / maxPixels).squareRoot()
            hBar = max(factor, Int((h / beta / f).rounded(.down)) * factor)
            wBar = max(factor, Int((w / beta / f).rounded(.down)) * factor)
        } else if Double(hBar * wBar) < minPixels {
            let beta = (minPixels / (h * w)).squareRoot()
            hBar = Int((h * beta / f).rounded(.up)) * factor
            wBar = Int((w * beta / f).rounded(.up)) * factor
        }
        guard hBar * wBar <= config.maxPixels else {
            throw FormatError(.tooLarge, file: label,
                              "no size with sides multiple of \(factor) keeps this aspect ratio within max_pixels "
                              + "\(config.maxPixels): smart_resize gives \(wBar)x\(hBar) = \(hBar * wBar) pixels")
        }
        return (hBar, wBar)
    }

    /// Pixel patches and grid for `image`.
    public func preprocess(_ image: RGBImage, source: String = "image") throws -> Qwen2VLPixels {
        var current = config.doConvertRGB ? image.compositedOnWhite() : image.droppingAlpha
        if config.doResize {
            let (h, w) = try smartResize(height: current.height, width: current.width, source: source)
            try RGBImage.checkSize(width: w, height: h, source: "\(source) \(image.width)x\(image.height) resized")
            // validate() guaranteed the filter exists.
            let filter = PILResampleFilter(rawValue: config.resample) ?? .bicubic
            current = PILResample.resize(current, width: w, height: h, filter: filter)
        }
        let p = config.patchSize, m = config.mergeSize, temporal = config.temporalPatchSize
        guard current.height % (p * m) == 0, current.width % (p * m) == 0 else {
            throw FormatError(.inconsistent, file: "\(source) \(current.width)x\(current.height)",
                              "with do_resize false the image sides must be multiples of "
                              + "patch_size·merge_size = \(p * m)")
        }
        let table = PixelNormalization(rescaleFactor: config.doRescale ? config.rescaleFactor : nil,
                                       mean: config.doNormalize ? config.imageMean : nil,
                                       std: config.doNormalize ? config.imageStd : nil).table
        let gridH = current.height / p, gridW = current.width / p
        let rowWidth = 3 * temporal * p * p
        var out = [Float](repeating: 0, count: gridH * gridW * rowWidth)
        var row = 0
        // numpy: reshape (C, gh/m, m, p, gw/m, m, p) → transpose (gh/m, gw/m, m, m, C, p, p) → repeat temporal.
        for blockY in 0..<(gridH / m) {
            for blockX in 0..<(gridW / m) {
                for inY in 0..<m {
                    for inX in 0..<m {
                        let py = (blockY * m + inY) * p, px = (blockX * m + inX) * p
                        let base = row * rowWidth
                        for c in 0..<3 {
                            for t in 0..<temporal {
                                for ky in 0..<p {
                                    for kx in 0..<p {
                                        let v = Int(current.pixels[((py + ky) * current.width + px + kx) * 3 + c])
                                        out[base + ((c * temporal + t) * p + ky) * p + kx] = table[c][v]
                                    }
                                }
                            }
                        }
                        row += 1
                    }
                }
            }
        }
        return Qwen2VLPixels(pixelValues: Tensor(shape: [gridH * gridW, rowWidth], scalars: out),
                             grid: VisionGrid(t: 1, h: gridH, w: gridW),
                             resizedHeight: current.height, resizedWidth: current.width)
    }
}
