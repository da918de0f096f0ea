// CLIP image preprocessing as transformers 5.24 does it, mirroring
// transformers/models/clip/image_processing_pil_clip.py (CLIPImageProcessorPil, PilBackend._preprocess) and
// image_transforms.py (convert_to_rgb, get_resize_output_image_size, resize, center_crop, rescale, normalize).
//
// Which backend: in transformers 5.24 `CLIPImageProcessor` is the torchvision backend, and AutoImageProcessor
// picks it when torchvision is importable; without torchvision both fall back to `CLIPImageProcessorPil`.
// Arbiter's goldens are made without torchvision (PyPI only has CUDA builds of torchvision, which do not import
// next to torch +cpu), so transformers runs the PIL backend, and this file reproduces it bit for bit:
//   convert_to_rgb (alpha composited onto white) → PIL resize (shortest edge, int() truncation) →
//   center crop (floor offsets, zero padding) → uint8·rescale_factor in float64 → float32 →
//   (x − mean) / std in float32, channel-first.
// The torchvision backend (`resize(..., antialias=True)` on tensors) differs from this by a few 8-bit steps
// on some pixels.
import ArbiterFormats
import ArbiterTensor
import Foundation

/// The fields of a Hugging Face `preprocessor_config.json` that CLIP's image processor uses, with CLIP's
/// defaults for missing keys.
public struct CLIPImageProcessorConfig: Codable, Sendable, Equatable {
    /// How `size` is given: `{"shortest_edge": n}` (or a plain int) or `{"height": h, "width": w}` (or `[h, w]`).
    public enum Size: Sendable, Equatable {
        case shortestEdge(Int)
        case exact(height: Int, width: Int)
    }

    public var imageProcessorType: String
    public var doResize: Bool
    public var size: Size
    public var resample: Int
    public var doCenterCrop: Bool
    public var cropHeight: Int
    public var cropWidth: Int
    public var doRescale: Bool
    public var rescaleFactor: Double
    public var doNormalize: Bool
    public var imageMean: [Double]
    public var imageStd: [Double]
    public var doConvertRGB: Bool

    /// OPENAI_CLIP_MEAN / OPENAI_CLIP_STD from transformers.image_utils.
    public static let openAIMean: [Double] = [0.48145466, 0.4578275, 0.40821073]
    public static let openAIStd: [Double] = [0.26862954, 0.26130258, 0.27577711]
    /// Types Arbiter treats as CLIP's processor (all run the PIL backend here; see the file comment).
    public static let supportedTypes = ["CLIPImageProcessor", "CLIPImageProcessorFast", "CLIPImageProcessorPil"]

    public init(imageProcessorType: String = "CLIPImageProcessor", doResize: Bool = true,
                size: Size = .shortestEdge(224), resample: Int = 3, doCenterCrop: Bool = true,
                cropHeight: Int = 224, cropWidth: Int = 224, doRescale: Bool = true,
                rescaleFactor: Double = 1.0 / 255.0, doNormalize: Bool = true,
                imageMean: [Double] = openAIMean, imageStd: [Double] = openAIStd, doConvertRGB: Bool = true) {
        self.imageProcessorType = imageProcessorType
        self.doResize = doResize
        self.size = size
        self.resample = resample
        self.doCenterCrop = doCenterCrop
        self.cropHeight = cropHeight
        self.cropWidth = cropWidth
        self.doRescale = doRescale
        self.rescaleFactor = rescaleFactor
        self.doNormalize = doNormalize
        self.imageMean = imageMean
        self.imageStd = imageStd
        self.doConvertRGB = doConvertRGB
    }

    enum CodingKeys: String, CodingKey {
        case imageProcessorType = "image_processor_type"
        case featureExtractorType = "feature_extractor_type"
        case doResize = "do_resize"
        case size
        case resample
        case doCenterCrop = "do_center_crop"
        case cropSize = "crop_size"
        case doRescale = "do_rescale"
        case rescaleFactor = "rescale_factor"
        case doNormalize = "do_normalize"
        case imageMean = "image_mean"
        case imageStd = "image_std"
        case doConvertRGB = "do_convert_rgb"
    }

