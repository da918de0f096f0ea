// The only Swift file that imports CPNG (libpng 1.6). libpng reports errors by longjmp, which Swift cannot
// survive, so only the simplified API (png_image_*) is used: it catches libpng's errors itself and returns them
// in `png_image.message`. Callers hand it byte streams that PNGStructure already validated (signature, chunk
// layout, CRCs, IHDR, size caps) and stripped of color-space chunks, so libpng applies no gamma correction.
import CPNG

enum PNGLibrary {
    /// Sample layouts read through the simplified API.
    enum ReadFormat {
        /// 8-bit RGBA, colors not premultiplied (the sRGB formats); palette, tRNS and low bit depths expanded.
        case rgba8
        /// 16-bit linear gray, raw samples when the file has no gamma information.
        case gray16
        /// 16-bit linear RGB, raw samples when the file has no gamma information.
        case rgb16
        /// 16-bit linear RGBA: libpng premultiplies the colors by alpha.
        case rgba16

        var flags: UInt32 {
            switch self {
            case .rgba8: return colorFlag | alphaFlag
            case .gray16: return linearFlag
            case .rgb16: return colorFlag | linearFlag
            case .rgba16: return colorFlag | alphaFlag | linearFlag
            }
        }

        var channels: Int {
            switch self {
            case .rgba8, .rgba16: return 4
            case .gray16: return 1
            case .rgb16: return 3
            }
        }
    }

    /// Decoded samples: bytes for `.rgba8`, 16-bit values for the linear formats.
    enum Samples {
        case bytes([UInt8])
        case words([UInt16])
    }

    // PNG_FORMAT_FLAG_* and PNG_IMAGE_VERSION, spelled out (Swift does not import every macro form).
    private static let alphaFlag: UInt32 = 0x01
    private static let colorFlag: UInt32 = 0x02
    private static let linearFlag: UInt32 = 0x04
    private static let imageVersion: UInt32 = 1

    static var version: String { String(cString: png_get_libpng_ver(nil)) }

    /// Decodes a complete PNG byte stream into `format`. Returns the size and the samples, or libpng's message.
    static func decode(_ stream: [UInt8],
                       format: ReadFormat) -> Result<(width: Int, height: Int, samples: Samples), LibraryError> {
        var image = png_image()
        image.version = imageVersion
        return stream.withUnsafeBytes { raw -> Result<(width: Int, height: Int, samples: Samples), LibraryError> in
            guard png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count) != 0 else {
                defer { png_image_free(&image) }
                return .failure(LibraryError(message(of: image)))
            }
            let width = Int(image.width), height = Int(image.height)
            image.format = format.flags
            image.flags = 0
            let count = width * height * format.channels
            switch format {
            case .rgba8:
                var buffer = [UInt8](repeating: 0, count: count)
                let ok = buffer.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
                defer { png_image_free(&image) }
                guard ok != 0 else { return .failure(LibraryError(message(of: image))) }
                return .success((width, height, .bytes(buffer)))
            case .gray16, .rgb16, .rgba16:
                var buffer = [UInt16](repeating: 0, count: count)
                let ok = buffer.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
                defer { png_image_free(&image) }
                guard ok != 0 else { return .failure(LibraryError(message(of: image))) }
                return .success((width, height, .words(buffer)))
            }
        }
    }

    /// Encodes 8-bit RGB (`channels == 3`) or RGBA (`channels == 4`, not premultiplied) samples as a PNG stream.
    static func encode(width: Int, height: Int, channels: Int, samples: [UInt8]) -> Result<[UInt8], LibraryError> {
        precondition(channels == 3 || channels == 4, "PNG encoding takes 3 or 4 channels")
        precondition(samples.count == width * height * channels, "sample count does not match the image size")
        var image = png_image()
        image.version = imageVersion
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = channels == 4 ? colorFlag | alphaFlag : colorFlag
        return samples.withUnsafeBytes { pixels -> Result<[UInt8], LibraryError> in
            var size = 0
            // First call: the size of the stream.
            guard png_image_write_to_memory(&image, nil, &size, 0, pixels.baseAddress, 0, nil) != 0 else {
                defer { png_image_free(&image) }
                return .failure(LibraryError(message(of: image)))
            }
            var out = [UInt8](repeating: 0, count: size)
            let ok = out.withUnsafeMutableBytes {
                png_image_write_to_memory(&image, $0.baseAddress, &size, 0, pixels.baseAddress, 0, nil)
            }
            defer { png_image_free(&image) }
            guard ok != 0 else { return .failure(LibraryError(message(of: image))) }
            return .success(Array(out.prefix(size)))
        }
    }

    struct LibraryError: Error {
        let message: String
        init(_ message: String) { self.message = message.isEmpty ? "libpng failed without a message" : message }
    }

    private static func message(of image: png_image) -> String {
        var copy = image.message
        return withUnsafeBytes(of: &copy) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
