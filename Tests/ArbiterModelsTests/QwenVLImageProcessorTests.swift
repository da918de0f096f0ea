// Qwen2VLImageProcessor: smart_resize against transformers 5.24's values, config parsing, and its errors.
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation
import PropertyBased
import Testing

@Suite("Qwen2-VL image processor")
struct QwenVLImageProcessorTests {
    struct ResizeCase: Sendable, CustomStringConvertible {
        let height, width, factor, minPixels, maxPixels, outHeight, outWidth: Int
        var description: String { "\(width)x\(height) factor \(factor) [\(minPixels), \(maxPixels)]" }
    }

    // transformers.models.qwen2_vl.image_processing_pil_qwen2_vl.smart_resize(h, w, factor, min_pixels, max_pixels).
    static let resizeCases: [ResizeCase] = [
        ResizeCase(height: 29, width: 45, factor: 8, minPixels: 256, maxPixels: 4096, outHeight: 32, outWidth: 48),
        ResizeCase(height: 38, width: 70, factor: 8, minPixels: 128, maxPixels: 1024, outHeight: 16, outWidth: 40),
        ResizeCase(height: 100, width: 100, factor: 28, minPixels: 3136, maxPixels: 1003520, outHeight: 112, outWidth: 112),
        ResizeCase(height: 333, width: 500, factor: 28, minPixels: 3136, maxPixels: 1003520, outHeight: 336, outWidth: 504),
        ResizeCase(height: 2000, width: 3000, factor: 28, minPixels: 3136, maxPixels: 1003520, outHeight: 812, outWidth: 1204),
        ResizeCase(height: 28, width: 5000, factor: 28, minPixels: 3136, maxPixels: 12845056, outHeight: 28, outWidth: 5012),
        ResizeCase(height: 60, width: 28, factor: 28, minPixels: 3136, maxPixels: 200704, outHeight: 84, outWidth: 56),
        ResizeCase(height: 57, width: 1000, factor: 28, minPixels: 3136, maxPixels: 1003520, outHeight: 56, outWidth: 1008),
        ResizeCase(height: 1080, width: 1920, factor: 28, minPixels: 3136, maxPixels: 1003520, outHeight: 728, outWidth: 1316),
        ResizeCase(height: 42, width: 42, factor: 28, minPixels: 3136, maxPixels: 1003520, outHeight: 56, outWidth: 56),
        ResizeCase(height: 49, width: 70, factor: 14, minPixels: 3136, maxPixels: 200704, outHeight: 56, outWidth: 70),
        ResizeCase(height: 50, width: 30, factor: 8, minPixels: 0, maxPixels: 4096, outHeight: 48, outWidth: 32),
    ]

    static func processor(factor: Int, minPixels: Int, maxPixels: Int) throws -> Qwen2VLImageProcessor {
        // factor = patch_size · merge_size with merge_size 2 (patch 4, 7 or 14).
        try Qwen2VLImageProcessor(config: Qwen2VLImageProcessorConfig(minPixels: minPixels, maxPixels: maxPixels,
                                                                      patchSize: factor / 2, mergeSize: 2))
    }

    @Test("smart_resize equals transformers", arguments: resizeCases)
    func smartResize(_ c: ResizeCase) throws {
        let p = try Self.processor(factor: c.factor, minPixels: c.minPixels, maxPixels: c.maxPixels)
        let (h, w) = try p.smartResize(height: c.height, width: c.width)
        #expect(h == c.outHeight && w == c.outWidth)
    }

    @Test("smart_resize gives multiples of the merged patch within max_pixels, close to the aspect ratio")
    func smartResizeProperties() async {
        await propertyCheck(count: 200, input: Gen.int(in: 28...3000), Gen.int(in: 28...3000)) { h, w in
            let p = try Self.processor(factor: 28, minPixels: 56 * 56, maxPixels: 28 * 28 * 1280)
            let (rh, rw) = try p.smartResize(height: h, width: w)
            #expect(rh % 28 == 0 && rw % 28 == 0 && rh >= 28 && rw >= 28)
            #expect(rh * rw <= 28 * 28 * 1280)
            #expect(rh * rw >= 56 * 56)
        }
    }

    @Test("an image smaller than one merged patch is an error naming its size")
    func tooSmall() throws {
        let p = try Self.processor(factor: 28, minPixels: 3136, maxPixels: 1003520)
        let error = #expect(throws: FormatError.self) { try p.smartResize(height: 20, width: 100) }
        #expect("\(String(describing: error))".contains("height 20"), "\(String(describing: error))")
        #expect("\(String(describing: error))".contains("28"))
        let image = RGBImage(width: 27, height: 40, red: 1, green: 2, blue: 3)
        #expect(throws: FormatError.self) { try p.preprocess(image) }
    }

    @Test("a size that cannot fit max_pixels, and an aspect ratio over 200, are errors naming the values")
    func tooLarge() throws {
        let p = try Self.processor(factor: 28, minPixels: 3136, maxPixels: 28 * 28 * 4)
        // transformers would return 28x728 = 20384 pixels, over max_pixels 3136.
        let error = #expect(throws: FormatError.self) { try p.smartResize(height: 28, width: 5000) }
        #expect("\(String(describing: error))".contains("3136"), "\(String(describing: error))")
        let wide = try Self.processor(factor: 28, minPixels: 3136, maxPixels: 12845056)
        let ratio = #expect(throws: FormatError.self) { try wide.smartResize(height: 28, width: 6000) }
        #expect("\(String(describing: ratio))".contains("aspect ratio"))
    }