    private struct SizeKeys: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let type = try c.decodeIfPresent(String.self, forKey: .imageProcessorType) {
            imageProcessorType = type
        } else if let legacy = try c.decodeIfPresent(String.self, forKey: .featureExtractorType) {
            // transformers maps feature_extractor_type "XFeatureExtractor" to "XImageProcessor".
            imageProcessorType = legacy.replacingOccurrences(of: "FeatureExtractor", with: "ImageProcessor")
        } else {
            throw DecodingError.keyNotFound(CodingKeys.imageProcessorType, .init(
                codingPath: c.codingPath, debugDescription: "image_processor_type is required"))
        }
        doResize = try c.decodeIfPresent(Bool.self, forKey: .doResize) ?? true
        size = try Self.decodeSize(c, key: .size, intMeansShortestEdge: true) ?? .shortestEdge(224)
        resample = try c.decodeIfPresent(Int.self, forKey: .resample) ?? 3
        doCenterCrop = try c.decodeIfPresent(Bool.self, forKey: .doCenterCrop) ?? true
        switch try Self.decodeSize(c, key: .cropSize, intMeansShortestEdge: false) ?? .exact(height: 224, width: 224) {
        case .exact(let h, let w): cropHeight = h; cropWidth = w
        case .shortestEdge:
            throw DecodingError.dataCorruptedError(forKey: .cropSize, in: c,
                                                   debugDescription: "crop_size must have height and width")
        }
        doRescale = try c.decodeIfPresent(Bool.self, forKey: .doRescale) ?? true
        rescaleFactor = try c.decodeIfPresent(Double.self, forKey: .rescaleFactor) ?? 1.0 / 255.0
        doNormalize = try c.decodeIfPresent(Bool.self, forKey: .doNormalize) ?? true
        imageMean = try Self.decodeChannels(c, key: .imageMean) ?? Self.openAIMean
        imageStd = try Self.decodeChannels(c, key: .imageStd) ?? Self.openAIStd
        doConvertRGB = try c.decodeIfPresent(Bool.self, forKey: .doConvertRGB) ?? true
    }

    /// transformers' `get_size_dict`: an int is `{shortest_edge}` for `size` (CLIP sets default_to_square=False)
    /// and `{height, width}` for `crop_size`; a list is `[height, width]`; a dict must have exactly one of the
    /// key sets CLIP can use.
    private static func decodeSize(_ c: KeyedDecodingContainer<CodingKeys>, key: CodingKeys,
                                   intMeansShortestEdge: Bool) throws -> Size? {
        guard c.contains(key), try !c.decodeNil(forKey: key) else { return nil }
        if let n = try? c.decode(Int.self, forKey: key) {
            return intMeansShortestEdge ? .shortestEdge(n) : .exact(height: n, width: n)
        }
        if let list = try? c.decode([Int].self, forKey: key) {
            guard list.count == 2 else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c,
                                                       debugDescription: "a size list must be [height, "
                                                                         + "width], got \(list)")
            }
            return .exact(height: list[0], width: list[1])
        }
        let dict = try c.decode([String: Int].self, forKey: key)
        switch Set(dict.keys) {
        case ["shortest_edge"]: return .shortestEdge(dict["shortest_edge"] ?? 0)
        case ["height", "width"]: return .exact(height: dict["height"] ?? 0, width: dict["width"] ?? 0)
        default:
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription:
                "size keys \(dict.keys.sorted()) are not supported for CLIP (use {shortest_edge} or {height, width})")
        }
    }

    private static func decodeChannels(_ c: KeyedDecodingContainer<CodingKeys>, key: CodingKeys) throws -> [Double]? {
        guard c.contains(key), try !c.decodeNil(forKey: key) else { return nil }
        if let v = try? c.decode(Double.self, forKey: key) { return [v, v, v] }
        return try c.decode([Double].self, forKey: key)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(imageProcessorType, forKey: .imageProcessorType)
        try c.encode(doResize, forKey: .doResize)
        var s = c.nestedContainer(keyedBy: SizeKeys.self, forKey: .size)
        switch size {
        case .shortestEdge(let n): try s.encode(n, forKey: SizeKeys(stringValue: "shortest_edge"))
        case .exact(let h, let w):
            try s.encode(h, forKey: SizeKeys(stringValue: "height"))
            try s.encode(w, forKey: SizeKeys(stringValue: "width"))
        }
        try c.encode(resample, forKey: .resample)
        try c.encode(doCenterCrop, forKey: .doCenterCrop)
        var crop = c.nestedContainer(keyedBy: SizeKeys.self, forKey: .cropSize)
        try crop.encode(cropHeight, forKey: SizeKeys(stringValue: "height"))
        try crop.encode(cropWidth, forKey: SizeKeys(stringValue: "width"))
        try c.encode(doRescale, forKey: .doRescale)
        try c.encode(rescaleFactor, forKey: .rescaleFactor)
        try c.encode(doNormalize, forKey: .doNormalize)
        try c.encode(imageMean, forKey: .imageMean)
        try c.encode(imageStd, forKey: .imageStd)
        try c.encode(doConvertRGB, forKey: .doConvertRGB)
    }

    /// Throws a `FormatError` naming `source` for values the processor cannot run with.
    public func validate(source: String) throws {
        guard Self.supportedTypes.contains(imageProcessorType) else {
            throw FormatError(.unsupported, file: source,
                              "image_processor_type '\(imageProcessorType)' is not supported (Arbiter implements "
                              + "\(Self.supportedTypes.joined(separator: ", ")))")
        }
        if doResize {
            guard PILResampleFilter(rawValue: resample) != nil else {
                throw FormatError(.unsupported, file: source,
                                  "resample \(resample) is not supported (2 = bilinear, 3 = bicubic)")
            }
            switch size {
            case .shortestEdge(let n):
                guard n > 0, n <= RGBImage.maximumSide else {
                    throw FormatError(.malformed, file: source,
                                      "size.shortest_edge \(n) must be in 1...\(RGBImage.maximumSide)")
                }
            case .exact(let h, let w):
                guard h > 0, w > 0 else {
                    throw FormatError(.malformed, file: source, "size \(h)x\(w) must be positive")
                }
                do { try RGBImage.checkSize(width: w, height: h, source: source) } catch let e as FormatError {
                    throw FormatError(e.kind, file: e.file, "size: \(e.problem)")
                }
            }
        }
        if doCenterCrop {
            guard cropHeight > 0, cropWidth > 0 else {
                throw FormatError(.malformed, file: source, "crop_size \(cropHeight)x\(cropWidth) must be positive")
            }
            do {
                try RGBImage.checkSize(width: cropWidth, height: cropHeight, source: source)
            } catch let e as FormatError {
                throw FormatError(e.kind, file: e.file, "crop_size: \(e.problem)")
            }
        }
        try PixelNormalization.validate(doRescale: doRescale, rescaleFactor: rescaleFactor, doNormalize: doNormalize,
                                        mean: imageMean, std: imageStd, source: source)
    }
}

