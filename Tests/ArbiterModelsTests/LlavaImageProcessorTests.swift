// LLaVA's CLIP image preprocessing against golden pixel values from transformers 5.24 (CLIPImageProcessorPil,
// the backend AutoImageProcessor uses without torchvision), produced by
// Tests/ArbiterFormatsTests/Fixtures/images/make_fixtures.py (the PNG decoder's fixtures too).
import ArbiterFormats
import ArbiterTensor
import Foundation
import Testing
@testable import ArbiterModels

/// The CLIP cases of the image fixtures' manifest.
enum CLIPFixtures {
    static let folder = Repository.root.appendingPathComponent("Tests/ArbiterFormatsTests/Fixtures/images")

    struct Entry: Decodable {
        let name: String
        let shape: [Int]
        let config: CLIPImageProcessorConfig
    }

    struct Manifest: Decodable { let clip: [Entry] }

    static func manifest() throws -> Manifest {
        try JSONFile.decode(Manifest.self, from: folder.appendingPathComponent("manifest.json"))
    }

    static func float32s(_ relative: String) throws -> [Float] {
        let raw = [UInt8](try Data(contentsOf: folder.appendingPathComponent(relative)))
        return stride(from: 0, to: raw.count, by: 4).map { i in
            Float(bitPattern: UInt32(raw[i]) | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2]) << 16
                  | UInt32(raw[i + 3]) << 24)
        }
    }
}

@Suite("CLIP image processor matches transformers")
struct ImageProcessingCLIPTests {
    static let goldenCases = [
        "down_landscape", "up_portrait_odd", "defaults_square_up", "gray_down_wide", "rgba_translucent",
        "rgb16_mixed", "palette_trns", "crop_pads", "bilinear", "exact_size_no_crop", "big_downsample",
        "no_normalize", "llava_336",
    ]

    /// Measured: every golden case is bit-exact (max |Δ| = 0), so the bound is 0. A non-zero difference
    /// means the resize, crop or float arithmetic no longer follows Pillow/transformers.
    static let tolerance: Float = 0

    @Test("the test list covers every CLIP fixture in the manifest")
    func listCoversManifest() throws {
        #expect(Set(try CLIPFixtures.manifest().clip.map(\.name)) == Set(Self.goldenCases))
    }

