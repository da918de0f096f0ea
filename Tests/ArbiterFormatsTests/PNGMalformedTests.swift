// Malformed PNG input: a generated corpus where every case must throw a FormatError naming the source, and
// seeded random mutations that must never crash (they may decode or throw FormatError, nothing else).
import ArbiterTensor
import Foundation
import PropertyBased
import Testing
@testable import ArbiterFormats

@Suite("PNG malformed input")
struct PNGMalformedTests {
    static let signature = PNGStructure.signature

    /// A valid image's IDAT payload, for hand-built streams.
    static func validIDAT() throws -> [UInt8] {
        let png = try PNGStructure.parse(try PNGBytes.smallRGB(width: 2, height: 2), source: "valid")
        return png.imageData.flatMap { Array($0) }
    }

    static func corpus() throws -> [(name: String, bytes: [UInt8], kind: FormatError.Kind?)] {
        let valid = try PNGBytes.smallRGB(width: 6, height: 5)
        let chunks = PNGBytes.chunkOffsets(valid)
        let idat = try validIDAT()
        let iend = PNGBytes.chunk("IEND", [])
        var cases: [(String, [UInt8], FormatError.Kind?)] = []

        cases.append(("empty file", [], .truncated))
        cases.append(("signature only", signature, .truncated))
        cases.append(("half a signature", Array(signature.prefix(4)), .truncated))
        cases.append(("JPEG header", [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 0x4A, 0x46, 0x49, 0x46, 0, 1], .malformed))
        cases.append(("text file", Array("hello, this is not an image\n".utf8), .malformed))
        var badSignature = valid; badSignature[1] = 0x51
        cases.append(("one signature byte wrong", badSignature, .malformed))
        var crlf = valid; crlf[4] = 0x0A
        cases.append(("line-ending-mangled signature", crlf, .malformed))

        // Truncations at many offsets: inside the signature, every chunk header, data and CRC, before IEND.
        for cut in [3, 8, 12, 16, 20, 29, 33, 36, valid.count / 2, valid.count - 13, valid.count - 12, valid.count - 5, valid.count - 1] {
            cases.append(("truncated at \(cut) of \(valid.count)", Array(valid.prefix(cut)), nil))
        }
        // Flipped CRC bytes and flipped data bytes in each chunk.
        for chunk in chunks {
            var crc = valid; crc[chunk.offset + 8 + chunk.length] ^= 0x01
            cases.append(("flipped CRC of \(chunk.type)", crc, .malformed))
            if chunk.length > 0 {
                var data = valid; data[chunk.offset + 8 + chunk.length / 2] ^= 0x80
                cases.append(("flipped data byte in \(chunk.type)", data, .malformed))
            }
        }
        // CRC errors in ancillary chunks (which libpng's simplified API may only warn about) are errors too.
        let withText = try ImageFixtures.bytes("decode/rgb8_chunks.png")
        for chunk in PNGBytes.chunkOffsets(withText) where ["tEXt", "pHYs", "tIME"].contains(chunk.type) {
            var crc = withText; crc[chunk.offset + 8 + chunk.length + 3] ^= 0x40
            cases.append(("flipped CRC of ancillary \(chunk.type)", crc, .malformed))
        }
        var badType = valid; badType[12 + 1] = 0x31
        cases.append(("non-letter chunk type", badType, .malformed))
        var hugeLength = valid; hugeLength[8] = 0xFF
        cases.append(("chunk length over 2^31", hugeLength, .malformed))

        func withHeader(_ ihdr: [UInt8], _ body: [UInt8] = PNGBytes.chunk("IDAT", idat)) -> [UInt8] {
            signature + ihdr + body + iend
        }
        cases.append(("zero width", withHeader(PNGBytes.ihdr(width: 0, height: 2)), .malformed))
        cases.append(("zero height", withHeader(PNGBytes.ihdr(width: 2, height: 0)), .malformed))
        cases.append(("width over 2^31", withHeader(PNGBytes.ihdr(width: 0x8000_0000, height: 2)), .malformed))
        cases.append(("huge declared size", withHeader(PNGBytes.ihdr(width: 100_000, height: 100_000)), .tooLarge))
        cases.append(("side over 16384", withHeader(PNGBytes.ihdr(width: 16385, height: 1)), .tooLarge))
        cases.append(("over 64 M pixels", withHeader(PNGBytes.ihdr(width: 16384, height: 4097)), .tooLarge))
        cases.append(("RGB at 4 bits", withHeader(PNGBytes.ihdr(width: 2, height: 2, depth: 4, colorType: 2)), .malformed))
        cases.append(("palette at 16 bits", withHeader(PNGBytes.ihdr(width: 2, height: 2, depth: 16, colorType: 3)), .malformed))
        cases.append(("gray at 3 bits", withHeader(PNGBytes.ihdr(width: 2, height: 2, depth: 3, colorType: 0)), .malformed))
        cases.append(("gray+alpha at 2 bits", withHeader(PNGBytes.ihdr(width: 2, height: 2, depth: 2, colorType: 4)), .malformed))
        cases.append(("color type 5", withHeader(PNGBytes.ihdr(width: 2, height: 2, depth: 8, colorType: 5)), .malformed))
        cases.append(("color type 7", withHeader(PNGBytes.ihdr(width: 2, height: 2, depth: 8, colorType: 7)), .malformed))
        cases.append(("compression method 1", withHeader(PNGBytes.ihdr(width: 2, height: 2, compression: 1)), .malformed))
        cases.append(("filter method 1", withHeader(PNGBytes.ihdr(width: 2, height: 2, filter: 1)), .malformed))
        cases.append(("interlace method 2", withHeader(PNGBytes.ihdr(width: 2, height: 2, interlace: 2)), .malformed))
        cases.append(("IHDR of 12 bytes", signature + PNGBytes.chunk("IHDR", Array(repeating: 1, count: 12)) + iend, .malformed))
        cases.append(("no IHDR", signature + PNGBytes.chunk("IDAT", idat) + iend, .malformed))
        cases.append(("two IHDR", withHeader(PNGBytes.ihdr(width: 2, height: 2) + PNGBytes.ihdr(width: 2, height: 2)), .malformed))
        cases.append(("missing IDAT", signature + PNGBytes.ihdr(width: 2, height: 2) + iend, .missing))
        cases.append(("missing IEND", signature + PNGBytes.ihdr(width: 2, height: 2) + PNGBytes.chunk("IDAT", idat), .truncated))
        cases.append(("garbage IDAT", withHeader(PNGBytes.ihdr(width: 2, height: 2), PNGBytes.chunk("IDAT", Array(repeating: 0xAB, count: 40))), .malformed))
        cases.append(("empty IDAT", withHeader(PNGBytes.ihdr(width: 2, height: 2), PNGBytes.chunk("IDAT", [])), nil))
        cases.append(("IDAT for a smaller image", withHeader(PNGBytes.ihdr(width: 40, height: 40)), nil))
        cases.append(("IDAT with truncated zlib stream", withHeader(PNGBytes.ihdr(width: 2, height: 2), PNGBytes.chunk("IDAT", Array(idat.prefix(idat.count / 2)))), nil))
        cases.append(("split IDAT runs", withHeader(PNGBytes.ihdr(width: 2, height: 2),
                                                    PNGBytes.chunk("IDAT", Array(idat.prefix(5))) + PNGBytes.chunk("tEXt", Array("a\0b".utf8)) + PNGBytes.chunk("IDAT", Array(idat.dropFirst(5)))), .malformed))
        cases.append(("palette image without PLTE", withHeader(PNGBytes.ihdr(width: 2, height: 2, depth: 8, colorType: 3)), .missing))
        cases.append(("PLTE of 4 bytes", withHeader(PNGBytes.ihdr(width: 2, height: 2, depth: 8, colorType: 3), PNGBytes.chunk("PLTE", [1, 2, 3, 4]) + PNGBytes.chunk("IDAT", idat)), .malformed))
        cases.append(("PLTE in a gray image", withHeader(PNGBytes.ihdr(width: 2, height: 2, depth: 8, colorType: 0), PNGBytes.chunk("PLTE", [1, 2, 3]) + PNGBytes.chunk("IDAT", idat)), .malformed))
        cases.append(("gray tRNS of 3 bytes", withHeader(PNGBytes.ihdr(width: 2, height: 2, depth: 8, colorType: 0), PNGBytes.chunk("tRNS", [0, 1, 2]) + PNGBytes.chunk("IDAT", idat)), .malformed))
        cases.append(("tRNS longer than PLTE", withHeader(PNGBytes.ihdr(width: 2, height: 2, depth: 8, colorType: 3), PNGBytes.chunk("PLTE", [1, 2, 3]) + PNGBytes.chunk("tRNS", [0, 0]) + PNGBytes.chunk("IDAT", idat)), .malformed))
        cases.append(("unknown critical chunk", withHeader(PNGBytes.ihdr(width: 2, height: 2), PNGBytes.chunk("ABCD", [1]) + PNGBytes.chunk("IDAT", idat)), .unsupported))
        cases.append(("IEND with data", signature + PNGBytes.ihdr(width: 2, height: 2) + PNGBytes.chunk("IDAT", idat) + PNGBytes.chunk("IEND", [0]), .malformed))
        return cases
    }