    @Test("config: min_pixels / max_pixels override size, defaults, and bad values")
    func config() throws {
        let json = #"{"image_processor_type": "Qwen2VLImageProcessor", "size": {"shortest_edge": 100, "longest_edge": 5000}, "max_pixels": 4000, "patch_size": 4}"#
        let c = try JSONDecoder().decode(Qwen2VLImageProcessorConfig.self, from: Data(json.utf8))
        #expect(c.minPixels == 100 && c.maxPixels == 4000 && c.patchSize == 4 && c.mergeSize == 2 && c.temporalPatchSize == 2)
        let defaults = try JSONDecoder().decode(Qwen2VLImageProcessorConfig.self, from: Data("{}".utf8))
        #expect(defaults == Qwen2VLImageProcessorConfig())
        #expect(defaults.minPixels == 3136 && defaults.maxPixels == 1003520 && defaults.factor == 28)
        var bad = Qwen2VLImageProcessorConfig(maxPixels: 100)  // below one merged patch (784)
        #expect(throws: FormatError.self) { try Qwen2VLImageProcessor(config: bad) }
        bad = Qwen2VLImageProcessorConfig(imageProcessorType: "SiglipImageProcessor")
        #expect(throws: FormatError.self) { try Qwen2VLImageProcessor(config: bad) }
        bad = Qwen2VLImageProcessorConfig(resample: 1)
        #expect(throws: FormatError.self) { try Qwen2VLImageProcessor(config: bad) }
        bad = Qwen2VLImageProcessorConfig(imageStd: [0.5, 0, 0.5])
        #expect(throws: FormatError.self) { try Qwen2VLImageProcessor(config: bad) }
    }

    @Test("preprocessor_config.json: max_pixels over the image cap, and integers written as floats, name the file")
    func configFileBounds() throws {
        let large = #expect(throws: FormatError.self) {
            try Qwen2VLImageProcessor(config: Qwen2VLImageProcessorConfig(maxPixels: 1 << 40),
                                      source: "m/preprocessor_config.json")
        }
        #expect(large?.kind == .tooLarge && large?.file == "m/preprocessor_config.json", "\(String(describing: large))")
        #expect(large?.problem.contains("max_pixels 1099511627776 exceeds") == true)
        let float = #expect(throws: FormatError.self) {
            try JSONFile.decode(Qwen2VLImageProcessorConfig.self, from: Data(#"{"min_pixels": 3136.5}"#.utf8),
                                file: "m/preprocessor_config.json")
        }
        #expect(float?.description == "m/preprocessor_config.json: malformed: field min_pixels must be an integer, "
                + "found 3136.5", "\(String(describing: float))")
        let size = #expect(throws: FormatError.self) {
            try JSONFile.decode(Qwen2VLImageProcessorConfig.self, from: Data(#"{"size": {"shortest_edge": 1e3}}"#.utf8),
                                file: "m/preprocessor_config.json")
        }
        #expect(size?.problem == "field size.shortest_edge must be an integer, found 1000.0",
                "\(String(describing: size))")
    }

    @Test("patches: merge-block row order, channel-major columns, the still frame repeated temporal_patch_size times")
    func patchOrder() throws {
        // No resize, no rescale, no normalize: values are the raw bytes, so positions can be read back.
        let config = Qwen2VLImageProcessorConfig(doResize: false, doRescale: false, doNormalize: false,
                                                 patchSize: 1, temporalPatchSize: 2, mergeSize: 2)
        let p = try Qwen2VLImageProcessor(config: config)
        var pixels = [UInt8](repeating: 0, count: 4 * 2 * 3)
        func value(_ c: Int, _ y: Int, _ x: Int) -> Int { 100 * c + 10 * y + x }
        for y in 0..<2 {
            for x in 0..<4 {
                for c in 0..<3 { pixels[(y * 4 + x) * 3 + c] = UInt8(value(c, y, x)) }
            }
        }
        let out = try p.preprocess(RGBImage(width: 4, height: 2, pixels: pixels))
        #expect(out.grid == VisionGrid(t: 1, h: 2, w: 4))
        #expect(out.pixelValues.shape == [8, 6])
        // Rows: block (0,0): (0,0) (0,1) (1,0) (1,1); block (0,1): (0,2) (0,3) (1,2) (1,3).
        let expectedYX = [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
        for (row, (y, x)) in expectedYX.enumerated() {
            var expected: [Float] = []
            for c in 0..<3 { expected += [Float(value(c, y, x)), Float(value(c, y, x))] }
            #expect(Array(out.pixelValues.row(row)) == expected, "row \(row)")
        }
        let odd = RGBImage(width: 3, height: 2, red: 0, green: 0, blue: 0)
        #expect(throws: FormatError.self) { try p.preprocess(odd) }
    }
}
