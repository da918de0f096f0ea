// HDF5Preflight: every structure it checks, corrupted by hand in a valid file, gives the expected FormatError
// before libhdf5 sees the file; every committed golden file passes it.
import Foundation
import Testing
@testable import ArbiterFormats

/// One hand-made corruption: which base file, which bytes, and what the reader must say.
struct HDF5PreflightCase: CustomTestStringConvertible, Sendable {
    enum Base: Sendable { case writer, h5py }

    let name: String
    let base: Base
    let kind: FormatError.Kind
    let problem: String
    /// Edits the file's bytes; the dictionary gives structure offsets (`HDF5Preflight.structures(of:)`).
    let edit: @Sendable (inout [UInt8], [String: Int]) throws -> Void

    init(_ name: String, _ base: Base = .writer, kind: FormatError.Kind = .malformed, problem: String,
         edit: @escaping @Sendable (inout [UInt8], [String: Int]) throws -> Void) {
        self.name = name
        self.base = base
        self.kind = kind
        self.problem = problem
        self.edit = edit
    }

    var testDescription: String { name }

    // MARK: Helpers for the edits

    struct MissingStructure: Error, CustomStringConvertible {
        let name: String
        var description: String { "no structure '\(name)' in the base file" }
    }

    static func at(_ map: [String: Int], _ name: String) throws -> Int {
        guard let offset = map[name] else { throw MissingStructure(name: name) }
        return offset
    }