    @Test("every corpus case throws a FormatError naming the source")
    func corpusThrows() throws {
        let cases = try Self.corpus()
        #expect(cases.count >= 30)
        for (name, bytes, kind) in cases {
            let source = "corpus/\(name).png"
            do {
                let image = try PNGImage.decode(data: Data(bytes), source: source)
                Issue.record("\(name): decoded to \(image.width)x\(image.height) instead of throwing")
            } catch let error as FormatError {
                #expect(error.file == source, "\(name): error names \(error.file)")
                #expect(!error.problem.isEmpty)
                if let kind { #expect(error.kind == kind, "\(name): \(error)") }
            } catch {
                Issue.record("\(name): threw \(type(of: error)) instead of FormatError: \(error)")
            }
        }
    }

    @Test("huge declared sizes are refused with the size in the message")
    func sizeInMessage() throws {
        let bytes = Self.signature + PNGBytes.ihdr(width: 100_000, height: 3) + PNGBytes.chunk("IEND", [])
        let error = try #require(throws: FormatError.self) { try PNGImage.decode(data: Data(bytes), source: "big.png") }
        #expect(error.kind == .tooLarge && error.problem.contains("100000x3"))
    }

    /// Applies one seeded mutation: flip bits, overwrite bytes, truncate, duplicate or delete a range.
    static func mutate(_ input: [UInt8], using rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        switch Int.random(in: 0..<5, using: &rng) {
        case 0:
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
            }
        case 1:
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            for i in at..<min(bytes.count, at + Int.random(in: 1...8, using: &rng)) { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
        case 2:
            bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)))
        case 3:
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            let end = min(bytes.count, at + Int.random(in: 1...16, using: &rng))
            bytes.insert(contentsOf: bytes[at..<end], at: at)
        default:
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            bytes.removeSubrange(at..<min(bytes.count, at + Int.random(in: 1...16, using: &rng)))
        }
        return bytes
    }

    /// Recomputes every complete chunk's CRC, so mutations reach the IHDR checks and libpng instead of
    /// stopping at the CRC check.
    static func fixingCRCs(_ input: [UInt8]) -> [UInt8] {
        var bytes = input
        var offset = 8
        while offset + 12 <= bytes.count {
            let length = Int(PNGStructure.readUInt32(bytes, at: offset))
            guard length <= bytes.count - offset - 12 else { break }
            let crc = PNGStructure.bigEndian(PNGStructure.crc32(bytes[(offset + 4)..<(offset + 8 + length)]))
            bytes.replaceSubrange((offset + 8 + length)..<(offset + 12 + length), with: crc)
            offset += length + 12
        }
        return bytes
    }

    /// Mutated images either decode to a consistent image or throw a FormatError naming the source.
    static func check(_ bytes: [UInt8], label: String) {
        do {
            let image = try PNGImage.decode(data: Data(bytes), source: label)
            #expect(image.pixels.count == image.width * image.height * 3)
        } catch let error as FormatError {
            #expect(error.file == label)
        } catch {
            Issue.record("\(label): threw \(type(of: error)): \(error)")
        }
    }

    static func seeds() throws -> [[UInt8]] {
        var seeds = [try PNGBytes.smallRGB(width: 6, height: 5)]
        for name in ["palette4_interlaced", "gray_alpha16", "rgba16", "gray2_trns0", "rgb16_trns"] {
            seeds.append(try ImageFixtures.bytes("decode/\(name).png"))
        }
        return seeds
    }

    @Test("300 seeded mutations never crash")
    func seededMutations() throws {
        var rng = SplitMix64(seed: 0xA4B1_7E42)
        let seeds = try Self.seeds()
        for i in 0..<300 {
            let seed = seeds[i % seeds.count]
            var bytes = Self.mutate(seed, using: &rng)
            if i % 3 == 0 { bytes = Self.mutate(bytes.isEmpty ? seed : bytes, using: &rng) }
            if i % 2 == 0 { bytes = Self.fixingCRCs(bytes) }
            Self.check(bytes, label: "mutation \(i)")
        }
    }

    @Test("property: random mutations never crash")
    func propertyMutations() async throws {
        let seeds = try Self.seeds()
        await propertyCheck(count: 200, input: Gen.int(in: 0...Int(Int32.max)), Gen.int(in: 0...(seeds.count - 1))) { seed, which in
            var rng = SplitMix64(seed: UInt64(seed))
            let mutated = Self.mutate(seeds[which], using: &rng)
            Self.check(seed % 2 == 0 ? Self.fixingCRCs(mutated) : mutated, label: "property mutation \(seed)")
        }
    }
}
