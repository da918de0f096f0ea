// InternVL's image processor: GotOcr2's dynamic tiling as transformers 5.24 runs it for InternVL, mirroring
// transformers/models/got_ocr2/image_processing_pil_got_ocr2.py (get_all_supported_aspect_ratios,
// get_optimal_tiled_canvas, GotOcr2ImageProcessorPil.crop_image_to_patches and _preprocess) with the PIL backend
// (see CLIPImageProcessor.swift for why the PIL one), bit for bit:
//   convert_to_rgb → the canvas of columns × rows tiles closest to the image's aspect ratio (min_patches …
//   max_patches tiles) → PIL resize of the image to the canvas → its tiles, row by row → a thumbnail (the image
//   resized to one tile) when there is more than one tile → rescale and normalize each tile.
// InternVLProcessor passes `crop_to_patches=True` itself, over whatever the config says, so tiling is always on
// (unless max_patches is 1); an image then takes `image_seq_length × tiles` image tokens.
import ArbiterFormats
import ArbiterTensor
import Foundation

/// The fields of an InternVL `preprocessor_config.json` (`GotOcr2ImageProcessor`), with its defaults.
public struct InternVLImageProcessorConfig: Decodable, Sendable, Equatable {
    public var imageProcessorType: String
    public var doResize: Bool
    public var tileHeight: Int
    public var tileWidth: Int
    public var resample: Int
    public var doRescale: Bool
    public var rescaleFactor: Double
    public var doNormalize: Bool
    public var imageMean: [Double]
    public var imageStd: [Double]
    public var doConvertRGB: Bool
    /// As written in the file; InternVLProcessor overrides it with true (the file comment).
    public var cropToPatches: Bool
    public var minPatches: Int
    public var maxPatches: Int

    public static let supportedTypes = ["GotOcr2ImageProcessor", "GotOcr2ImageProcessorFast",
                                        "GotOcr2ImageProcessorPil"]

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        func value<T: Decodable>(_ key: String, _ type: T.Type) throws -> T? {
            try c.decodeIfPresent(type, forKey: AnyKey(key))
        }
        guard let type = try value("image_processor_type", String.self) else {
            throw DecodingError.keyNotFound(AnyKey("image_processor_type"), .init(
                codingPath: c.codingPath, debugDescription: "image_processor_type is required"))
        }
        imageProcessorType = type
        doResize = try value("do_resize", Bool.self) ?? true
        if let size = try value("size", [String: Int].self) {
            guard let h = size["height"], let w = size["width"], size.count == 2 else {
                throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [AnyKey("size")],
                                                        debugDescription: "must be {\"height\": h, \"width\": w} "
                                                            + "(the tile), found keys \(size.keys.sorted())"))
            }
            (tileHeight, tileWidth) = (h, w)
        } else {
            (tileHeight, tileWidth) = (384, 384)
        }
        resample = try value("resample", Int.self) ?? 3
        doRescale = try value("do_rescale", Bool.self) ?? true
        rescaleFactor = try value("rescale_factor", Double.self) ?? 1.0 / 255.0
        doNormalize = try value("do_normalize", Bool.self) ?? true
        // GotOcr2's defaults: OPENAI_CLIP_MEAN / OPENAI_CLIP_STD (InternVL's own files give ImageNet's).
        imageMean = try value("image_mean", [Double].self) ?? [0.48145466, 0.4578275, 0.40821073]
        imageStd = try value("image_std", [Double].self) ?? [0.26862954, 0.26130258, 0.27577711]
        doConvertRGB = try value("do_convert_rgb", Bool.self) ?? true
        cropToPatches = try value("crop_to_patches", Bool.self) ?? false
        minPatches = try value("min_patches", Int.self) ?? 1
        maxPatches = try value("max_patches", Int.self) ?? 12
    }

    /// The most tiles Arbiter accepts per image (InternVL's checkpoints use 12; each tile is a full tower pass).
    public static let tileLimit = 64

    func validate(source: String) throws {
        guard Self.supportedTypes.contains(imageProcessorType) else {
            throw FormatError(.unsupported, file: source, "image_processor_type '\(imageProcessorType)' is not "
                              + "supported for InternVL (Arbiter implements "
                              + "\(Self.supportedTypes.joined(separator: ", ")))")
        }
        guard doResize else {
            throw FormatError(.unsupported, file: source, "do_resize is false, but InternVL's tiles must be the "
                              + "tower's size: InternVLProcessor resizes the image to its tile canvas")
        }
        guard PILResampleFilter(rawValue: resample) != nil else {
            throw FormatError(.unsupported, file: source,
                              "resample \(resample) is not supported (2 = bilinear, 3 = bicubic)")
        }
        do { try RGBImage.checkSize(width: tileWidth, height: tileHeight, source: source) } catch let e as FormatError {
            throw FormatError(e.kind, file: e.file, "size: \(e.problem)")
        }
        guard minPatches >= 1, maxPatches >= minPatches, maxPatches <= Self.tileLimit else {
            throw FormatError(.unsupported, file: source, "min_patches \(minPatches) / max_patches \(maxPatches): the "
                              + "tiling needs 1 ≤ min_patches ≤ max_patches ≤ \(Self.tileLimit)")
        }
        try PixelNormalization.validate(doRescale: doRescale, rescaleFactor: rescaleFactor, doNormalize: doNormalize,
                                        mean: imageMean, std: imageStd, source: source)
    }
}

