// PNG chunk layout, checked in Swift before libpng sees the bytes: signature, chunk lengths, CRCs (libpng's
// simplified API only warns about some CRC errors), chunk order, IHDR values and the size caps (so huge
// declared dimensions are refused before anything is allocated). `stream(...)` rebuilds a minimal PNG
// (IHDR, PLTE, tRNS, IDAT, IEND) for libpng: color-space chunks (gAMA, sRGB, iCCP, cHRM) are left out so
// libpng applies no gamma correction, as PIL applies none.

/// PNG color types (IHDR byte 9).
enum PNGColorType: UInt8 {
    case gray = 0, rgb = 2, palette = 3, grayAlpha = 4, rgba = 6

    var name: String {
        switch self {
        case .gray: return "grayscale"
        case .rgb: return "RGB"
        case .palette: return "palette"
        case .grayAlpha: return "grayscale+alpha"
        case .rgba: return "RGBA"
        }
    }

    /// Bit depths the PNG specification allows for this color type.
    var allowedBitDepths: [UInt8] {
        switch self {
        case .gray: return [1, 2, 4, 8, 16]
        case .palette: return [1, 2, 4, 8]
        case .rgb, .grayAlpha, .rgba: return [8, 16]
        }
    }
}

struct PNGHeader: Equatable {
    var width: Int
    var height: Int
    var bitDepth: UInt8
    var colorType: PNGColorType
    var interlaced: Bool

    /// The 13-byte IHDR payload.
    var bytes: [UInt8] {
        var out: [UInt8] = []
        out += PNGStructure.bigEndian(UInt32(width))
        out += PNGStructure.bigEndian(UInt32(height))
        out += [bitDepth, colorType.rawValue, 0, 0, interlaced ? 1 : 0]
        return out
    }
}

struct PNGStructure {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    let header: PNGHeader
    /// PLTE payload (palette images only).
    let palette: [UInt8]?
    /// tRNS payload, when present and allowed for the color type.
    let transparency: [UInt8]?
    /// IDAT payloads in order.
    let imageData: [ArraySlice<UInt8>]

