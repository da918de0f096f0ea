// A PNG file's declared size, read from its first 33 bytes (signature and IHDR chunk) without reading or
// decoding the rest, so that a caller can refuse an image by its dimensions before anything is allocated.
import Foundation

/// What the start of a PNG file declares.
public struct PNGFileInfo: Sendable, Equatable {
    /// Width and height as IHDR declares them (positive, not yet checked against any size cap).
    public let width: Int
    public let height: Int
    /// The file's size in bytes.
    public let bytes: Int
}

extension PNGImage {
    /// Signature (8) + IHDR length (4) + type (4) + payload (13) + CRC (4).
    static let headerBytes = 33

    /// Reads the signature and the IHDR chunk of the PNG file at `url` (a regular file: pipes and devices are
    /// refused before opening). Only these bytes are checked; `read(url:)` validates the rest.
    public static func info(url: URL) throws -> PNGFileInfo {
        let size = try FileCheck.regularFile(url)
        let bytes: [UInt8]
        do {
            let handle = try FileHandle(forReadingFrom: url)
            defer { try? handle.close() }
            bytes = [UInt8](try handle.read(upToCount: headerBytes) ?? Data())
        } catch {
            throw FormatError(.unreadable, file: url, "cannot read: \(error.localizedDescription)")
        }
        let source = url.path
        try PNGStructure.checkSignature(bytes, source: source)
        guard bytes.count == headerBytes else {
            throw FormatError(.truncated, file: source,
                              "only \(bytes.count) bytes: the file ends inside the IHDR chunk")
        }
        let length = PNGStructure.readUInt32(bytes, at: 8)
        let type = String(decoding: bytes[12..<16], as: UTF8.self)
        guard type == "IHDR", length == 13 else {
            throw FormatError(.malformed, file: source,
                              "the first chunk is '\(type)' of \(length) bytes; a PNG starts with a 13-byte IHDR chunk")
        }
        let width = Int(PNGStructure.readUInt32(bytes, at: 16)), height = Int(PNGStructure.readUInt32(bytes, at: 20))
        guard width > 0, height > 0 else {
            throw FormatError(.malformed, file: source,
                              "IHDR declares size \(width)x\(height): width and height must be positive")
        }
        return PNGFileInfo(width: width, height: height, bytes: size)
    }
}
