// SafetensorsWriter: writes .safetensors files byte-for-byte as the reference implementation
// (huggingface/safetensors `serialize`) does, atomically (temporary file in the same folder, then rename).
import Foundation
import ArbiterTensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum SafetensorsWriter {
    /// Writes `tensors` (raw little-endian element bytes) and `metadata` to `url`.
    ///
    /// Layout as the reference writer: tensors ordered by dtype (the reference's `Dtype` order, descending:
    /// F32, BF16, F16) then by name (UTF-8 bytes), laid out back to back in that order; the header lists `__metadata__`
    /// first (keys sorted here;
    /// omitted when empty), then the tensors in data order, each as `{"dtype","shape","data_offsets"}`, compact
    /// JSON padded with spaces to a multiple of 8 bytes. Throws `FormatError` for invalid input (empty or
    /// duplicate names, byte count not matching the shape) or when the file cannot be written.
    public static func write(_ tensors: [(name: String, dtype: DType, shape: [Int], bytes: [UInt8])],
                             metadata: [String: String] = [:], to url: URL) throws {
        var seen = Set<String>()
        for tensor in tensors {
            guard !tensor.name.isEmpty, tensor.name != "__metadata__" else {
                throw FormatError(.malformed, file: url, "cannot write a tensor named \"\(tensor.name)\"")
            }
            guard seen.insert(tensor.name).inserted else {
                throw FormatError(.unexpected, file: url, "duplicate tensor name \"\(tensor.name)\"")
            }
            guard tensor.shape.allSatisfy({ $0 >= 0 }) else {
                throw FormatError(.malformed, file: url,
                                  "tensor \"\(tensor.name)\": negative dimension in shape \(tensor.shape)")
            }
            var count = 1
            for dimension in tensor.shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
                guard !overflow else {
                    throw FormatError(.malformed, file: url,
                                      "tensor \"\(tensor.name)\": shape \(tensor.shape) overflows")
                }
                count = product
            }
            guard count.multipliedReportingOverflow(by: tensor.dtype.byteSize) == (tensor.bytes.count, false) else {
                throw FormatError(.inconsistent, file: url,
                                  "tensor \"\(tensor.name)\": shape \(tensor.shape) of \(tensor.dtype.rawValue) needs "
                                  + "\(count) elements × \(tensor.dtype.byteSize) bytes, got "
                                  + "\(tensor.bytes.count) bytes")
            }
        }
        let ordered = tensors.sorted { a, b in
            if a.dtype != b.dtype { return referenceRank(a.dtype) > referenceRank(b.dtype) }
            return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
        }

        var header = "{"
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
                .map { "\(jsonString($0)):\(jsonString(metadata[$0] ?? ""))" }
            fields.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        for tensor in ordered {
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            fields.append("\(jsonString(tensor.name)):{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[\(shape)],"
                          + "\"data_offsets\":[\(offset),\(offset + tensor.bytes.count)]}")
            offset += tensor.bytes.count
        }
        header += fields.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        headerBytes += [UInt8](repeating: UInt8(ascii: " "), count: (8 - headerBytes.count % 8) % 8)

        var prefix = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { prefix = Array($0) }
        try writeAtomically(to: url, chunks: [prefix, headerBytes] + ordered.map(\.bytes))
    }

    /// Position of `dtype` in the reference implementation's `Dtype` enum (…, F16, BF16, …, F32, …), whose
    /// descending order decides the data layout.
    static func referenceRank(_ dtype: DType) -> Int {
        switch dtype {
        case .float16: return 0
        case .bfloat16: return 1
        case .float32: return 2
        }
    }

    /// Writes Float32 tensors converted to `dtype` (F32 as is, F16 via `Float16` rounding to nearest even,
    /// BF16 via `floatToBFloat16`).
    public static func write(floats tensors: [String: Tensor], dtype: DType,
                             metadata: [String: String] = [:], to url: URL) throws {
        let converted = tensors.map { name, tensor in
            (name: name, dtype: dtype, shape: tensor.shape, bytes: encode(tensor.scalars, as: dtype))
        }
        try write(converted, metadata: metadata, to: url)
    }

    /// Little-endian bytes of `values` stored as `dtype`.
    public static func encode(_ values: [Float], as dtype: DType) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * dtype.byteSize)
        for value in values {
            switch dtype {
            case .float32:
                let bits = value.bitPattern.littleEndian
                withUnsafeBytes(of: bits) { bytes += $0 }
            case .float16:
                let bits = encodeFloat16(value).littleEndian
                withUnsafeBytes(of: bits) { bytes += $0 }
            case .bfloat16:
                let bits = floatToBFloat16(value).littleEndian
                withUnsafeBytes(of: bits) { bytes += $0 }
            }
        }
        return bytes
    }

    /// Float32 → IEEE half bits, rounding to nearest even (what torch's `.half()` does).
    static func encodeFloat16(_ value: Float) -> UInt16 { Float16(value).bitPattern }

    /// A JSON string literal escaped as serde_json does: `"` and `\`, the short escapes \b \f \n \r \t, other
    /// control characters as \u00xx; everything else (including non-ASCII) as raw UTF-8.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Writes `chunks` to a temporary file next to `url`, flushes it, then renames it over `url`.
    static func writeAtomically(to url: URL, chunks: [[UInt8]]) throws {
        let folder = url.deletingLastPathComponent()
        let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-"
                                                      + "\(UInt32.random(in: 0...UInt32.max))")
        let descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw FormatError(.unreadable, file: url,
                              "cannot create temporary file \(temporary.lastPathComponent) in \(folder.path): "
                              + "\(String(cString: strerror(errno)))")
        }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(descriptor) }
            if !renamed { unlink(temporary.path) }
        }
        for chunk in chunks {
            var written = 0
            while written < chunk.count {
                let result = chunk.withUnsafeBytes { buffer in
                    posixWrite(descriptor, UnsafeRawBufferPointer(rebasing: buffer[written...]))
                }
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else {
                    throw FormatError(.unreadable, file: url, "cannot write: \(String(cString: strerror(errno)))")
                }
                written += result
            }
        }
        guard fsync(descriptor) == 0 else {
            throw FormatError(.unreadable, file: url, "cannot flush: \(String(cString: strerror(errno)))")
        }
        closed = true
        guard close(descriptor) == 0 else {
            throw FormatError(.unreadable, file: url, "cannot close: \(String(cString: strerror(errno)))")
        }
        guard rename(temporary.path, url.path) == 0 else {
            throw FormatError(.unreadable, file: url,
                              "cannot rename the temporary file into place: \(String(cString: strerror(errno)))")
        }
        renamed = true
    }
}

/// `write(2)` of a whole buffer attempt (outside the enum, whose `write` methods would shadow it).
private func posixWrite(_ descriptor: Int32, _ buffer: UnsafeRawBufferPointer) -> Int {
    guard let base = buffer.baseAddress else { return 0 }
    return write(descriptor, base, buffer.count)
}