    /// Parses and validates the chunk layout of `bytes`; errors name `source`.
    static func parse(_ bytes: [UInt8], source: String) throws -> PNGStructure {
        try checkSignature(bytes, source: source)

        var offset = 8
        var header: PNGHeader?
        var palette: [UInt8]?
        var transparency: [UInt8]?
        var imageData: [ArraySlice<UInt8>] = []
        var idatEnded = false      // a non-IDAT chunk followed the IDAT run
        var sawEnd = false

        while offset < bytes.count {
            guard bytes.count - offset >= 8 else {
                throw FormatError(.truncated, file: source,
                                  "chunk header at offset \(offset) is cut short (\(bytes.count - offset) bytes left)")
            }
            let length = Int(readUInt32(bytes, at: offset))
            let typeBytes = Array(bytes[(offset + 4)..<(offset + 8)])
            let type = String(decoding: typeBytes, as: UTF8.self)
            guard typeBytes.allSatisfy({ (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) else {
                throw FormatError(.malformed, file: source,
                                  "invalid chunk type \(hex(typeBytes[...])) at offset \(offset)")
            }
            guard length <= 0x7FFF_FFFF else {
                throw FormatError(.malformed, file: source,
                                  "chunk '\(type)' at offset \(offset) declares length \(length) (over 2^31-1)")
            }
            let dataStart = offset + 8
            guard bytes.count - dataStart >= length + 4 else {
                throw FormatError(.truncated, file: source,
                                  "chunk '\(type)' at offset \(offset) declares \(length) data bytes + 4 CRC bytes, "
                                  + "only \(bytes.count - dataStart) remain")
            }
            let data = bytes[dataStart..<(dataStart + length)]
            let stored = readUInt32(bytes, at: dataStart + length)
            let computed = crc32(bytes[(offset + 4)..<(dataStart + length)])
            guard stored == computed else {
                throw FormatError(.malformed, file: source,
                                  "CRC mismatch in chunk '\(type)' at offset \(offset) (stored "
                                  + "0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16)))")
            }
            let chunkOffset = offset
            offset = dataStart + length + 4

            if header == nil && type != "IHDR" {
                throw FormatError(.malformed, file: source, "first chunk is '\(type)', expected 'IHDR'")
            }
            if !imageData.isEmpty && type != "IDAT" { idatEnded = true }

            switch type {
            case "IHDR":
                guard header == nil else {
                    throw FormatError(.malformed, file: source, "second IHDR chunk at offset \(chunkOffset)")
                }
                header = try parseHeader(data, source: source)
            case "PLTE":
                guard palette == nil else {
                    throw FormatError(.malformed, file: source, "second PLTE chunk at offset \(chunkOffset)")
                }
                guard imageData.isEmpty else { throw FormatError(.malformed, file: source, "PLTE chunk after IDAT") }
                guard let header, header.colorType != .gray, header.colorType != .grayAlpha else {
                    throw FormatError(.malformed, file: source, "PLTE chunk is not allowed in a grayscale image")
                }
                guard length > 0, length % 3 == 0, length / 3 <= 256 else {
                    throw FormatError(.malformed, file: source,
                                      "PLTE chunk of \(length) bytes (must be 3 to 768 bytes, a multiple of 3)")
                }
                palette = Array(data)
            case "tRNS":
                guard let header else { break }
                guard transparency == nil else {
                    throw FormatError(.malformed, file: source, "second tRNS chunk at offset \(chunkOffset)")
                }
                guard imageData.isEmpty else { throw FormatError(.malformed, file: source, "tRNS chunk after IDAT") }
                switch header.colorType {
                case .gray:
                    guard length == 2 else {
                        throw FormatError(.malformed, file: source,
                                          "grayscale tRNS chunk of \(length) bytes (must be 2)")
                    }
                    transparency = Array(data)
                case .rgb:
                    guard length == 6 else {
                        throw FormatError(.malformed, file: source, "RGB tRNS chunk of \(length) bytes (must be 6)")
                    }
                    transparency = Array(data)
                case .palette:
                    guard let palette else { throw FormatError(.malformed, file: source, "tRNS chunk before PLTE") }
                    guard length <= palette.count / 3 else {
                        throw FormatError(.malformed, file: source,
                                          "tRNS has \(length) entries, the palette only \(palette.count / 3)")
                    }
                    transparency = Array(data)
                case .grayAlpha, .rgba:
                    break  // not allowed with an alpha channel; libpng and PIL ignore it, and so does Arbiter
                }
            case "IDAT":
                guard !idatEnded else {
                    throw FormatError(.malformed, file: source,
                                      "IDAT chunks are not consecutive (second run at offset \(chunkOffset))")
                }
                if header?.colorType == .palette && palette == nil {
                    throw FormatError(.missing, file: source, "palette image has no PLTE chunk before its image data")
                }
                imageData.append(data)
            case "IEND":
                guard length == 0 else {
                    throw FormatError(.malformed, file: source, "IEND chunk has \(length) data bytes (must be 0)")
                }
                sawEnd = true
            default:
                // Bit 5 of the first type byte clear (uppercase) marks a critical chunk a decoder must understand.
                if typeBytes[0] & 0x20 == 0 {
                    throw FormatError(.unsupported, file: source,
                                      "unknown critical chunk '\(type)' at offset \(chunkOffset)")
                }
            }
            if sawEnd { break }   // bytes after IEND are ignored, as PIL and libpng do
        }

        guard let header else { throw FormatError(.truncated, file: source, "no IHDR chunk") }
        guard !imageData.isEmpty else {
            throw FormatError(sawEnd ? .missing : .truncated, file: source, "no IDAT chunk (no image data)")
        }
        guard sawEnd else {
            throw FormatError(.truncated, file: source, "no IEND chunk: the file ends after offset \(offset)")
        }
        if header.colorType == .palette && palette == nil {
            throw FormatError(.missing, file: source, "palette image has no PLTE chunk")
        }
        return PNGStructure(header: header, palette: palette, transparency: transparency, imageData: imageData)
    }

    /// Throws unless `bytes` starts with the PNG signature.
    static func checkSignature(_ bytes: [UInt8], source: String) throws {
        guard !bytes.isEmpty else {
            throw FormatError(.truncated, file: source, "empty data (0 bytes), not a PNG image")
        }
        guard bytes.count >= 8 else {
            if Array(signature.prefix(bytes.count)) == bytes {
                throw FormatError(.truncated, file: source,
                                  "only \(bytes.count) bytes: the 8-byte PNG signature is cut short")
            }
            throw FormatError(.malformed, file: source, "not a PNG image (bad signature; \(bytes.count) bytes)")
        }
        guard Array(bytes[0..<8]) == signature else {
            throw FormatError(.malformed, file: source, "not a PNG image (bad signature \(hex(bytes[0..<8])))")
        }
    }

    static func parseHeader(_ data: ArraySlice<UInt8>, source: String) throws -> PNGHeader {
        guard data.count == 13 else {
            throw FormatError(.malformed, file: source, "IHDR chunk has \(data.count) bytes (must be 13)")
        }
        let base = data.startIndex
        let width = Int(readUInt32(Array(data), at: 0))
        let height = Int(readUInt32(Array(data), at: 4))
        let depth = data[base + 8], colorByte = data[base + 9]
        let compression = data[base + 10], filter = data[base + 11], interlace = data[base + 12]
        guard width > 0, height > 0 else {
            throw FormatError(.malformed, file: source,
                              "IHDR declares size \(width)x\(height): width and height must be positive")
        }
        guard width <= 0x7FFF_FFFF, height <= 0x7FFF_FFFF else {
            throw FormatError(.malformed, file: source,
                              "IHDR declares size \(width)x\(height): over the PNG limit of 2^31-1")
        }
        try RGBImage.checkSize(width: width, height: height, source: source)
        guard let colorType = PNGColorType(rawValue: colorByte) else {
            throw FormatError(.malformed, file: source, "IHDR declares color type \(colorByte) (valid: 0, 2, 3, 4, 6)")
        }
        guard colorType.allowedBitDepths.contains(depth) else {
            throw FormatError(.malformed, file: source,
                              "IHDR declares bit depth \(depth) for color type \(colorByte) (\(colorType.name)); "
                              + "allowed: \(colorType.allowedBitDepths.map(String.init).joined(separator: ", "))")
        }
        guard compression == 0 else {
            throw FormatError(.malformed, file: source, "IHDR declares compression method \(compression) (must be 0)")
        }
        guard filter == 0 else {
            throw FormatError(.malformed, file: source, "IHDR declares filter method \(filter) (must be 0)")
        }
        guard interlace <= 1 else {
            throw FormatError(.malformed, file: source, "IHDR declares interlace method \(interlace) (must be 0 or 1)")
        }
        return PNGHeader(width: width, height: height, bitDepth: depth, colorType: colorType,
                         interlaced: interlace == 1)
    }

    /// A minimal PNG stream for libpng: IHDR (`header`, which may re-declare the layout), PLTE and tRNS when
    /// asked for, the IDAT chunks unchanged, IEND.
    func stream(header: PNGHeader, palette includePalette: Bool, transparency includeTransparency: Bool) -> [UInt8] {
        var out = PNGStructure.signature
        out.reserveCapacity(imageData.reduce(64 + (palette?.count ?? 0)) { $0 + $1.count + 12 })
        PNGStructure.appendChunk("IHDR", header.bytes[...], to: &out)
        // Palette entries past 2^depth cannot be indexed; libpng drops them silently but then ignores a tRNS
        // longer than the shortened palette, which PIL would use. Shorten both so libpng keeps the tRNS.
        let entries = header.colorType == .palette ? 1 << Int(header.bitDepth) : 256
        if includePalette, let palette { PNGStructure.appendChunk("PLTE", palette.prefix(3 * entries), to: &out) }
        if includeTransparency, let transparency {
            PNGStructure.appendChunk("tRNS", transparency.prefix(entries), to: &out)
        }
        for data in imageData { PNGStructure.appendChunk("IDAT", data, to: &out) }
        PNGStructure.appendChunk("IEND", [][...], to: &out)
        return out
    }

    // MARK: Helpers

    static func appendChunk(_ type: String, _ data: ArraySlice<UInt8>, to out: inout [UInt8]) {
        let typeBytes = Array(type.utf8)
        out += bigEndian(UInt32(data.count))
        let start = out.count
        out += typeBytes
        out += data
        out += bigEndian(crc32(out[start...]))
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }

    static func readUInt32(_ bytes: [UInt8], at i: Int) -> UInt32 {
        UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
    }

    static func hex(_ bytes: ArraySlice<UInt8>) -> String {
        bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: " ")
    }

    private static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 (ISO 3309, as PNG and zlib use it).
    static func crc32<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
