// Encoding: encode → decode round trips (property-based), RGBA, atomic writes.
import ArbiterTensor
import Foundation
import PropertyBased
import Testing
@testable import ArbiterFormats

@Suite("PNG encoding")
struct PNGEncodeTests {
    @Test("encode then decode returns the same RGB image")
    func roundTripRGB() async {
        await propertyCheck(count: 60, input: Gen.int(in: 1...23), Gen.int(in: 1...19), Gen.int(in: 0...Int(UInt32.max))) { w, h, seed in
            var rng = SplitMix64(seed: UInt64(seed))
            let pixels = (0..<(w * h * 3)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let image = RGBImage(width: w, height: h, pixels: pixels)
            let decoded = try PNGImage.decode(data: try PNGImage.encode(image), source: "round trip")
            #expect(decoded == image)
        }
    }

    @Test("encode then decode returns the same RGBA image, colors of transparent pixels included")
    func roundTripRGBA() async {
        await propertyCheck(count: 40, input: Gen.int(in: 1...17), Gen.int(in: 1...13), Gen.int(in: 0...Int(UInt32.max))) { w, h, seed in
            var rng = SplitMix64(seed: UInt64(seed))
            let pixels = (0..<(w * h * 3)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let alpha = (0..<(w * h)).map { _ in [0, 255, UInt8.random(in: 0...255, using: &rng)].randomElement(using: &rng)! }
            let image = RGBImage(width: w, height: h, pixels: pixels, alpha: alpha)
            let decoded = try PNGImage.decode(data: try PNGImage.encode(image), source: "round trip")
            #expect(decoded == image)
        }
    }

    @Test("encoded stream has the expected IHDR")
    func headerFields() throws {
        let rgb = try PNGBytes.smallRGB(width: 7, height: 3)
        let png = try PNGStructure.parse(rgb, source: "encoded")
        #expect(png.header == PNGHeader(width: 7, height: 3, bitDepth: 8, colorType: .rgb, interlaced: false))
        let rgba = try PNGImage.encode(RGBImage(width: 2, height: 2, pixels: [UInt8](repeating: 9, count: 12), alpha: [0, 1, 2, 3]))
        #expect(try PNGStructure.parse([UInt8](rgba), source: "encoded").header.colorType == .rgba)
    }

    @Test("write(_:to:) replaces the file atomically and leaves no temporary file")
    func atomicWrite() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("arbiter-png-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("out.png")
        let first = RGBImage(width: 3, height: 2, red: 10, green: 20, blue: 30)
        let second = RGBImage(width: 4, height: 5, red: 200, green: 100, blue: 0)
        try PNGImage.write(first, to: url)
        #expect(try PNGImage.read(url: url) == first)
        try PNGImage.write(second, to: url)
        #expect(try PNGImage.read(url: url) == second)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["out.png"])
    }

    @Test("write(_:to:) into a missing folder throws a FormatError naming the file")
    func writeFailure() throws {
        let url = URL(fileURLWithPath: "/nonexistent-arbiter-folder/out.png")
        let error = try #require(throws: FormatError.self) { try PNGImage.write(RGBImage(width: 1, height: 1, red: 0, green: 0, blue: 0), to: url) }
        #expect(error.file == url.path)
    }

    @Test("RGBImage validating init rejects mismatched byte counts")
    func validatingInit() throws {
        #expect(throws: FormatError.self) { try RGBImage(validatingWidth: 2, height: 2, pixels: [1, 2, 3], source: "x") }
        #expect(throws: FormatError.self) { try RGBImage(validatingWidth: 1, height: 1, pixels: [1, 2, 3], alpha: [], source: "x") }
        #expect(throws: FormatError.self) { try RGBImage(validatingWidth: 0, height: 1, pixels: [], source: "x") }
        #expect(throws: FormatError.self) { try RGBImage(validatingWidth: 20000, height: 1, pixels: [], source: "x") }
        let image = try RGBImage(validatingWidth: 1, height: 1, pixels: [1, 2, 3], alpha: [4], source: "x")
        #expect(image.pixel(x: 0, y: 0) == (1, 2, 3))
    }
}
