// Decoding every PNG color type and bit depth, compared byte for byte with Pillow's conversions
// (fixtures written by Fixtures/images/make_fixtures.py).
import Foundation
import Testing
@testable import ArbiterFormats

@Suite("PNG decoding matches Pillow")
struct PNGDecodeTests {
    static let exactCases = [
        "gray1", "gray2", "gray4", "gray8", "gray8_trns", "gray2_trns0", "gray2_trns2", "gray1_trns1", "gray16",
        "gray16_trns", "gray_alpha8", "gray_alpha16", "gray_alpha16_interlaced", "rgb8", "rgb16", "rgb8_trns",
        "rgb16_trns", "rgba8", "rgba16_opaque", "palette1", "palette2", "palette4", "palette8", "palette8_trns",
        "palette8_trns_simple", "palette8_short", "rgb8_interlaced", "gray16_interlaced", "palette4_interlaced",
        "rgba8_interlaced_1x1", "rgb8_gamma", "rgba8_gamma", "gray16_gamma", "rgb16_srgb", "rgb8_chunks",
        "composite_all",
    ]

    @Test("the test list covers every fixture in the manifest")
    func listCoversManifest() throws {
        let names = Set(try ImageFixtures.manifest().decode.map(\.name))
        #expect(names == Set(Self.exactCases + ["rgba16"]))
    }

    @Test("pixels, alpha and white composite equal Pillow's", arguments: exactCases)
    func decodesLikePillow(name: String) throws {
        let entry = try #require(try ImageFixtures.manifest().decode.first { $0.name == name })
        let image = try PNGImage.read(url: ImageFixtures.folder.appendingPathComponent("decode/\(name).png"))
        #expect(image.width == entry.width && image.height == entry.height)
        let expected = try ImageFixtures.bytes("decode/\(name).rgb")
        let wrong = zip(image.pixels, expected).enumerated().filter { $0.element.0 != $0.element.1 }
        #expect(wrong.isEmpty, "\(name) (PIL mode \(entry.pil_mode)): \(wrong.count) bytes differ, first at \(wrong.first.map { "\($0.offset): got \($0.element.0), PIL \($0.element.1)" } ?? "")")
        #expect((image.alpha != nil) == entry.has_alpha, "\(name): alpha plane presence")
        if entry.has_alpha {
            let alpha = try ImageFixtures.bytes("decode/\(name).alpha")
            #expect(image.alpha == alpha, "\(name): alpha differs from PIL convert('RGBA')")
            let white = try ImageFixtures.bytes("decode/\(name).white.rgb")
            #expect(image.compositedOnWhite().pixels == white, "\(name): composite differs from transformers convert_to_rgb")
            #expect(image.compositedOnWhite().alpha == nil)
        }
    }

    /// 16-bit RGBA goes through libpng's premultiplied format (see PNGImage.swift): alpha and opaque pixels
    /// are exact, translucent colors within one 8-bit step, transparent pixels black; the white composite
    /// within one step.
    @Test("16-bit RGBA: alpha exact, colors and composite within one step")
    func rgba16WithinOneStep() throws {
        let image = try PNGImage.read(url: ImageFixtures.folder.appendingPathComponent("decode/rgba16.png"))
        let expected = try ImageFixtures.bytes("decode/rgba16.rgb")
        let alpha = try #require(image.alpha)
        #expect(alpha == (try ImageFixtures.bytes("decode/rgba16.alpha")))
        var maxColor = 0
        for i in 0..<(image.width * image.height) where alpha[i] > 0 {
            for c in 0..<3 { maxColor = max(maxColor, abs(Int(image.pixels[3 * i + c]) - Int(expected[3 * i + c]))) }
        }
        #expect(maxColor <= 1, "translucent colors differ from PIL by \(maxColor)")
        let white = try ImageFixtures.bytes("decode/rgba16.white.rgb")
        let maxWhite = zip(image.compositedOnWhite().pixels, white).map { abs(Int($0) - Int($1)) }.max() ?? 0
        #expect(maxWhite <= 1, "composite differs from transformers by \(maxWhite)")
    }

    @Test("gAMA of 1.0 leaves 8-bit values unchanged (no gamma correction, as in PIL)")
    func gammaIgnored() throws {
        // Same pixels with and without the gAMA chunk must decode the same.
        let original = try [UInt8](Data(contentsOf: ImageFixtures.folder.appendingPathComponent("decode/rgb8_gamma.png")))
        let png = try PNGStructure.parse(original, source: "rgb8_gamma")
        let stripped = png.stream(header: png.header, palette: false, transparency: false)
        #expect(stripped.count < original.count)
        let a = try PNGImage.decode(data: Data(original), source: "with gAMA")
        let b = try PNGImage.decode(data: Data(stripped), source: "without gAMA")
        #expect(a == b)
        #expect(a.pixels == (try ImageFixtures.bytes("decode/rgb8_gamma.rgb")))
    }

    @Test("decode errors name the source")
    func errorsNameSource() throws {
        let error = try #require(throws: FormatError.self) { try PNGImage.decode(data: Data([1, 2, 3]), source: "inputs/cat.png") }
        #expect(error.file == "inputs/cat.png")
        #expect(error.description.contains("inputs/cat.png"))
    }

    @Test("read(url:) reports a missing file")
    func missingFile() throws {
        let url = URL(fileURLWithPath: "/nonexistent/arbiter/none.png")
        let error = try #require(throws: FormatError.self) { try PNGImage.read(url: url) }
        #expect(error.kind == .unreadable && error.file == url.path)
    }
}