/// Turns an `RGBImage` into CLIP pixel values `[3, H, W]` (Float32, channel-first), as transformers 5.24's
/// CLIP image processor (PIL backend) does for one image.
public struct CLIPImageProcessor: Sendable {
    public let config: CLIPImageProcessorConfig

    /// Validates `config`; errors name `source` (the config file).
    public init(config: CLIPImageProcessorConfig, source: String = "preprocessor_config.json") throws {
        try config.validate(source: source)
        self.config = config
    }

    /// Reads and validates a `preprocessor_config.json`.
    public init(contentsOf url: URL) throws {
        let config = try JSONFile.decode(CLIPImageProcessorConfig.self, from: url)
        try self.init(config: config, source: url.path)
    }

    /// The (height, width) the resize step produces for an input of `height` x `width`
    /// (transformers' `get_resize_output_image_size` with `default_to_square=False`).
    public func resizedSize(height: Int, width: Int) -> (height: Int, width: Int) {
        guard config.doResize else { return (height, width) }
        switch config.size {
        case .exact(let h, let w):
            return (h, w)
        case .shortestEdge(let target):
            let (short, long) = width <= height ? (width, height) : (height, width)
            // Python: int(requested_new_short * long / short), true division then truncation.
            let newLong = Int(Double(target * long) / Double(short))
            return width <= height ? (newLong, target) : (target, newLong)
        }
    }

    /// The `[3, H, W]` pixel values for `image`.
    public func preprocess(_ image: RGBImage) throws -> Tensor {
        // convert_to_rgb: images with transparency are composited onto white (PIL alpha_composite).
        var current = config.doConvertRGB ? image.compositedOnWhite() : image.droppingAlpha

        if config.doResize {
            let (h, w) = resizedSize(height: current.height, width: current.width)
            guard h > 0, w > 0 else {
                throw FormatError(.unsupported, file: "image \(image.width)x\(image.height)",
                                  "resizing to \(w)x\(h) leaves no pixels (aspect ratio too extreme for size "
                                  + "\(config.size))")
            }
            try RGBImage.checkSize(width: w, height: h, source: "image \(image.width)x\(image.height) resized")
            // validate() guaranteed the filter exists.
            let filter = PILResampleFilter(rawValue: config.resample) ?? .bicubic
            current = PILResample.resize(current, width: w, height: h, filter: filter)
        }

        var outHeight = current.height, outWidth = current.width
        var top = 0, left = 0
        if config.doCenterCrop {
            outHeight = config.cropHeight
            outWidth = config.cropWidth
            // Python floor division; negative offsets mean zero padding (image_transforms.center_crop).
            top = floorDiv(current.height - outHeight, 2)
            left = floorDiv(current.width - outWidth, 2)
        }

        let plane = outHeight * outWidth
        var scalars = [Float](repeating: 0, count: 3 * plane)
        let table = PixelNormalization(rescaleFactor: config.doRescale ? config.rescaleFactor : nil,
                                       mean: config.doNormalize ? config.imageMean : nil,
                                       std: config.doNormalize ? config.imageStd : nil).table
        for y in 0..<outHeight {
            let sy = y + top
            for x in 0..<outWidth {
                let sx = x + left
                let inside = sy >= 0 && sy < current.height && sx >= 0 && sx < current.width
                let base = (sy * current.width + sx) * 3
                for c in 0..<3 {
                    let v = inside ? Int(current.pixels[base + c]) : 0
                    scalars[c * plane + y * outWidth + x] = table[c][v]
                }
            }
        }
        return Tensor(shape: [3, outHeight, outWidth], scalars: scalars)
    }

    private func floorDiv(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}