/// Tiles an `RGBImage` into InternVL pixel values `[tiles, 3, H, W]`.
public struct InternVLImageProcessor: Sendable {
    public let config: InternVLImageProcessorConfig

    public init(config: InternVLImageProcessorConfig, source: String = "preprocessor_config.json") throws {
        try config.validate(source: source)
        self.config = config
    }

    public init(contentsOf url: URL) throws {
        try self.init(config: try JSONFile.decode(InternVLImageProcessorConfig.self, from: url), source: url.path)
    }

    /// `get_all_supported_aspect_ratios`: (columns, rows) with min…max tiles, stably sorted by tile count.
    static func arrangements(min: Int, max: Int) -> [(columns: Int, rows: Int)] {
        var out: [(columns: Int, rows: Int)] = []
        for w in 1...max { for h in 1...max where w * h <= max && w * h >= min { out.append((w, h)) } }
        return out.enumerated().sorted { a, b in
            let (x, y) = (a.element.columns * a.element.rows, b.element.columns * b.element.rows)
            return x != y ? x < y : a.offset < b.offset
        }.map(\.element)
    }

    /// `get_optimal_tiled_canvas`: the arrangement closest to the image's aspect ratio; on a tie the later
    /// (larger) one while the image covers more than half of its area.
    public func canvas(height: Int, width: Int) -> (columns: Int, rows: Int) {
        let aspect = Double(width) / Double(height), area = Double(width * height)
        var bestDiff = Double.infinity, best = (columns: 1, rows: 1)
        for grid in Self.arrangements(min: config.minPatches, max: config.maxPatches) {
            let diff = abs(aspect - Double(grid.columns) / Double(grid.rows))
            if diff < bestDiff {
                bestDiff = diff
                best = grid
            } else if diff == bestDiff,
                      area > 0.5 * Double(config.tileHeight * config.tileWidth * grid.columns * grid.rows) {
                best = grid
            }
        }
        return best
    }

    /// Tiles of an image of this size (the thumbnail included).
    public func tileCount(height: Int, width: Int) -> Int {
        guard config.maxPatches > 1 else { return 1 }
        let grid = canvas(height: height, width: width), blocks = grid.columns * grid.rows
        return blocks == 1 ? 1 : blocks + 1
    }

    public func preprocess(_ image: RGBImage) throws -> Tensor {
        let rgb = config.doConvertRGB ? image.compositedOnWhite() : image.droppingAlpha
        let (th, tw) = (config.tileHeight, config.tileWidth)
        let filter = PILResampleFilter(rawValue: config.resample) ?? .bicubic
        var tiles: [(image: RGBImage, top: Int, left: Int)] = []
        if config.maxPatches > 1 {
            let grid = canvas(height: rgb.height, width: rgb.width)
            try RGBImage.checkSize(width: tw * grid.columns, height: th * grid.rows,
                                   source: "image \(image.width)x\(image.height) resized to its tile canvas")
            let resized = PILResample.resize(rgb, width: tw * grid.columns, height: th * grid.rows, filter: filter)
            for i in 0..<(grid.columns * grid.rows) {
                tiles.append((resized, (i / grid.columns) * th, (i % grid.columns) * tw))
            }
            if tiles.count > 1 { tiles.append((PILResample.resize(rgb, width: tw, height: th, filter: filter), 0, 0)) }
        } else {
            tiles.append((PILResample.resize(rgb, width: tw, height: th, filter: filter), 0, 0))
        }
        let table = PixelNormalization(rescaleFactor: config.doRescale ? config.rescaleFactor : nil,
                                       mean: config.doNormalize ? config.imageMean : nil,
                                       std: config.doNormalize ? config.imageStd : nil).table
        let plane = th * tw
        var scalars = [Float](repeating: 0, count: tiles.count * 3 * plane)
        for (t, tile) in tiles.enumerated() {
            let source = tile.image
            for y in 0..<th {
                for x in 0..<tw {
                    let base = ((tile.top + y) * source.width + tile.left + x) * 3
                    for c in 0..<3 {
                        scalars[(t * 3 + c) * plane + y * tw + x] = table[c][Int(source.pixels[base + c])]
                    }
                }
            }
        }
        return Tensor(shape: [tiles.count, 3, th, tw], scalars: scalars)
    }
}