    /// Writes `value` little-endian over `size` bytes at `offset`.
    static func put(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt64, size: Int) {
        for index in 0..<size { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
    }

    static func get(_ bytes: [UInt8], _ offset: Int, size: Int) -> Int {
        (0..<size).reduce(0) { $0 | Int(bytes[offset + $1]) << (8 * $1) }
    }

    /// Body of the first message `kind` of object `path` (message headers are 8 bytes).
    static func message(_ map: [String: Int], _ path: String, _ kind: String) throws -> Int {
        try at(map, "message:\(path):\(kind)") + 8
    }

    /// Offsets of a version-1 attribute message's parts: datatype, dataspace and data.
    static func attributeParts(_ bytes: [UInt8], _ map: [String: Int], _ path: String, _ name: String) throws
        -> (datatype: Int, dataspace: Int, data: Int) {
        let body = try at(map, "attribute:\(path):\(name)") + 8
        let pad = { (size: Int) in (size + 7) / 8 * 8 }
        let datatype = body + 8 + pad(get(bytes, body + 2, size: 2))
        let dataspace = datatype + pad(get(bytes, body + 4, size: 2))
        return (datatype, dataspace, dataspace + pad(get(bytes, body + 6, size: 2)))
    }

    static let far: UInt64 = 1 << 40

    // MARK: The cases

    static let all: [HDF5PreflightCase] = [
        // Superblock (version 0): byte 8 version, 13 size of offsets, 40 end-of-file address, 64 root header.
        .init("superblock version 2", kind: .unsupported, problem: "superblock version 2") { bytes, _ in bytes[8] = 2 },
        .init("4-byte offsets", kind: .unsupported, problem: "sizes of offsets and lengths are 4 and 8") { bytes, _ in bytes[13] = 4 },
        .init("end-of-file address past the file", kind: .truncated, problem: "superblock declares") { bytes, _ in
            put(&bytes, 40, UInt64(bytes.count + 4096), size: 8)
        },
        .init("root object header outside the file", problem: "root object header address is undefined or outside the file") { bytes, _ in
            put(&bytes, 64, far, size: 8)
        },
        .init("root entry caches another symbol table", problem: "root symbol table entry caches B-tree") { bytes, _ in
            put(&bytes, 56 + 24, 8, size: 8)
        },
        // Object headers (version 1): version, message count, message sizes, flags and types.
        .init("object header version 2", problem: "object header version 2, expected 1") { bytes, map in
            bytes[try at(map, "header:/")] = 2
        },
        .init("one message more declared than stored", problem: "declares 6 messages, holds 5") { bytes, map in
            let header = try at(map, "header:/input_ids")
            #expect(get(bytes, header + 2, size: 2) == 5)
            put(&bytes, header + 2, 6, size: 2)
        },
        .init("message size past the header chunk", problem: "has size 65528: not a multiple of 8 or past the chunk's end") { bytes, map in
            put(&bytes, try at(map, "message:/input_ids:dataspace") + 2, 0xFFF8, size: 2)
        },
        .init("shared message flag", kind: .unsupported, problem: "shared messages are not supported") { bytes, map in
            bytes[try at(map, "message:/logits:datatype") + 4] = 0x02
        },
        .init("unknown message type", problem: "message type 153 (unknown) is not supported") { bytes, map in
            put(&bytes, try at(map, "message:/logits:NIL"), 0x99, size: 2)
        },
        .init("attribute info message (dense attributes)", kind: .unsupported, problem: "message type 21 (attribute info) is not supported") { bytes, map in
            put(&bytes, try at(map, "message:/logits:NIL"), 0x15, size: 2)
        },
        .init("continuation block outside the file", problem: "continuation block") { bytes, map in
            put(&bytes, try message(map, "/", "continuation"), far, size: 8)
        },
        // Dataspace: version, rank(1), flags, reserved(5), dimensions.
        .init("dataspace rank 40", problem: "rank 40 (limit 32)") { bytes, map in
            bytes[try message(map, "/logits", "dataspace") + 1] = 40
        },
        .init("dataspace larger than the stored data", problem: "contiguous data of 60 bytes for 20000 bytes of elements") { bytes, map in
            let dataspace = try message(map, "/logits", "dataspace")  // rank 2: dimensions, then maxima
            put(&bytes, dataspace + 8, 1000, size: 8)
            put(&bytes, dataspace + 8 + 16, 1000, size: 8)
        },
        // Datatype: class and version, bit field(3), size(4), properties.
        .init("compound datatype", kind: .unsupported, problem: "compound datatype is not supported") { bytes, map in
            bytes[try message(map, "/logits", "datatype")] = 0x16
        },
        .init("float with a non-IEEE exponent bias", kind: .unsupported, problem: "is not IEEE 754 half, single or double") { bytes, map in
            put(&bytes, try message(map, "/logits", "datatype") + 8 + 8, 100, size: 4)
        },
        .init("datatype class 12", problem: "datatype class 12") { bytes, map in
            bytes[try message(map, "/logits", "datatype")] = 0x1C
        },
        // Fill value and layout.
        .init("fill value version 9", problem: "fill value version 9, expected 1 to 3") { bytes, map in
            bytes[try message(map, "/logits", "fill value")] = 9
        },
        .init("layout class 7", problem: "layout class 7") { bytes, map in
            bytes[try message(map, "/logits", "data layout") + 1] = 7
        },
        .init("contiguous data outside the file", problem: "lies outside the file") { bytes, map in
            put(&bytes, try message(map, "/logits", "data layout") + 2, far, size: 8)
        },
        .init("contiguous size differs from the dataspace", problem: "contiguous data of 64 bytes for 60 bytes of elements") { bytes, map in
            put(&bytes, try message(map, "/logits", "data layout") + 10, 64, size: 8)
        },
        // Attributes: name, datatype, dataspace and the data they imply, inside the message.
        .init("attribute name not NUL-terminated", problem: "attribute name of 9 bytes is empty or not NUL-terminated") { bytes, map in
            bytes[try at(map, "attribute:/:model_id") + 8 + 8 + 8] = 0x58
        },
        .init("attribute data larger than its message", problem: "does not fit in the message") { bytes, map in
            // format_version (int64) becomes a fixed-length string of 1000 bytes: data past the message.
            let datatype = try attributeParts(bytes, map, "/", "format_version").datatype
            bytes[datatype] = 0x13
            put(&bytes, datatype + 1, 0, size: 3)
            put(&bytes, datatype + 4, 1000, size: 4)
        },
        .init("variable-length string refers to a missing heap object", problem: "which has no such object") { bytes, map in
            let data = try attributeParts(bytes, map, "/", "model_id").data
            put(&bytes, data + 12, 999, size: 4)
        },
        .init("variable-length string longer than its heap object", problem: "refers to a global heap object of") { bytes, map in
            let data = try attributeParts(bytes, map, "/", "model_id").data
            put(&bytes, data, 5000, size: 4)
        },
        // Global heap collection: "GCOL", version, collection size, objects (index, references, size, data).
        .init("global heap signature", problem: "bad signature 'XCOL'") { bytes, map in bytes[try at(map, "gcol")] = 0x58 },
        .init("global heap object past the collection", problem: "past the collection's end") { bytes, map in
            put(&bytes, try at(map, "gcol") + 16 + 8, 1 << 50, size: 8)
        },
        // Symbol table message, local heap, group B-tree and symbol table node of the root group.
        .init("symbol table points at a non-heap", problem: "local heap of group '/' at byte 96: bad signature") { bytes, map in
            let header = UInt64(try at(map, "header:/"))
            put(&bytes, try message(map, "/", "symbol table") + 8, header, size: 8)
            put(&bytes, 56 + 32, header, size: 8)  // the root entry's cached heap address agrees
        },
        .init("local heap data segment outside the file", problem: "data segment: bytes") { bytes, map in
            put(&bytes, try at(map, "heap:/") + 24, UInt64(bytes.count - 8), size: 8)
        },
        .init("local heap free list outside the segment", problem: "free list block at offset") { bytes, map in
            put(&bytes, try at(map, "heap:/") + 16, 1 << 30, size: 8)
        },
        .init("B-tree node of the wrong type", problem: "node type 1, expected 0") { bytes, map in
            bytes[try at(map, "btree:/") + 4] = 1
        },
        .init("B-tree node with too many entries", problem: "200 entries used, capacity 32") { bytes, map in
            put(&bytes, try at(map, "btree:/") + 6, 200, size: 2)
        },
        .init("B-tree key outside the heap", problem: "key 0 at heap offset 1048576 is not a NUL-terminated name") { bytes, map in
            put(&bytes, try at(map, "btree:/") + 24, 1 << 20, size: 8)
        },
        .init("B-tree child pointing at itself", problem: "is reached twice") { bytes, map in
            let node = try at(map, "btree:/")
            put(&bytes, node + 32, UInt64(node), size: 8)
        },
        .init("symbol table node signature", problem: "bad signature 'SNOX'") { bytes, map in
            bytes[try at(map, "snod:/") + 3] = 0x58
        },
        .init("symbol table node with too many symbols", problem: "100 symbols, capacity 8") { bytes, map in
            put(&bytes, try at(map, "snod:/") + 6, 100, size: 2)
        },
        .init("member name outside the heap", problem: "entry 0 name at heap offset 1048576 is not a NUL-terminated name") { bytes, map in
            put(&bytes, try at(map, "snod:/") + 8, 1 << 20, size: 8)
        },
        .init("member object header outside the file", problem: "object header address is undefined or outside the file") { bytes, map in
            put(&bytes, try at(map, "snod:/") + 8 + 8, far, size: 8)
        },
        .init("member with cache type 7", problem: "cache type 7, expected 0 or 1") { bytes, map in
            put(&bytes, try at(map, "snod:/") + 8 + 16, 7, size: 4)
        },
        // h5py fixture: chunked and gzip-compressed dataset, nested group.
        .init("filter other than deflate and shuffle", .h5py, kind: .unsupported, problem: "filter 32000 is not supported") { bytes, map in
            put(&bytes, try message(map, "/blocks.0.hook_resid_post", "filter pipeline") + 8, 32000, size: 2)
        },
        .init("deflate level 12", .h5py, problem: "deflate filter with client data [12]") { bytes, map in
            let body = try message(map, "/blocks.0.hook_resid_post", "filter pipeline")
            let nameLength = get(bytes, body + 8 + 2, size: 2)
            put(&bytes, body + 8 + 8 + (nameLength + 7) / 8 * 8, 12, size: 4)
        },
        .init("chunk B-tree level 40", .h5py, problem: "node level 40") { bytes, map in
            bytes[try at(map, "chunkbtree:/blocks.0.hook_resid_post") + 5] = 40
        },
        .init("chunk past the end of the file", .h5py, problem: "lies outside the file") { bytes, map in
            put(&bytes, try at(map, "chunkbtree:/blocks.0.hook_resid_post") + 24, 0x7FFF_FFFF, size: 4)
        },
        .init("chunk offset off a chunk boundary", .h5py, problem: "is not a chunk boundary") { bytes, map in
            put(&bytes, try at(map, "chunkbtree:/blocks.0.hook_resid_post") + 24 + 8, 1, size: 8)
        },
        .init("chunk layout rank differs from the dataspace", .h5py, problem: "chunk dimensions") { bytes, map in
            bytes[try message(map, "/blocks.0.hook_resid_post", "data layout") + 2] = 2
        },
        .init("nested group's local heap", .h5py, problem: "local heap of group '/extras'") { bytes, map in
            bytes[try at(map, "heap:/extras")] = 0x58
        },
    ]
}

@Suite("HDF5 preflight")
struct HDF5PreflightTests {
    @Test("each corrupted structure is refused with its own message", arguments: HDF5PreflightCase.all)
    func corruption(_ testCase: HDF5PreflightCase) throws {
        let folder = try HDF5ScratchFolder("preflight")
        defer { folder.remove() }
        let url = folder.file("case.h5")
        switch testCase.base {
        case .writer: try HDF5Fixtures.writeGolden(to: url)
        case .h5py: try FileManager.default.copyItem(at: HDF5Fixtures.h5py, to: url)
        }
        let map = try HDF5Preflight.structures(of: url)
        var bytes = [UInt8](try Data(contentsOf: url))
        try testCase.edit(&bytes, map)
        try Data(bytes).write(to: url)
        let error = expectHDF5Error(naming: url, "\(testCase.name)") { try HDF5Reader(url: url) }
        #expect(error?.kind == testCase.kind, "\(testCase.name): \(error?.description ?? "no error")")
        #expect(error?.problem.contains(testCase.problem) == true, "\(testCase.name): \(error?.description ?? "no error")")
    }

