// PNG cases: truncation, CRC damage, IHDR fields (huge and zero dimensions, invalid depths and types), chunk
// lengths, other files in the PNG's place, and valid PNGs of unusual shapes written here (stored deflate).
@testable import ArbiterFormats
import Foundation

/// PNG bytes: chunks taken apart and put back with correct or chosen CRCs (Arbiter's own chunk writer and
/// CRC, which the PNG reader's tests pin).
enum FuzzPNG {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        PNGStructure.appendChunk(type, data[...], to: &out)
        return out
    }

    /// (offset of the chunk's length field, type, data length) of every chunk.
    static func chunks(_ png: [UInt8]) -> [(offset: Int, type: String, length: Int)] {
        var out: [(Int, String, Int)] = []
        var at = 8
        while at + 12 <= png.count {
            let length = Int(png.uint32BE(at: at))
            out.append((at, String(decoding: png[at + 4..<at + 8], as: UTF8.self), length))
            at += 12 + length
        }
        return out
    }

    /// Recomputes the CRC of the chunk starting at `offset`.
    static func fixCRC(_ png: inout [UInt8], chunkAt offset: Int) {
        let length = Int(png.uint32BE(at: offset))
        png.setUInt32BE(PNGStructure.crc32(png[offset + 4..<offset + 8 + length]), at: offset + 8 + length)
    }

    /// A PNG of `width`×`height` (8-bit samples unless `depth` 16) written with stored deflate blocks.
    static func make(
        width: Int, height: Int, colorType: UInt8 = 2, depth: UInt8 = 8, palette: [UInt8]? = nil
    ) -> [UInt8] {
        let channels = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][Int(colorType)]!
        let rowBytes = (width * channels * Int(depth) + 7) / 8
        var raw: [UInt8] = []
        raw.reserveCapacity((rowBytes + 1) * height)
        for y in 0..<height {
            raw.append(0)
            for x in 0..<rowBytes { raw.append(UInt8(truncatingIfNeeded: x &* 7 &+ y &* 13)) }
        }
        var ihdr = [UInt8](repeating: 0, count: 13)
        ihdr.setUInt32BE(UInt32(width), at: 0)
        ihdr.setUInt32BE(UInt32(height), at: 4)
        ihdr[8] = depth
        ihdr[9] = colorType
        var out = signature + chunk("IHDR", ihdr)
        if let palette { out += chunk("PLTE", palette) }
        return out + chunk("IDAT", zlibStored(raw)) + chunk("IEND", [])
    }

    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var at = 0
        repeat {
            let n = min(65_535, data.count - at)
            let final: UInt8 = at + n == data.count ? 1 : 0
            out += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += data[at..<at + n]
            at += n
        } while at < data.count
        var a: UInt32 = 1
        var b: UInt32 = 0
        for byte in data {
            a = (a + UInt32(byte)) % 65_521
            b = (b + a) % 65_521
        }
        var adler = [UInt8](repeating: 0, count: 4)
        adler.setUInt32BE(b << 16 | a, at: 0)
        return out + adler
    }
}

extension Array where Element == UInt8 {
    func uint32BE(at offset: Int) -> UInt32 { PNGStructure.readUInt32(self, at: offset) }

    mutating func setUInt32BE(_ value: UInt32, at offset: Int) {
        replaceSubrange(offset..<offset + 4, with: PNGStructure.bigEndian(value))
    }
}

