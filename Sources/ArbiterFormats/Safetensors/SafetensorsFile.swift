// SafetensorsFile: reads one .safetensors file (format of huggingface/safetensors) into zero-copy tensor views
// of a memory map, validating the header strictly.
//
// Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data buffer. The JSON object
// maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data buffer)
// and may hold "__metadata__": {string: string}. The header begins with `{` and may be padded after the
// object's closing brace with spaces (0x20) only; the tensors, in offset order, cover the data buffer exactly.
import Foundation
import ArbiterJSON
import ArbiterTensor

/// One safetensors file, memory-mapped. Tensors are views into the map (kept alive by each `StoredTensor`).
public struct SafetensorsFile: Sendable {
    /// Largest header accepted (the reference implementation's limit).
    public static let maximumHeaderBytes = 100_000_000

    /// The element size in bits of every dtype the format defines (Arbiter reads only F32, F16, BF16).
    static let knownDTypeBits: [String: Int] = [
        "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
        "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
        "I32": 32, "U32": 32, "F32": 32,
        "I64": 64, "U64": 64, "F64": 64, "C64": 64,
        "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    ]

    public let url: URL
    /// Tensors by name (only supported dtypes).
    public let tensors: [String: StoredTensor]
    /// The header's `__metadata__` (empty when absent).
    public let metadata: [String: String]
    /// Names of tensors with unsupported dtypes left out (only when opened with `skipUnsupported`), sorted.
    public let skipped: [String]
    /// Offset of the data buffer in the file (8 + header length).
    public let dataOffset: Int

    /// Tensor names, sorted.
    public var names: [String] { tensors.keys.sorted() }

    /// Opens and validates the file at `url`. Tensors whose dtype Arbiter does not read are an
    /// `.unsupported` error unless `skipUnsupported` is set (then their names are in `skipped`).
    public init(url: URL, skipUnsupported: Bool = false) throws {
        let map = try MappedFile(url: url)
        self.url = url
        func fail(_ kind: FormatError.Kind, _ problem: String) -> FormatError { FormatError(kind, file: url, problem) }

        // Header length and header bytes.
        guard map.count >= 8 else {
            throw fail(.truncated,
                       "file is \(map.count) bytes, shorter than the 8-byte header length; not a safetensors file")
        }
        let declared = UInt64(littleEndian: map.bytes.loadUnaligned(as: UInt64.self))
        guard declared <= UInt64(Self.maximumHeaderBytes) else {
            throw fail(.tooLarge,
                       "header length \(declared) is over the \(Self.maximumHeaderBytes)-byte limit; not a safetensors "
                       + "file or corrupt")
        }
        let headerLength = Int(declared)
        guard headerLength <= map.count - 8 else {
            throw fail(.truncated,
                       "header length \(headerLength) runs past the end of the file (\(map.count) bytes); file "
                       + "is truncated")
        }
        dataOffset = 8 + headerLength
        let dataSize = map.count - dataOffset
        let headerBytes = UnsafeRawBufferPointer(start: map.bytes + 8, count: headerLength)
        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw fail(.malformed, "header is not valid UTF-8")
        }
        let header: JSONValue
        do { header = try StrictJSON.parse(headerBytes) } catch let error as JSONDuplicateKeyError {
            if error.path.isEmpty {
                throw fail(.unexpected, "duplicate tensor name \"\(error.key)\" in the header")
            }
            throw fail(.malformed, "header has a \(error)")
        } catch {
            throw fail(.malformed, "header is not valid JSON: \(error)")
        }
        guard let entries = header.members else {
            throw fail(.malformed, "header is not a JSON object (found \(header.kindName))")
        }
        try Self.checkPadding(headerBytes, fail: fail)

        // Metadata.
        var metadata: [String: String] = [:]
        if let raw = entries["__metadata__"] {
            guard let fields = raw.members else {
                throw fail(.malformed, "__metadata__ is \(raw.kindName), expected an object of strings")
            }
            for (key, value) in fields {
                guard case .string(let text) = value else {
                    throw fail(.malformed, "__metadata__ value of \"\(key)\" is \(value.kindName), expected a string")
                }
                metadata[key] = text
            }
        }
        self.metadata = metadata

        // Entries: structure, dtype, shape, offsets, byte count.
        struct Entry { let name: String; let dtype: String; let shape: [Int]; let begin: Int; let end: Int }
        var parsed: [Entry] = []
        for name in entries.keys.sorted() where name != "__metadata__" {
            guard !name.isEmpty else { throw fail(.malformed, "empty tensor name in the header") }
            let tensor = "tensor \"\(name)\""
            guard let fields = entries[name]?.members else {
                throw fail(.malformed,
                           "\(tensor): entry is \(entries[name]?.kindName ?? "null"), expected an object with dtype, "
                           + "shape, data_offsets")
            }
            for key in ["dtype", "shape", "data_offsets"] where fields[key] == nil {
                throw fail(.malformed, "\(tensor): missing \"\(key)\"")
            }
            guard case .string(let dtype) = fields["dtype"] ?? .null else {
                throw fail(.malformed, "\(tensor): dtype is \(fields["dtype"]?.kindName ?? "null"), expected a string")
            }
            guard let bits = Self.knownDTypeBits[dtype] else {
                throw fail(.malformed, "\(tensor): unknown dtype \"\(dtype)\"")
            }
            let shape = try Self.integers(fields["shape"], what: "shape", of: tensor, fail: fail)
            guard shape.allSatisfy({ $0 >= 0 }) else {
                throw fail(.malformed, "\(tensor): negative dimension in shape \(shape)")
            }
            var count = 1
            for dimension in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
                guard !overflow else { throw fail(.malformed, "\(tensor): element count of shape \(shape) overflows") }
                count = product
            }
            let offsets = try Self.integers(fields["data_offsets"], what: "data_offsets", of: tensor, fail: fail)
            guard offsets.count == 2 else {
                throw fail(.malformed, "\(tensor): data_offsets is not two integers (\(offsets.count) given)")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= 0 else {
                throw fail(.malformed, "\(tensor): negative data_offsets [\(begin), \(end)]")
            }
            guard begin <= end else { throw fail(.malformed, "\(tensor): data_offsets begin \(begin) > end \(end)") }
            guard end <= dataSize else {
                throw fail(.truncated,
                           "\(tensor): data_offsets end \(end) is past the end of the data buffer (\(dataSize) bytes); "
                           + "file is truncated")
            }
            let (totalBits, bitsOverflow) = count.multipliedReportingOverflow(by: bits)
            guard !bitsOverflow, totalBits % 8 == 0, totalBits / 8 == end - begin else {
                let needed = bitsOverflow ? "more than Int.max"
                    : (totalBits % 8 == 0 ? "\(totalBits / 8)" : "\(totalBits) bits, not whole")
                throw fail(.inconsistent,
                           "\(tensor): shape \(shape) of \(dtype) needs \(needed) bytes but data_offsets span "
                           + "\(end - begin) bytes")
            }
            parsed.append(Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }

        // Exact coverage, as the reference implementation requires (huggingface/safetensors,
        // safetensors/src/tensor.rs: `Metadata::validate` sorts the tensors by data_offsets and refuses any whose
        // begin is not the previous end, `InvalidOffset(name)`; `SafeTensors::read_metadata` refuses a file whose
        // last end + 8 + N is not the file size, `MetadataIncompleteBuffer`). So the first tensor starts at 0,
        // each starts where the one before ends (no hole, no overlap; a zero-length tensor only at a boundary),
        // and the last ends at the end of the file. Bytes inserted between header and data, or a header length
        // cut short into its padding, shift every tensor and leave bytes past the last one: refused here.
        var covered = 0
        var previous: Entry? = nil
        for entry in parsed.sorted(by: { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }) {
            if entry.begin < covered, let previous {
                if entry.begin < entry.end {
                    throw fail(.inconsistent, "tensors \"\(previous.name)\" and \"\(entry.name)\" overlap in the data "
                               + "buffer (byte \(entry.begin) is in both)")
                }
                throw fail(.inconsistent, "zero-length tensor \"\(entry.name)\" at byte \(entry.begin) lies inside "
                           + "tensor \"\(previous.name)\" (bytes \(previous.begin)..<\(previous.end)); tensors overlap "
                           + "in the data buffer")
            }
            if entry.begin > covered {
                let after = previous.map { "after tensor \"\($0.name)\" ends" } ?? "at the start of the data buffer"
                throw fail(.inconsistent, "data buffer bytes \(covered)..<\(entry.begin) belong to no tensor "
                           + "(a hole \(after), before tensor \"\(entry.name)\"); the format requires tensors to cover "
                           + "the data buffer without gaps")
            }
            covered = entry.end
            previous = entry
        }
        if covered < dataSize {
            let last = previous.map { "the last tensor, \"\($0.name)\", ends" } ?? "the tensors end"
            throw fail(.inconsistent, "data buffer bytes \(covered)..<\(dataSize) belong to no tensor: \(last) at "
                       + "byte \(covered) of \(dataSize); bytes inserted between header and data, a wrong header "
                       + "length, or extra bytes at the end")
        }

        // Views into the map.
        var tensors: [String: StoredTensor] = [:]
        var skipped: [String] = []
        for entry in parsed {
            guard let dtype = DType(rawValue: entry.dtype) else {
                if skipUnsupported { skipped.append(entry.name); continue }
                let supported = DType.allCases.map(\.rawValue).joined(separator: ", ")
                throw fail(.unsupported,
                           "tensor \"\(entry.name)\" has dtype \(entry.dtype); Arbiter reads \(supported) (open with "
                           + "skipUnsupported to leave such tensors out)")
            }
            tensors[entry.name] = StoredTensor(name: entry.name, dtype: dtype, shape: entry.shape,
                                               bytes: map.bytes + dataOffset + entry.begin, owner: map)
        }
        self.tensors = tensors
        self.skipped = skipped
    }

    /// Throws `.malformed` naming this file, the first tensor (in name order) holding a NaN or an infinity, and
    /// the index of its first such element. Reads every byte of every tensor (`FiniteScan`).
    public func requireFinite() throws {
        for name in names {
            guard let tensor = tensors[name], let index = FiniteScan.firstNonFinite(tensor) else { continue }
            var position: [Int] = []
            var rest = index
            for dimension in tensor.shape.reversed() {
                position.insert(rest % dimension, at: 0)
                rest /= dimension
            }
            throw FormatError(.malformed, file: url,
                              "tensor \"\(name)\" holds \(FiniteScan.describe(tensor, at: index)) at element \(index) "
                              + "(index \(position) of shape \(tensor.shape)), its first non-finite value; "
                              + "the weights are corrupt (a failed conversion or a diverged training run)")
        }
    }

    /// Total bytes of the tensors read (excluding skipped ones).
    public var totalBytes: Int { tensors.values.reduce(0) { $0 + $1.count * $1.dtype.byteSize } }

    /// The header must start with the object's `{` and may continue after its closing `}` with spaces (0x20) only
    /// (the format's padding). Called once the header parsed as a JSON object, so the last byte that is not a
    /// space must be that closing brace: any other byte there (tabs, newlines, NULs, data cut in by a wrong header
    /// length) means the length does not end where the writer put it.
    private static func checkPadding(_ header: UnsafeRawBufferPointer,
                                     fail: (FormatError.Kind, String) -> FormatError) throws {
        let space = UInt8(ascii: " ")
        guard header.first == UInt8(ascii: "{") else {
            throw fail(.malformed, "header does not begin with '{' (found byte 0x\(hex(header.first ?? 0)))")
        }
        guard let last = header.lastIndex(where: { $0 != space }), header[last] == UInt8(ascii: "}") else {
            let last = header.lastIndex { $0 != space } ?? 0
            throw fail(.malformed, "header length \(header.count) does not end on the JSON object's closing brace "
                       + "followed by spaces: byte \(last) of the header is 0x\(hex(header[last])); only spaces "
                       + "(0x20) may pad the header")
        }
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16, uppercase: true)
        return digits.count == 1 ? "0" + digits : digits
    }

    /// An array of integers from a header field, or a `.malformed` error naming the field.
    private static func integers(_ value: JSONValue?, what: String, of tensor: String,
                                 fail: (FormatError.Kind, String) -> FormatError) throws -> [Int] {
        guard case .array(let items) = value ?? .null else {
            throw fail(.malformed, "\(tensor): \(what) is \(value?.kindName ?? "null"), expected an array of integers")
        }
        return try items.map { item in
            guard case .integer(let number) = item else {
                throw fail(.malformed,
                           "\(tensor): \(what) holds \(item.kindName) that is not an integer; expected an "
                           + "array of integers")
            }
            return number
        }
    }
}
