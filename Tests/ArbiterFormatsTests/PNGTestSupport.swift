// Fixture access and PNG byte builders shared by the PNG and image-processing tests.
import Foundation
@testable import ArbiterFormats

enum ImageFixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images")

    struct DecodeEntry: Decodable {
        let name: String
        let width: Int
        let height: Int
        let exact: Bool
        let has_alpha: Bool
        let pil_mode: String
    }

    struct Manifest: Decodable {
        let decode: [DecodeEntry]
    }

    static func manifest() throws -> Manifest {
        try JSONFile.decode(Manifest.self, from: folder.appendingPathComponent("manifest.json"))
    }

    static func bytes(_ relative: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: folder.appendingPathComponent(relative)))
    }

    static func float32s(_ relative: String) throws -> [Float] {
        let raw = try bytes(relative)
        return stride(from: 0, to: raw.count, by: 4).map { i in
            Float(bitPattern: UInt32(raw[i]) | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2]) << 16 | UInt32(raw[i + 3]) << 24)
        }
    }
}

/// Builds PNG byte streams chunk by chunk, for malformed-input tests.
enum PNGBytes {
    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        PNGStructure.appendChunk(type, data[...], to: &out)
        return out
    }

    static func ihdr(width: UInt32, height: UInt32, depth: UInt8 = 8, colorType: UInt8 = 2,
                     compression: UInt8 = 0, filter: UInt8 = 0, interlace: UInt8 = 0) -> [UInt8] {
        chunk("IHDR", PNGStructure.bigEndian(width) + PNGStructure.bigEndian(height)
              + [depth, colorType, compression, filter, interlace])
    }

    /// Offsets of each chunk (start of its length field) in a well-formed stream.
    static func chunkOffsets(_ png: [UInt8]) -> [(type: String, offset: Int, length: Int)] {
        var out: [(String, Int, Int)] = []
        var offset = 8
        while offset + 8 <= png.count {
            let length = Int(PNGStructure.readUInt32(png, at: offset))
            out.append((String(decoding: png[(offset + 4)..<(offset + 8)], as: UTF8.self), offset, length))
            offset += length + 12
        }
        return out
    }

    /// A small valid RGB PNG (encoded by Arbiter's encoder).
    static func smallRGB(width: Int = 5, height: Int = 4) throws -> [UInt8] {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in pixels.indices { pixels[i] = UInt8((i * 37 + 11) % 256) }
        return [UInt8](try PNGImage.encode(RGBImage(width: width, height: height, pixels: pixels)))
    }
}