extension FuzzCatalog {
    static func png() -> [FuzzCase] {
        var list = CaseList(.png, "png")
        let file = "image.png"
        let refuse = Expectation.refuse("image.png")
        let orAny = Expectation.refuseOrSucceed("image.png")
        for base in [FuzzBases.llavaImage, FuzzBases.qwenImage] {
            let original = try! [UInt8](
                Data(
                    contentsOf: Repository.root.appendingPathComponent(
                        base.id == "llava"
                            ? "GoldenData/images/llava-test-47x39.png" : "GoldenData/images/qwen2-vl-test-70x38.png")))
            let chunks = FuzzPNG.chunks(original)
            let idat = chunks.first { $0.type == "IDAT" }!
            let iend = chunks.first { $0.type == "IEND" }!
            var rng = FuzzRandom("png/\(base.id)")
            func edit(_ name: String, _ e: Expectation, _ change: @escaping @Sendable (inout [UInt8]) -> Void) {
                list.file(base, name, e) { ws in try ws.editBytes(file, change) }
            }
            func ihdr(_ name: String, _ e: Expectation, _ change: @escaping @Sendable (inout [UInt8]) -> Void) {
                edit("ihdr-\(name)", e) { b in
                    change(&b)
                    FuzzPNG.fixCRC(&b, chunkAt: 8)
                }
            }
            // Truncation.
            var cuts = [
                ("0", 0), ("4", 4), ("signature", 8), ("mid-ihdr", 20), ("after-ihdr", 33),
                ("mid-idat", idat.offset + 8 + idat.length / 2), ("before-iend", iend.offset),
                ("last-byte", original.count - 1),
            ]
            cuts.append(("random", rng.int(33..<original.count - 12)))
            for (label, cut) in cuts {
                edit(
                    "truncate-\(label)",
                    label == "before-iend" || label == "last-byte" ? .refuseOrSame("image.png") : refuse
                ) { b in
                    b.removeLast(b.count - cut)
                }
            }
            // CRCs.
            edit("crc-ihdr", refuse) { b in b[29] ^= 0x01 }
            edit("crc-idat", refuse) { b in b[idat.offset + 8 + idat.length] ^= 0x01 }
            edit("crc-iend", .refuseOrSame("image.png")) { b in b[b.count - 1] ^= 0x01 }
            edit("signature-byte", refuse) { b in b[1] = UInt8(ascii: "Q") }
            // IHDR fields (with a correct CRC, so only the values are wrong).
            for (label, w, h) in [
                ("100000x100000", UInt32(100_000), UInt32(100_000)), ("0x0", 0, 0),
                ("width-0", 0, 38), ("2^31-1x1", 0x7FFF_FFFF, 1), ("1x2^31-1", 1, 0x7FFF_FFFF),
                ("2^32-1x2^32-1", UInt32.max, UInt32.max), ("65536x65536", 65_536, 65_536),
            ] {
                ihdr("dims=\(label)", refuse) { b in
                    b.setUInt32BE(w, at: 16)
                    b.setUInt32BE(h, at: 20)
                }
            }
            ihdr("width+1", refuse) { b in b.setUInt32BE(b.uint32BE(at: 16) + 1, at: 16) }
            ihdr("height+1", refuse) { b in b.setUInt32BE(b.uint32BE(at: 20) + 1, at: 20) }
            ihdr("height-1", .refuseOrSucceed("image.png")) { b in b.setUInt32BE(b.uint32BE(at: 20) - 1, at: 20) }
            ihdr("bit-depth-3", refuse) { b in b[24] = 3 }
            ihdr("bit-depth-16", refuse) { b in b[24] = 16 }
            ihdr("color-type-5", refuse) { b in b[25] = 5 }
            ihdr("color-type-palette-without-plte", refuse) { b in b[25] = 3 }
            ihdr("compression-1", refuse) { b in b[26] = 1 }
            ihdr("filter-1", refuse) { b in b[27] = 1 }
            ihdr("interlace-2", refuse) { b in b[28] = 2 }
            ihdr("interlace-1", refuse) { b in b[28] = 1 }
            edit("idat-length-huge", refuse) { b in b.setUInt32BE(0x7FFF_FFFF, at: idat.offset) }
            edit("idat-byte-flipped", orAny) { b in
                b[idat.offset + 8 + idat.length / 3] ^= 0x5A
                FuzzPNG.fixCRC(&b, chunkAt: idat.offset)
            }
            edit("idat-removed", refuse) { b in b.removeSubrange(idat.offset..<idat.offset + 12 + idat.length) }
            edit("ancillary-chunk-added", .same) { b in
                b.insert(contentsOf: FuzzPNG.chunk("tEXt", Array("Comment\0fuzz".utf8)), at: 33)
            }
            edit("unknown-critical-chunk", refuse) { b in
                b.insert(contentsOf: FuzzPNG.chunk("FUZZ", [1, 2, 3]), at: 33)
            }
            edit("trailing-garbage", .refuseOrSame("image.png")) { b in b += Array("trailing text".utf8) }
            // Other files in the PNG's place.
            list.file(base, "text-file", refuse) { ws in try ws.write(file, text: "this is not an image\n") }
            list.file(base, "empty", refuse) { ws in try ws.write(file, Data()) }
            list.file(base, "jpeg", refuse) { ws in
                try ws.write(file, Data([0xFF, 0xD8, 0xFF, 0xE0] + [UInt8](repeating: 0, count: 64)))
            }
            list.file(base, "folder", refuse) { ws in try ws.makeFolder(file) }
            list.file(base, "missing", refuse) { ws in try ws.remove(file) }
            list.file(base, "dangling-link", refuse) { ws in try ws.makeLink(file, to: ws.path("nowhere.png")) }
            // Valid PNGs of unusual kinds and shapes: any answer is right, a refusal must name the file.
            let valid: [(String, () -> [UInt8])] = [
                ("1x1", { FuzzPNG.make(width: 1, height: 1) }),
                ("4096x1", { FuzzPNG.make(width: 4096, height: 1) }),
                ("1x4096", { FuzzPNG.make(width: 1, height: 4096) }),
                ("gray", { FuzzPNG.make(width: 20, height: 12, colorType: 0) }),
                ("gray-alpha", { FuzzPNG.make(width: 9, height: 9, colorType: 4) }),
                ("rgba", { FuzzPNG.make(width: 33, height: 17, colorType: 6) }),
                ("16-bit", { FuzzPNG.make(width: 8, height: 8, depth: 16) }),
                (
                    "palette",
                    { FuzzPNG.make(width: 6, height: 5, colorType: 3, palette: (0..<768).map { UInt8($0 % 256) }) }
                ),
                ("2000x1500", { FuzzPNG.make(width: 2000, height: 1500) }),
            ]
            for (label, make) in valid {
                let bytes = make()
                list.file(base, "valid-\(label)", orAny) { ws in try ws.write(file, Data(bytes)) }
            }
            if base.id == "llava" {
                list.file(base, "fifo", refuse, timeout: 10) { ws in try ws.makeFIFO(file) }
                list.file(base, "link-to-dev-zero", refuse, timeout: 10) { ws in try ws.makeLink(file, to: "/dev/zero")
                }
            }
        }
        return list.cases
    }
}
