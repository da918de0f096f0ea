// PNG reading and writing. Decoding reproduces what Pillow 12 gives for `Image.open(f).convert("RGB")`
// (PngImagePlugin + Convert.c), because transformers' image processors receive images that way:
// - no gamma correction (gAMA, sRGB, iCCP, cHRM are ignored, as PIL ignores them);
// - 1/2/4-bit gray is scaled to 0...255 (×255, ×85, ×17), palette indices past the PLTE give black;
// - 16-bit RGB, RGBA and gray+alpha keep the high byte of each sample; 16-bit gray (PIL mode "I;16")
//   is clipped to 255 (PIL's I;16 → RGB conversion clips, it does not scale);
// - alpha is not applied to `pixels`; it is kept in `RGBImage.alpha` when the image has an alpha channel
//   or a tRNS chunk, with PIL's `convert("RGBA")` rules: palette tRNS gives each index its alpha; gray and
//   RGB tRNS make alpha 0 where the converted 8-bit pixel equals the tRNS sample's *low byte* (PIL compares
//   `value & 0xff`, without scaling low bit depths: a 2-bit tRNS of 2 never matches, 0 matches black).
// Known difference: 16-bit RGBA goes through libpng's only 16-bit RGBA read format, which premultiplies color
// by alpha; Arbiter divides it back out. Opaque pixels are exact; translucent pixels can differ from PIL by one
// in a channel, and fully transparent pixels decode as black in `pixels` (PIL keeps their stored color; the
// white composite that transformers uses is the same either way).
import Foundation

public enum PNGImage {
    /// Largest PNG file `read(url:)` accepts.
    public static let maximumFileBytes = 1 << 30

    /// Decodes PNG bytes; errors are `FormatError`s naming `source` and the problem.
    public static func decode(data: Data, source: String) throws -> RGBImage {
        try decode(bytes: [UInt8](data), source: source)
    }

    /// Reads and decodes the PNG file at `url` (a regular file: a pipe or a device is refused before opening).
    public static func read(url: URL) throws -> RGBImage {
        let size = try FileCheck.regularFile(url)
        if size > maximumFileBytes {
            throw FormatError(.tooLarge, file: url,
                              "\(size) bytes is over the \(maximumFileBytes)-byte limit for PNG files")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw FormatError(.unreadable, file: url, "cannot read: \(error.localizedDescription)")
        }
        return try decode(data: data, source: url.path)
    }

    /// Encodes an image as an 8-bit PNG: RGB, or RGBA when the image has an alpha plane.
    public static func encode(_ image: RGBImage) throws -> Data {
        let channels = image.alpha == nil ? 3 : 4
        var samples = image.pixels
        if let alpha = image.alpha {
            samples = [UInt8](repeating: 0, count: image.width * image.height * 4)
            for i in 0..<(image.width * image.height) {
                samples[4 * i] = image.pixels[3 * i]
                samples[4 * i + 1] = image.pixels[3 * i + 1]
                samples[4 * i + 2] = image.pixels[3 * i + 2]
                samples[4 * i + 3] = alpha[i]
            }
        }
        switch PNGLibrary.encode(width: image.width, height: image.height, channels: channels, samples: samples) {
        case .success(let bytes): return Data(bytes)
        case .failure(let error):
            throw FormatError(.unsupported, file: "PNG encoder",
                              "libpng cannot encode \(image.width)x\(image.height): \(error.message)")
        }
    }