    @Test("every committed golden file and fixture passes the preflight")
    func validFiles() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../GoldenData")
            .standardizedFileURL
        let files = (FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)?.allObjects as? [URL] ?? [])
            .filter { $0.pathExtension == "h5" }
        #expect(files.count >= 9)
        for url in files + [HDF5Fixtures.h5py] {
            #expect(throws: Never.self, "\(url.path)") { try HDF5Preflight.check(url) }
        }
        let folder = try HDF5ScratchFolder("preflight")
        defer { folder.remove() }
        let written = folder.file("written.h5")
        try HDF5Fixtures.writeGolden(to: written)
        #expect(throws: Never.self) { try HDF5Preflight.check(written) }
    }

    @Test("the walk reaches every structure of the h5py fixture")
    func coverage() throws {
        let map = try HDF5Preflight.structures(of: HDF5Fixtures.h5py)
        for name in ["header:/", "btree:/", "heap:/", "snod:/", "gcol", "header:/extras", "btree:/extras",
                     "header:/extras/nested", "chunkbtree:/blocks.0.hook_resid_post",
                     "message:/blocks.0.hook_resid_post:filter pipeline", "attribute:/hook_embed:units",
                     "attribute:/:prompt", "message:/:continuation"] {
            #expect(map[name] != nil, "\(name)")
        }
    }

    @Test("the corpus covers every structure")
    func corpusSize() {
        #expect(HDF5PreflightCase.all.count >= 40)
        #expect(Set(HDF5PreflightCase.all.map(\.name)).count == HDF5PreflightCase.all.count)
    }
}