    @Test("pixel values equal transformers' golden values", arguments: goldenCases)
    func matchesGolden(name: String) throws {
        let entry = try #require(try CLIPFixtures.manifest().clip.first { $0.name == name })
        let processor = try CLIPImageProcessor(config: entry.config, source: "manifest.json:\(name)")
        let image = try PNGImage.read(url: CLIPFixtures.folder.appendingPathComponent("clip/\(name).png"))
        let output = try processor.preprocess(image)
        #expect(output.shape == entry.shape)
        let golden = try CLIPFixtures.float32s("clip/\(name).f32")
        try #require(golden.count == output.count)
        var maxDiff: Float = 0, worst = 0
        for i in 0..<golden.count where abs(output.scalars[i] - golden[i]) > maxDiff {
            maxDiff = abs(output.scalars[i] - golden[i]); worst = i
        }
        #expect(maxDiff <= Self.tolerance,
                "\(name): max |Δ| \(maxDiff) at \(worst) (got \(output.scalars[worst]), transformers \(golden[worst]))")
    }

    @Test("a folder given as preprocessor_config.json is refused, naming it")
    func folderRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("arbiter-clip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let e = try #require(throws: FormatError.self) { try CLIPImageProcessor(contentsOf: folder) }
        #expect(e.file == folder.path && e.problem.contains("folder"), "\(e)")
    }

    @Test("a real preprocessor_config.json file loads")
    func loadsConfigFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("arbiter-clip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("preprocessor_config.json")
        // llava-hf/llava-1.5-7b-hf's file.
        let json = """
        {"crop_size": {"height": 336, "width": 336}, "do_center_crop": true, "do_convert_rgb": true,
         "do_normalize": true, "do_rescale": true, "do_resize": true,
         "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
         "image_std": [0.26862954, 0.26130258, 0.27577711], "processor_class": "LlavaProcessor",
         "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 336}}
        """
        try Data(json.utf8).write(to: url)
        let processor = try CLIPImageProcessor(contentsOf: url)
        #expect(processor.config.size == .shortestEdge(336))
        #expect(processor.config.cropHeight == 336 && processor.config.cropWidth == 336)
        let out = try processor.preprocess(RGBImage(width: 500, height: 375, red: 255, green: 0, blue: 128))
        #expect(out.shape == [3, 336, 336])
        // A flat color stays flat through resize and crop: every value is (v/255 - mean) / std.
        let red = (Float(255.0 * 0.00392156862745098) - Float(0.48145466)) / Float(0.26862954)
        #expect(out.scalars[0] == red && out.scalars[336 * 336 - 1] == red)
    }

    @Test("defaults are CLIP's when keys are missing")
    func defaults() throws {
        let config = try JSONFile.decode(CLIPImageProcessorConfig.self, from: Data(#"{"image_processor_type": "CLIPImageProcessor"}"#.utf8), file: "p.json")
        #expect(config == CLIPImageProcessorConfig())
        let legacy = try JSONFile.decode(CLIPImageProcessorConfig.self, from: Data(#"{"feature_extractor_type": "CLIPFeatureExtractor", "size": 7, "crop_size": 5}"#.utf8), file: "p.json")
        #expect(legacy.imageProcessorType == "CLIPImageProcessor")
        #expect(legacy.size == .shortestEdge(7) && legacy.cropHeight == 5 && legacy.cropWidth == 5)
        let list = try JSONFile.decode(CLIPImageProcessorConfig.self, from: Data(#"{"image_processor_type": "CLIPImageProcessorFast", "size": [9, 11], "image_mean": 0.5}"#.utf8), file: "p.json")
        #expect(list.size == .exact(height: 9, width: 11) && list.imageMean == [0.5, 0.5, 0.5])
        _ = try CLIPImageProcessor(config: list)
    }

    @Test("config round-trips through JSON encoding")
    func encodeDecode() throws {
        let config = CLIPImageProcessorConfig(size: .exact(height: 3, width: 4), resample: 2, cropHeight: 5, cropWidth: 6)
        let data = try JSONEncoder().encode(config)
        #expect(try JSONFile.decode(CLIPImageProcessorConfig.self, from: data, file: "x") == config)
    }

    @Test("unsupported and invalid configs throw FormatErrors naming the file and the value")
    func invalidConfigs() throws {
        let siglip = CLIPImageProcessorConfig(imageProcessorType: "SiglipImageProcessor")
        let e1 = try #require(throws: FormatError.self) { try CLIPImageProcessor(config: siglip, source: "pc.json") }
        #expect(e1.kind == .unsupported && e1.file == "pc.json" && e1.problem.contains("SiglipImageProcessor"))
        let lanczos = CLIPImageProcessorConfig(resample: 1)
        #expect(throws: FormatError.self) { try CLIPImageProcessor(config: lanczos) }
        #expect(throws: FormatError.self) { try CLIPImageProcessor(config: CLIPImageProcessorConfig(size: .shortestEdge(0))) }
        #expect(throws: FormatError.self) { try CLIPImageProcessor(config: CLIPImageProcessorConfig(cropHeight: -1)) }
        #expect(throws: FormatError.self) { try CLIPImageProcessor(config: CLIPImageProcessorConfig(imageStd: [1, 0, 1])) }
        #expect(throws: FormatError.self) { try CLIPImageProcessor(config: CLIPImageProcessorConfig(imageMean: [0.5])) }
        #expect(throws: FormatError.self) { try CLIPImageProcessor(config: CLIPImageProcessorConfig(size: .exact(height: 20000, width: 2))) }
        let missing = try #require(throws: FormatError.self) {
            try JSONFile.decode(CLIPImageProcessorConfig.self, from: Data(#"{"size": 3}"#.utf8), file: "pc.json")
        }
        #expect(missing.file == "pc.json" && missing.problem.contains("image_processor_type"))
        #expect(throws: FormatError.self) {
            try JSONFile.decode(CLIPImageProcessorConfig.self, from: Data(#"{"image_processor_type": "CLIPImageProcessor", "size": {"longest_edge": 3}}"#.utf8), file: "pc.json")
        }
    }

    @Test("extreme aspect ratios that resize to zero pixels throw")
    func degenerateResize() throws {
        let processor = try CLIPImageProcessor(config: CLIPImageProcessorConfig(size: .shortestEdge(2)))
        // 1x5000 → shortest edge 2 gives 10000 rows: fine; 5000x1 to shortest_edge 2 gives width 10000.
        #expect(processor.resizedSize(height: 5000, width: 1) == (10000, 2))
        let tiny = try CLIPImageProcessor(config: CLIPImageProcessorConfig(size: .shortestEdge(16384)))
        #expect(throws: FormatError.self) { try tiny.preprocess(RGBImage(width: 2, height: 1, red: 0, green: 0, blue: 0)) }
    }

    @Test("resize output size follows get_resize_output_image_size")
    func resizedSizes() throws {
        let p = try CLIPImageProcessor(config: CLIPImageProcessorConfig(size: .shortestEdge(336)))
        #expect(p.resizedSize(height: 480, width: 640) == (336, 448))
        #expect(p.resizedSize(height: 640, width: 480) == (448, 336))
        #expect(p.resizedSize(height: 333, width: 500) == (336, 504))   // int(336 * 500 / 333) = int(504.50...)
        #expect(p.resizedSize(height: 7, width: 7) == (336, 336))
        #expect(p.resizedSize(height: 100, width: 301) == (336, 1011))  // 1011.36 truncated
    }
}