    /// Encodes `image` and writes it to `url` atomically: into a temporary file in the same folder, then renamed
    /// over `url`, so readers never see a partial file.
    public static func write(_ image: RGBImage, to url: URL) throws {
        let data = try encode(image)
        let folder = url.deletingLastPathComponent()
        let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: data) else {
            throw FormatError(.unreadable, file: url,
                              "cannot write: cannot create \(temporary.lastPathComponent) in \(folder.path)")
        }
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw FormatError(.unreadable, file: url,
                              "cannot write: rename from \(temporary.lastPathComponent) failed (\(reason))")
        }
    }

    // MARK: Decoding

    static func decode(bytes: [UInt8], source: String) throws -> RGBImage {
        let png = try PNGStructure.parse(bytes, source: source)
        let header = png.header
        let count = header.width * header.height
        var rgb = [UInt8](repeating: 0, count: count * 3)
        var alpha: [UInt8]?

        switch (header.colorType, header.bitDepth) {
        case (.palette, _):
            // libpng expands indices through PLTE and tRNS exactly as PIL's P → RGB / RGBA conversion.
            let rgba = try bytes8(png, header: header, palette: true, transparency: true, source: source)
            alpha = png.transparency == nil ? nil : [UInt8](repeating: 0, count: count)
            for i in 0..<count {
                rgb[3 * i] = rgba[4 * i]; rgb[3 * i + 1] = rgba[4 * i + 1]; rgb[3 * i + 2] = rgba[4 * i + 2]
                alpha?[i] = rgba[4 * i + 3]
            }

        case (.gray, 16):
            let gray = try words(png, header: header, format: .gray16, source: source)
            for i in 0..<count {
                let v = UInt8(min(gray[i], 255))   // PIL I;16 → RGB clips
                rgb[3 * i] = v; rgb[3 * i + 1] = v; rgb[3 * i + 2] = v
            }
            alpha = transparentColorAlpha(rgb, png.transparency, color: false)

        case (.gray, _), (.rgb, 8):
            let rgba = try bytes8(png, header: header, palette: false, transparency: false, source: source)
            for i in 0..<count {
                rgb[3 * i] = rgba[4 * i]; rgb[3 * i + 1] = rgba[4 * i + 1]; rgb[3 * i + 2] = rgba[4 * i + 2]
            }
            alpha = transparentColorAlpha(rgb, png.transparency, color: header.colorType == .rgb)

        case (.rgb, _):
            let words = try words(png, header: header, format: .rgb16, source: source)
            for i in 0..<(count * 3) { rgb[i] = UInt8(words[i] >> 8) }
            alpha = transparentColorAlpha(rgb, png.transparency, color: true)

        case (.grayAlpha, 8):
            let rgba = try bytes8(png, header: header, palette: false, transparency: false, source: source)
            var a = [UInt8](repeating: 0, count: count)
            for i in 0..<count {
                rgb[3 * i] = rgba[4 * i]; rgb[3 * i + 1] = rgba[4 * i + 1]; rgb[3 * i + 2] = rgba[4 * i + 2]
                a[i] = rgba[4 * i + 3]
            }
            alpha = a

        case (.grayAlpha, _):
            // 16-bit gray+alpha has the same bytes per pixel (4, which the row filters depend on) and row length
            // as 8-bit RGBA, so libpng reads it re-declared as RGBA8, handing back the raw sample bytes
            // (G high, G low, A high, A low) with no 16-bit processing; PIL keeps the high bytes.
            var redeclared = header
            redeclared.bitDepth = 8
            redeclared.colorType = .rgba
            let raw = try bytes8(png, header: redeclared, palette: false, transparency: false, source: source)
            var a = [UInt8](repeating: 0, count: count)
            for i in 0..<count {
                let g = raw[4 * i]
                rgb[3 * i] = g; rgb[3 * i + 1] = g; rgb[3 * i + 2] = g
                a[i] = raw[4 * i + 2]
            }
            alpha = a

        case (.rgba, 8):
            let rgba = try bytes8(png, header: header, palette: false, transparency: false, source: source)
            var a = [UInt8](repeating: 0, count: count)
            for i in 0..<count {
                rgb[3 * i] = rgba[4 * i]; rgb[3 * i + 1] = rgba[4 * i + 1]; rgb[3 * i + 2] = rgba[4 * i + 2]
                a[i] = rgba[4 * i + 3]
            }
            alpha = a

        case (.rgba, _):
            // libpng's 16-bit RGBA read format is premultiplied (see the note at the top of this file).
            let words = try words(png, header: header, format: .rgba16, source: source)
            var a = [UInt8](repeating: 0, count: count)
            for i in 0..<count {
                let a16 = UInt32(words[4 * i + 3])
                a[i] = UInt8(a16 >> 8)
                for c in 0..<3 {
                    let p = UInt32(words[4 * i + c])
                    let color = a16 == 0 ? 0 : min(65535, (p * 65535 + a16 / 2) / a16)
                    rgb[3 * i + c] = UInt8(color >> 8)
                }
            }
            alpha = a
        }
        return RGBImage(width: header.width, height: header.height, pixels: rgb, alpha: alpha)
    }

    /// PIL's `convert_transparent` rule for gray/RGB tRNS: alpha 0 where the 8-bit RGB pixel equals the tRNS
    /// samples' low bytes (gray: the one sample for all three channels), 255 elsewhere.
    private static func transparentColorAlpha(_ rgb: [UInt8], _ transparency: [UInt8]?, color: Bool) -> [UInt8]? {
        guard let t = transparency else { return nil }
        let key: (UInt8, UInt8, UInt8) = color ? (t[1], t[3], t[5]) : (t[1], t[1], t[1])
        var alpha = [UInt8](repeating: 255, count: rgb.count / 3)
        for i in 0..<alpha.count where rgb[3 * i] == key.0 && rgb[3 * i + 1] == key.1 && rgb[3 * i + 2] == key.2 {
            alpha[i] = 0
        }
        return alpha
    }

    private static func bytes8(_ png: PNGStructure, header: PNGHeader, palette: Bool, transparency: Bool,
                               source: String) throws -> [UInt8] {
        let stream = png.stream(header: header, palette: palette, transparency: transparency)
        switch PNGLibrary.decode(stream, format: .rgba8) {
        case .success(let result):
            guard result.width == header.width, result.height == header.height,
                  case .bytes(let bytes) = result.samples else {
                throw FormatError(.inconsistent, file: source,
                                  "libpng decoded \(result.width)x\(result.height), IHDR declares "
                                  + "\(header.width)x\(header.height)")
            }
            return bytes
        case .failure(let error):
            throw libraryError(error, source: source)
        }
    }

    private static func words(_ png: PNGStructure, header: PNGHeader, format: PNGLibrary.ReadFormat,
                              source: String) throws -> [UInt16] {
        let stream = png.stream(header: header, palette: false, transparency: false)
        switch PNGLibrary.decode(stream, format: format) {
        case .success(let result):
            guard result.width == header.width, result.height == header.height,
                  case .words(let words) = result.samples else {
                throw FormatError(.inconsistent, file: source,
                                  "libpng decoded \(result.width)x\(result.height), IHDR declares "
                                  + "\(header.width)x\(header.height)")
            }
            return words
        case .failure(let error):
            throw libraryError(error, source: source)
        }
    }

    private static func libraryError(_ error: PNGLibrary.LibraryError, source: String) -> FormatError {
        let lower = error.message.lowercased()
        let kind: FormatError.Kind = lower.contains("not enough") || lower.contains("truncated")
            ? .truncated : .malformed
        return FormatError(kind, file: source, "image data cannot be decoded (libpng: \(error.message))")
    }
}
