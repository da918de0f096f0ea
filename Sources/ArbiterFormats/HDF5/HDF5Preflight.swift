// Structural pre-validation of an HDF5 file, in pure Swift, before libhdf5 parses any of its metadata.
//
// Why. Debian's libhdf5 1.10.8 trusts parts of its on-disk metadata: many bounds are checked only by
// assertions, compiled out of release builds (heap offsets of link names, the data size of attribute
// messages, global heap object sizes, B-tree entry counts, …). A corrupt object header, B-tree or heap can
// make it read or copy out of bounds and crash the process, which no wrapper around the C API can catch.
// Arbiter's rule is that bad input gives a thrown FormatError naming the file, so every structure libhdf5
// would parse is walked here first, with bounds-checked reads, and anything off is refused.
//
// Scope: the files Arbiter reads, written by HDF5Writer (libhdf5 defaults) and by h5py (Tools/golden*.py,
// libver "earliest"): superblock version 0 or 1, 8-byte offsets and lengths, version-1 object headers,
// old-style groups (symbol table message, v1 B-tree, symbol table nodes, local heap), contiguous, compact
// or chunked (v1 B-tree, deflate/shuffle) dataset layouts, integer, IEEE float and string datatypes,
// compact attributes and variable-length strings in global heap collections. Valid files using anything
// else (superblock 2/3, version-2 object headers, new-style groups, dense attributes, compound types, …) are
// refused as unsupported rather than handed to libhdf5 unchecked. Everything is checked at least as strictly
// as libhdf5 checks it, and where a field has only one value in the files above, that value is required.
//
// Field layouts follow the HDF5 File Format Specification version 2.0 (sections II–IV); section numbers are
// given at each structure. The walk is bounded: every structure is visited once (visited sets stop cycles)
// and the total number of structures is capped.
import Foundation

/// Why a file failed the preflight; `HDF5Preflight.check` turns it into a FormatError naming the file.
struct HDF5PreflightFailure: Error {
    let kind: FormatError.Kind
    let problem: String
}

enum HDF5Preflight {
    /// Checks the metadata of the HDF5 file at `url`; throws a FormatError naming the file and the first
    /// structure found wrong (with its byte offset).
    static func check(_ url: URL) throws {
        do {
            let file = try HDF5FileBytes(path: url.path)
            try HDF5StructureWalk(file).run()
        } catch let failure as HDF5PreflightFailure {
            let prefix = failure.kind == .unsupported ? "HDF5 feature not supported" : "corrupt HDF5 metadata"
            throw FormatError(failure.kind, file: url, "\(prefix): \(failure.problem)")
        }
    }

    /// Offsets of the structures of a valid file by name (see `HDF5StructureWalk.structures`), for tests.
    static func structures(of url: URL) throws -> [String: Int] {
        let walk = HDF5StructureWalk(try HDF5FileBytes(path: url.path))
        try walk.run()
        return walk.structures
    }
}

// MARK: - Reading bytes

/// Positional reads of an open file (only metadata is read; raw data is never loaded).
final class HDF5FileBytes {
    let size: Int
    private let descriptor: Int32

    init(path: String) throws {
        // The reader checked that this is a regular file; O_NONBLOCK: a FIFO swapped in since cannot block open().
        descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw HDF5PreflightFailure(kind: .unreadable, problem: "cannot open: \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            close(descriptor)
            throw HDF5PreflightFailure(kind: .unreadable, problem: "cannot stat: \(String(cString: strerror(errno)))")
        }
        size = Int(info.st_size)
    }

    deinit { close(descriptor) }

    /// `count` bytes at absolute offset `offset`; the caller has checked that they lie inside the file.
    func read(_ offset: Int, _ count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let start = buffer.baseAddress else { return -1 }
                return pread(descriptor, start + done, count - done, off_t(offset + done))
            }
            guard got > 0 else {
                throw HDF5PreflightFailure(kind: .unreadable,
                                           problem: "cannot read bytes \(offset)..<\(offset + count)")
            }
            done += got
        }
        return bytes
    }
}

/// Bounds-checked little-endian decoding of one structure's bytes. `label` names the structure in failures.
struct HDF5Cursor {
    let bytes: [UInt8]
    /// File offset of `bytes[0]`, for messages.
    let origin: Int
    let label: String
    private(set) var position = 0

    init(_ bytes: [UInt8], origin: Int, label: String) {
        self.bytes = bytes
        self.origin = origin
        self.label = label
    }

    var remaining: Int { bytes.count - position }
    /// File offset of the next byte.
    var offset: Int { origin + position }

    func failure(_ problem: String, kind: FormatError.Kind = .malformed) -> HDF5PreflightFailure {
        HDF5PreflightFailure(kind: kind, problem: "\(label): \(problem)")
    }

    private mutating func need(_ count: Int, _ field: String) throws {
        guard count >= 0, count <= remaining else {
            throw failure("\(field) at byte \(offset) needs \(count) bytes, only \(remaining) left of \(bytes.count)")
        }
    }

    mutating func unsigned(_ count: Int, _ field: String) throws -> UInt64 {
        try need(count, field)
        var value: UInt64 = 0
        for index in 0..<count { value |= UInt64(bytes[position + index]) << (8 * UInt64(index)) }
        position += count
        return value
    }

    mutating func u8(_ field: String) throws -> Int { Int(try unsigned(1, field)) }
    mutating func u16(_ field: String) throws -> Int { Int(try unsigned(2, field)) }
    mutating func u32(_ field: String) throws -> Int { Int(try unsigned(4, field)) }
    /// A size-of-lengths (8-byte) value.
    mutating func length(_ field: String) throws -> UInt64 { try unsigned(8, field) }
    /// A size-of-offsets (8-byte) address; nil for the undefined address (all bits set).
    mutating func address(_ field: String) throws -> UInt64? {
        let value = try unsigned(8, field)
        return value == UInt64.max ? nil : value
    }

    mutating func skip(_ count: Int, _ field: String) throws {
        try need(count, field)
        position += count
    }

    mutating func take(_ count: Int, _ field: String) throws -> [UInt8] {
        try need(count, field)
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }

    /// The next `count` bytes as a cursor of their own.
    mutating func sub(_ count: Int, _ field: String, label: String? = nil) throws -> HDF5Cursor {
        let start = offset
        return HDF5Cursor(try take(count, field), origin: start, label: label ?? self.label)
    }

    /// A version byte that must equal `expected` (`what`: the structure, for the message).
    mutating func version(_ expected: Int, of what: String) throws {
        let version = try u8("version")
        guard version == expected else { throw failure("\(what) version \(version), expected \(expected)") }
    }

    mutating func expect(_ bytes: [UInt8], _ field: String) throws {
        let found = try take(bytes.count, field)
        guard found == bytes else {
            throw failure("bad \(field) \(Self.printable(found)) at byte \(offset - bytes.count), expected "
                          + "\(Self.printable(bytes))")
        }
    }

    static func printable(_ bytes: [UInt8]) -> String {
        "'" + bytes.map { (0x20..<0x7F).contains($0) ? String(UnicodeScalar($0)) : String(format: "\\x%02X", $0) }
            .joined() + "'"
    }
}

// MARK: - Decoded structures

/// A dataspace message (IV.A.2.b): scalar, simple with dimensions, or null.
struct HDF5Dataspace {
    enum Kind { case scalar, simple, null }
    let kind: Kind
    let dimensions: [UInt64]
    /// Number of elements (0 for null), nil when the product overflows.
    var elementCount: Int? {
        switch kind {
        case .null: return 0
        case .scalar: return 1
        case .simple:
            var count = 1
            for dimension in dimensions {
                guard dimension <= UInt64(Int.max) else { return nil }
                let (product, overflow) = count.multipliedReportingOverflow(by: Int(dimension))
                if overflow { return nil }
                count = product
            }
            return count
        }
    }
}

/// A datatype message (IV.A.2.d), restricted to the classes Arbiter reads.
struct HDF5Datatype {
    enum Kind: Equatable { case integer, float, fixedString, variableString }
    let kind: Kind
    /// Element size in bytes as stored (16 for a variable-length string's heap reference).
    let size: Int
}

/// A data layout message (IV.A.2.i), version 3.
enum HDF5DataLayout {
    case compact(size: Int)
    case contiguous(address: UInt64?, size: UInt64)
    /// `dimensions` include the trailing element-size dimension, as stored.
    case chunked(btree: UInt64?, dimensions: [Int])
}

/// One filter of a filter pipeline message (IV.A.2.l).
struct HDF5Filter {
    let id: Int
    let values: [Int]
}

/// What the messages of one object header say about the object.
struct HDF5ObjectMessages {
    var dataspace: HDF5Dataspace?
    var datatype: HDF5Datatype?
    var layout: HDF5DataLayout?
    var fillValueSize: Int?
    var filters: [HDF5Filter]?
    var symbolTable: (btree: UInt64, heap: UInt64)?
}

/// A local heap (III.D): the data segment holding link names of one group.
struct HDF5LocalHeap {
    let address: UInt64
    let data: [UInt8]
    let dataOrigin: Int
}

// MARK: - The walk

/// Walks every structure reachable from the superblock. Not reusable: one walk per file.
final class HDF5StructureWalk {
    private let file: HDF5FileBytes
    /// File offset of the superblock: addresses in the file are relative to it.
    private var base = 0
    /// First byte past the metadata and data libhdf5 may touch: min(file size, base + end-of-file address).
    private var end = 0
    private var groupLeafK = 4        // symbol table node capacity is 2K entries
    private var groupInternalK = 16   // group B-tree node capacity is 2K children
    private var chunkInternalK = 32   // chunk B-tree node capacity is 2K children
    private var rootCache: (btree: UInt64, heap: UInt64)?

    private var visitedHeaders: Set<UInt64> = []
    private var visitedNodes: Set<UInt64> = []
    private var localHeaps: [UInt64: HDF5LocalHeap] = [:]
    /// Global heap collections checked so far: object index → object size.
    private var globalHeaps: [UInt64: [Int: UInt64]] = [:]
    /// Structures still allowed to be visited (a file with more is refused as too large).
    private var budget = 100_000
    /// Absolute file offsets of the structures checked, by name ("header:/logits", "message:/logits:datatype",
    /// "attribute:/:model_id", "heap:/", "btree:/", "snod:/", "gcol", "chunkbtree:/x"); first one of each
    /// name only. For tests that corrupt a given structure.
    private(set) var structures: [String: Int] = [:]

    private func note(_ name: String, _ offset: Int) {
        if structures[name] == nil { structures[name] = offset }
    }

    static let maximumGroupDepth = 64
    static let maximumBTreeLevel = 32
    /// Largest single metadata structure read (a local heap's data segment, a B-tree node, a header chunk).
    static let maximumStructureBytes = 64 << 20

    /// HDF5's format signature (II.A).
    static let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]
    /// Size of a symbol table entry with 8-byte offsets (III.C): name offset, header address, cache type,
    /// reserved, 16-byte scratch pad.
    static let symbolEntryBytes = 40

    init(_ file: HDF5FileBytes) {
        self.file = file
    }

    func run() throws {
        let root = try superblock()
        try objectHeader(root, path: "/", depth: 0, rootCache: rootCache)
    }

    // MARK: Reads

    private func spend(_ what: String) throws {
        budget -= 1
        guard budget >= 0 else {
            throw HDF5PreflightFailure(kind: .tooLarge, problem: "more than 100000 metadata structures (at \(what))")
        }
    }

    /// The first `count` bytes of a structure that starts with a 4-byte signature ("GCOL", "TREE", "HEAP",
    /// "SNOD"), recorded under `name` for the tests and checked for its signature.
    private func signed(_ signature: String, at address: UInt64, _ count: Int, _ label: String,
                        name: String) throws -> HDF5Cursor {
        var cursor = try read(address, count, label)
        note(name, cursor.origin)
        try cursor.expect(Array(signature.utf8), "signature")
        return cursor
    }

    /// `count` bytes at relative `address`, refused unless they lie inside the file.
    private func read(_ address: UInt64, _ count: Int, _ label: String) throws -> HDF5Cursor {
        guard count >= 0, count <= Self.maximumStructureBytes else {
            throw HDF5PreflightFailure(kind: .tooLarge,
                                       problem: "\(label): \(count) bytes of metadata (limit "
                                                + "\(Self.maximumStructureBytes))")
        }
        guard let start = absolute(address), count <= end - start else {
            throw HDF5PreflightFailure(kind: .malformed,
                                       problem: "\(label): bytes \(address)..<\(address &+ UInt64(count)) lie outside "
                                                + "the file (\(end - base) bytes from the superblock)")
        }
        return HDF5Cursor(try file.read(start, count), origin: start, label: label)
    }

    /// Absolute file offset of relative `address`, nil when past the end.
    private func absolute(_ address: UInt64) -> Int? {
        guard address <= UInt64(end - base) else { return nil }
        return base + Int(address)
    }

    /// Whether `count` bytes at `address` lie inside the file.
    private func inside(_ address: UInt64, _ count: UInt64) -> Bool {
        guard let start = absolute(address) else { return false }
        return count <= UInt64(end - start)
    }

    // MARK: Superblock (II.A, versions 0 and 1)

    /// Checks the superblock and returns the root object header's address.
    private func superblock() throws -> UInt64 {
        // libhdf5 looks for the signature at 0, 512, 1024, 2048, … (a user block may precede it).
        var location: Int?
        var candidate = 0
        while candidate + 8 <= file.size {
            if try file.read(candidate, 8) == Self.signature { location = candidate; break }
            candidate = candidate == 0 ? 512 : candidate * 2
        }
        guard let location else {
            throw HDF5PreflightFailure(kind: .malformed, problem: "no HDF5 signature found")
        }
        base = location
        end = file.size
        var cursor = try read(0, min(file.size - location, 120), "superblock at byte \(location)")
        try cursor.skip(8, "signature")
        let version = try cursor.u8("superblock version")
        guard version <= 1 else {
            throw cursor.failure("superblock version \(version); Arbiter reads versions 0 and 1 (what HDF5Writer and "
                                 + "h5py with libver 'earliest' write)", kind: .unsupported)
        }
        let freeSpaceVersion = try cursor.u8("free-space version")
        let rootEntryVersion = try cursor.u8("root group symbol table entry version")
        try cursor.skip(1, "reserved")
        let sharedHeaderVersion = try cursor.u8("shared header message format version")
        guard freeSpaceVersion == 0, rootEntryVersion == 0, sharedHeaderVersion == 0 else {
            throw cursor.failure("unknown free-space/symbol-table/shared-header versions "
                                 + "\(freeSpaceVersion)/\(rootEntryVersion)/\(sharedHeaderVersion), expected 0/0/0")
        }
        let offsetSize = try cursor.u8("size of offsets")
        let lengthSize = try cursor.u8("size of lengths")
        guard offsetSize == 8, lengthSize == 8 else {
            throw cursor.failure("sizes of offsets and lengths are \(offsetSize) and \(lengthSize); Arbiter "
                                 + "reads 8 and 8",
                                 kind: [2, 4, 8, 16, 32].contains(offsetSize) && [2, 4, 8, 16, 32].contains(lengthSize)
                                     ? .unsupported : .malformed)
        }
        try cursor.skip(1, "reserved")
        groupLeafK = try cursor.u16("group leaf node K")
        groupInternalK = try cursor.u16("group internal node K")
        guard groupLeafK > 0, groupInternalK > 0 else {
            throw cursor.failure("group B-tree K values must be positive, found leaf \(groupLeafK), internal "
                                 + "\(groupInternalK)")
        }
        try cursor.skip(4, "file consistency flags")
        if version == 1 {
            chunkInternalK = try cursor.u16("indexed storage internal node K")
            guard chunkInternalK > 0 else { throw cursor.failure("indexed storage internal node K is 0") }
            try cursor.skip(2, "reserved")
        }
        let baseAddress = try cursor.unsigned(8, "base address")
        guard baseAddress == UInt64(location) else {
            throw cursor.failure("base address \(baseAddress) differs from the superblock's location \(location)")
        }
        _ = try cursor.unsigned(8, "free-space info address")
        let endAddress = try cursor.unsigned(8, "end of file address")
        let driverAddress = try cursor.address("driver information block address")
        guard driverAddress == nil else {
            throw cursor.failure("a driver information block (multi/family file) is not supported", kind: .unsupported)
        }
        let available = UInt64(file.size - location)
        guard endAddress <= available else {
            throw HDF5PreflightFailure(kind: .truncated,
                                       problem: "superblock declares \(endAddress) bytes but the file has \(available) "
                                                + "after it (truncated?)")
        }
        end = location + Int(endAddress)
        let entryStart = cursor.offset
        var entry = try cursor.sub(Self.symbolEntryBytes, "root group symbol table entry",
                                   label: "root group symbol table entry at byte \(entryStart)")
        _ = try entry.length("link name offset")
        guard let header = try entry.address("object header address"), inside(header, 16) else {
            throw entry.failure("root object header address is undefined or outside the file")
        }
        let cacheType = try entry.u32("cache type")
        try entry.skip(4, "reserved")
        switch cacheType {
        case 0: break
        case 1:
            guard let btree = try entry.address("cached B-tree address"),
                  let heap = try entry.address("cached heap address") else {
                throw entry.failure("cached symbol table addresses are undefined")
            }
            rootCache = (btree, heap)
        default:
            throw entry.failure("cache type \(cacheType), expected 0 or 1 for the root group")
        }
        return header
    }

    // MARK: Object headers (IV.A.1.a, version 1)

    /// Checks the object header at `address` (reached as `path`) and, for a group, everything below it.
    private func objectHeader(_ address: UInt64, path: String, depth: Int,
                              rootCache: (btree: UInt64, heap: UInt64)? = nil) throws {
        guard visitedHeaders.insert(address).inserted else { return }  // hard link to an object already checked
        try spend("object header of '\(path)'")
        guard depth <= Self.maximumGroupDepth else {
            throw HDF5PreflightFailure(kind: .malformed,
                                       problem: "'\(path)': groups nested more than \(Self.maximumGroupDepth) deep")
        }
        let label = "object header of '\(path)' at byte \(base + Int(min(address, UInt64(Int.max / 2))))"
        var prefix = try read(address, 16, label)
        note("header:\(path)", prefix.origin)
        let version = try prefix.u8("version")
        if version == 0x4F {  // "OHDR": a version-2 object header
            throw prefix.failure("version-2 object headers (libver 'latest') are not supported", kind: .unsupported)
        }
        guard version == 1 else { throw prefix.failure("object header version \(version), expected 1") }
        try prefix.skip(1, "reserved")
        let declaredMessages = try prefix.u16("number of header messages")
        _ = try prefix.u32("object reference count")
        let chunkSize = try prefix.u32("object header size")
        guard chunkSize % 8 == 0, (declaredMessages == 0) == (chunkSize == 0) else {
            throw prefix.failure("header size \(chunkSize) for \(declaredMessages) messages (must be a multiple of 8, "
                                 + "zero only without messages)")
        }
        var messages = HDF5ObjectMessages()
        var hasAttributes = false
        // Chunks to parse: the first follows the 16-byte prefix, continuation messages add more.
        var chunks: [(address: UInt64, size: Int)] = [(address + 16, chunkSize)]
        var claimed: [Range<UInt64>] = [address..<(address + 16 + UInt64(chunkSize))]
        var parsed = 0
        var chunkIndex = 0
        while chunkIndex < chunks.count {
            let (chunkAddress, size) = chunks[chunkIndex]
            chunkIndex += 1
            try spend(label)
            var chunk = try read(chunkAddress, size, "\(label), chunk \(chunkIndex - 1)")
            while chunk.remaining > 0 {
                let messageStart = chunk.offset
                let type = try chunk.u16("message type")
                let messageSize = try chunk.u16("message size")
                let flags = try chunk.u8("message flags")
                try chunk.skip(3, "reserved")
                parsed += 1
                guard parsed <= declaredMessages else {
                    throw chunk.failure("more messages than the \(declaredMessages) declared (message at byte "
                                        + "\(messageStart))")
                }
                let name = Self.messageName(type)
                let messageLabel = "\(label), message \(parsed - 1) (\(name), \(messageSize) bytes at byte "
                                   + "\(messageStart))"
                guard messageSize % 8 == 0, messageSize <= chunk.remaining else {
                    throw chunk.failure("message \(parsed - 1) (\(name)) at byte \(messageStart) has size "
                                        + "\(messageSize): not a multiple of 8 or past the chunk's end "
                                        + "(\(chunk.remaining) bytes left)")
                }
                var body = try chunk.sub(messageSize, "message data", label: messageLabel)
                note("message:\(path):\(name)", messageStart)
                if flags & 0x02 != 0 {
                    throw body.failure("shared messages are not supported", kind: .unsupported)
                }
                guard flags & ~0x05 == 0 else {
                    throw body.failure(String(format: "unexpected message flags 0x%02X", flags))
                }
                switch type {
                case 0x00: break  // NIL: free space inside the header
                case 0x01:
                    guard messages.dataspace == nil else { throw body.failure("second dataspace message") }
                    messages.dataspace = try dataspace(&body)
                case 0x03:
                    guard messages.datatype == nil else { throw body.failure("second datatype message") }
                    messages.datatype = try datatype(&body)
                case 0x04:
                    guard messages.fillValueSize == nil else { throw body.failure("second fill value message") }
                    let size = try body.u32("fill value size")
                    try body.skip(size, "fill value")
                    messages.fillValueSize = size
                case 0x05:
                    guard messages.fillValueSize == nil else { throw body.failure("second fill value message") }
                    messages.fillValueSize = try fillValue(&body)
                case 0x08:
                    guard messages.layout == nil else { throw body.failure("second data layout message") }
                    messages.layout = try dataLayout(&body)
                case 0x0B:
                    guard messages.filters == nil else { throw body.failure("second filter pipeline message") }
                    messages.filters = try filterPipeline(&body)
                case 0x0C:
                    try attribute(&body, path: path)
                    hasAttributes = true
                case 0x0D:
                    guard body.bytes.contains(0) else { throw body.failure("object comment is not NUL-terminated") }
                case 0x0E:
                    let digits = try body.take(14, "modification time")
                    guard digits.allSatisfy({ (0x30...0x39).contains($0) }) else {
                        throw body.failure("modification time \(HDF5Cursor.printable(digits)) is not 14 digits")
                    }
                case 0x10:
                    guard let next = try body.address("continuation address") else {
                        throw body.failure("continuation address is undefined")
                    }
                    let length = try body.length("continuation length")
                    guard length > 0, length % 8 == 0, length <= UInt64(Self.maximumStructureBytes),
                          inside(next, length) else {
                        throw body.failure("continuation block \(next)..<\(next &+ length) is empty, unaligned or "
                                           + "outside the file")
                    }
                    let range = next..<(next + length)
                    guard !claimed.contains(where: { $0.overlaps(range) }) else {
                        throw body.failure("continuation block \(next)..<\(next + length) overlaps the header's "
                                           + "other chunks")
                    }
                    guard chunks.count < 1024 else { throw body.failure("more than 1024 header chunks") }
                    claimed.append(range)
                    chunks.append((next, Int(length)))
                case 0x11:
                    guard messages.symbolTable == nil else { throw body.failure("second symbol table message") }
                    guard let btree = try body.address("v1 B-tree address"),
                          let heap = try body.address("local heap address") else {
                        throw body.failure("symbol table addresses are undefined")
                    }
                    messages.symbolTable = (btree, heap)
                case 0x12:
                    let timeVersion = try body.u8("version")
                    guard timeVersion == 1 else {
                        throw body.failure("modification time version \(timeVersion), expected 1")
                    }
                    try body.skip(7, "reserved and seconds")
                default:
                    throw body.failure("message type \(type) (\(name)) is not supported",
                                       kind: Self.knownMessageTypes.contains(type) ? .unsupported : .malformed)
                }
            }
        }
        guard parsed == declaredMessages else {
            throw HDF5PreflightFailure(kind: .malformed,
                                       problem: "\(label): declares \(declaredMessages) messages, holds \(parsed)")
        }
        try object(messages, hasAttributes: hasAttributes, path: path, label: label, depth: depth, rootCache: rootCache)
    }

    /// Checks that the messages make a group or a dataset, and walks a group's members.
    private func object(_ messages: HDF5ObjectMessages, hasAttributes: Bool, path: String, label: String, depth: Int,
                        rootCache: (btree: UInt64, heap: UInt64)?) throws {
        let datasetMessages = messages.dataspace != nil || messages.datatype != nil || messages.layout != nil
            || messages.fillValueSize != nil || messages.filters != nil
        if let table = messages.symbolTable {
            guard !datasetMessages else {
                throw HDF5PreflightFailure(kind: .malformed,
                                           problem: "\(label): holds both a symbol table and dataset messages")
            }
            if let cache = rootCache, cache.btree != table.btree || cache.heap != table.heap {
                throw HDF5PreflightFailure(kind: .malformed,
                                           problem: "root symbol table entry caches B-tree \(cache.btree) and heap "
                                                    + "\(cache.heap), but the root group's symbol table message says "
                                                    + "\(table.btree) and \(table.heap)")
            }
            try group(table, path: path, depth: depth)
            return
        }
        if depth == 0 {
            throw HDF5PreflightFailure(kind: .malformed,
                                       problem: "\(label): the root object is not a group (no symbol table message)")
        }
        guard let space = messages.dataspace, let type = messages.datatype, let layout = messages.layout else {
            throw HDF5PreflightFailure(kind: datasetMessages || hasAttributes ? .malformed : .unsupported,
                                       problem: "\(label): neither a group (symbol table) nor a dataset (dataspace, "
                                                + "datatype and layout)")
        }
        try dataset(space: space, type: type, layout: layout, fillValueSize: messages.fillValueSize,
                    filters: messages.filters ?? [], path: path, label: label)
    }

    static let knownMessageTypes: Set<Int> = Set(0...0x16)

    static func messageName(_ type: Int) -> String {
        let names = ["NIL", "dataspace", "link info", "datatype", "fill value (old)", "fill value", "link",
                     "external data files", "data layout", "bogus", "group info", "filter pipeline", "attribute",
                     "object comment", "modification time (old)", "shared message table", "continuation",
                     "symbol table", "modification time", "B-tree K values", "driver info", "attribute info",
                     "reference count"]
        return type < names.count ? names[type] : "unknown"
    }

    // MARK: Messages

    /// Dataspace message (IV.A.2.b), versions 1 and 2.
    private func dataspace(_ body: inout HDF5Cursor) throws -> HDF5Dataspace {
        let version = try body.u8("dataspace version")
        let rank = try body.u8("dimensionality")
        let flags = try body.u8("dataspace flags")
        guard rank <= 32 else { throw body.failure("rank \(rank) (limit 32)") }
        guard flags & ~0x01 == 0 else {
            throw body.failure(String(format: "dataspace flags 0x%02X (permutation indices are not supported)", flags))
        }
        var kind: HDF5Dataspace.Kind
        switch version {
        case 1:
            try body.skip(5, "reserved")
            kind = rank == 0 ? .scalar : .simple
        case 2:
            let type = try body.u8("dataspace type")
            switch type {
            case 0: kind = .scalar
            case 1: kind = .simple
            case 2: kind = .null
            default: throw body.failure("dataspace type \(type), expected 0, 1 or 2")
            }
            guard (kind == .simple) == (rank > 0) else {
                throw body.failure("dataspace type \(type) with rank \(rank)")
            }
        default:
            throw body.failure("dataspace version \(version), expected 1 or 2")
        }
        var dimensions: [UInt64] = []
        for index in 0..<rank { dimensions.append(try body.length("dimension \(index)")) }
        if flags & 0x01 != 0 {
            for index in 0..<rank {
                let maximum = try body.length("maximum dimension \(index)")
                guard maximum == UInt64.max || maximum >= dimensions[index] else {
                    throw body.failure("dimension \(index) is \(dimensions[index]) but its maximum is \(maximum)")
                }
            }
        }
        let space = HDF5Dataspace(kind: kind, dimensions: dimensions)
        guard space.elementCount != nil else { throw body.failure("dimensions \(dimensions) overflow") }
        return space
    }

    /// Datatype message (IV.A.2.d): fixed-point, IEEE floating-point, fixed- and variable-length strings.
    /// `nested` is true for a variable-length string's base type.
    private func datatype(_ body: inout HDF5Cursor, nested: Bool = false) throws -> HDF5Datatype {
        let start = body.offset
        let classAndVersion = try body.u8("datatype class and version")
        let typeClass = classAndVersion & 0x0F
        let version = classAndVersion >> 4
        let bits = Int(try body.unsigned(3, "class bit field"))
        let size = try body.u32("datatype size")
        guard (1...3).contains(version) else {
            throw body.failure("datatype version \(version) at byte \(start), expected 1 to 3")
        }
        switch typeClass {
        case 0:  // fixed-point: byte order, padding, sign; bit offset and precision
            guard [1, 2, 4, 8].contains(size), bits & ~0x0F == 0 else {
                throw body.failure("integer datatype of size \(size) with bit field 0x\(String(bits, radix: 16))")
            }
            let bitOffset = try body.u16("bit offset")
            let precision = try body.u16("bit precision")
            guard bitOffset == 0, precision == 8 * size else {
                throw body.failure("integer datatype with bit offset \(bitOffset) and precision \(precision) for "
                                   + "\(size) bytes",
                                   kind: .unsupported)
            }
            return HDF5Datatype(kind: .integer, size: size)
        case 1:  // floating-point: only the IEEE half, single and double layouts
            let bitOffset = try body.u16("bit offset")
            let precision = try body.u16("bit precision")
            let exponentLocation = try body.u8("exponent location")
            let exponentSize = try body.u8("exponent size")
            let mantissaLocation = try body.u8("mantissa location")
            let mantissaSize = try body.u8("mantissa size")
            let bias = try body.u32("exponent bias")
            let ieee: [Int: (Int, Int, Int, Int)] = [2: (10, 5, 10, 15), 4: (23, 8, 23, 127), 8: (52, 11, 52, 1023)]
            guard let (expLocation, expSize, manSize, expBias) = ieee[size], bitOffset == 0, precision == 8 * size,
                  exponentLocation == expLocation, exponentSize == expSize, mantissaLocation == 0,
                  mantissaSize == manSize, bias == expBias,
                  bits & ~0xFF3F == 0, bits & 0x30 == 0x20, (bits >> 8) == 8 * size - 1 else {
                throw body.failure("floating-point datatype of size \(size) is not IEEE 754 half, single or double",
                                   kind: .unsupported)
            }
            return HDF5Datatype(kind: .float, size: size)
        case 3:  // string: padding and character set, no properties
            guard !nested, size > 0, bits & ~0xFF == 0, bits & 0x0F <= 2, bits >> 4 <= 1 else {
                throw body.failure("string datatype of size \(size) with bit field 0x\(String(bits, radix: 16))")
            }
            return HDF5Datatype(kind: .fixedString, size: size)
        case 9:  // variable-length: only strings, whose base type is a 1-byte integer (a character)
            guard !nested else { throw body.failure("nested variable-length datatype") }
            guard bits & 0x0F == 1 else {
                throw body.failure("variable-length sequences are not supported (only strings)", kind: .unsupported)
            }
            guard bits & ~0xFFF == 0, (bits >> 4) & 0x0F <= 2, bits >> 8 <= 1, size == 16 else {
                throw body.failure("variable-length string datatype of size \(size) with bit field "
                                   + "0x\(String(bits, radix: 16))")
            }
            let baseType = try datatype(&body, nested: true)
            guard baseType.kind == .integer, baseType.size == 1 else {
                throw body.failure("variable-length string with a base type of \(baseType.size) bytes, expected a "
                                   + "1-byte character")
            }
            return HDF5Datatype(kind: .variableString, size: size)
        case 2, 4, 5, 6, 7, 8, 10:
            let names = [2: "time", 4: "bitfield", 5: "opaque", 6: "compound", 7: "reference", 8: "enum", 10: "array"]
            throw body.failure("\(names[typeClass] ?? "") datatype is not supported", kind: .unsupported)
        default:
            throw body.failure("datatype class \(typeClass) at byte \(start) does not exist")
        }
    }

    /// Fill value message (IV.A.2.f), versions 1 to 3; returns the stored value's size (0 when none).
    private func fillValue(_ body: inout HDF5Cursor) throws -> Int {
        let version = try body.u8("fill value version")
        switch version {
        case 1, 2:
            let allocation = try body.u8("space allocation time")
            let write = try body.u8("fill value write time")
            let defined = try body.u8("fill value defined")
            guard (version == 1 || (1...3).contains(allocation)), write <= 2, defined <= 1 else {
                throw body.failure("fill value allocation/write/defined \(allocation)/\(write)/\(defined) out of range")
            }
            guard version == 1 || defined == 1 else { return 0 }
            let size = try body.u32("fill value size")
            try body.skip(size, "fill value")
            return size
        case 3:
            let flags = try body.u8("fill value flags")
            guard flags & 0xC0 == 0, flags & 0x03 != 0, (flags >> 2) & 0x03 <= 2, flags & 0x30 != 0x30 else {
                throw body.failure(String(format: "fill value flags 0x%02X", flags))
            }
            guard flags & 0x20 != 0 else { return 0 }
            let size = try body.u32("fill value size")
            try body.skip(size, "fill value")
            return size
        default:
            throw body.failure("fill value version \(version), expected 1 to 3")
        }
    }

    /// Data layout message (IV.A.2.i), version 3 (what libhdf5 writes for libver 'earliest').
    private func dataLayout(_ body: inout HDF5Cursor) throws -> HDF5DataLayout {
        let version = try body.u8("layout version")
        guard version == 3 else {
            throw body.failure("data layout version \(version); Arbiter reads version 3",
                               kind: (1...4).contains(version) ? .unsupported : .malformed)
        }
        let layoutClass = try body.u8("layout class")
        switch layoutClass {
        case 0:
            let size = try body.u16("compact data size")
            try body.skip(size, "compact data")
            return .compact(size: size)
        case 1:
            let address = try body.address("contiguous data address")
            let size = try body.length("contiguous data size")
            return .contiguous(address: address, size: size)
        case 2:
            let rank = try body.u8("chunk dimensionality")
            guard (2...33).contains(rank) else { throw body.failure("chunk dimensionality \(rank), expected 2 to 33") }
            let btree = try body.address("chunk B-tree address")
            var dimensions: [Int] = []
            for index in 0..<rank {
                let dimension = try body.u32("chunk dimension \(index)")
                guard dimension > 0 else { throw body.failure("chunk dimension \(index) is 0") }
                dimensions.append(dimension)
            }
            return .chunked(btree: btree, dimensions: dimensions)
        default:
            throw body.failure("layout class \(layoutClass), expected 0 (compact), 1 (contiguous) or 2 (chunked)",
                               kind: layoutClass == 3 ? .unsupported : .malformed)
        }
    }

    /// Filter pipeline message (IV.A.2.l), versions 1 and 2; only deflate (1) and shuffle (2) are accepted.
    private func filterPipeline(_ body: inout HDF5Cursor) throws -> [HDF5Filter] {
        let version = try body.u8("filter pipeline version")
        guard version == 1 || version == 2 else {
            throw body.failure("filter pipeline version \(version), expected 1 or 2")
        }
        let count = try body.u8("number of filters")
        guard (1...32).contains(count) else { throw body.failure("\(count) filters (1 to 32 allowed)") }
        if version == 1 { try body.skip(6, "reserved") }
        var filters: [HDF5Filter] = []
        for index in 0..<count {
            let id = try body.u16("filter \(index) id")
            let nameLength = version == 1 || id >= 256 ? try body.u16("filter \(index) name length") : 0
            let flags = try body.u16("filter \(index) flags")
            let valueCount = try body.u16("filter \(index) client data count")
            guard flags & ~0x01 == 0, valueCount <= 16 else {
                throw body.failure("filter \(index) has flags 0x\(String(flags, radix: 16)) and \(valueCount) "
                                   + "client data values")
            }
            if nameLength > 0 {
                let name = try body.take(version == 1 ? (nameLength + 7) / 8 * 8 : nameLength, "filter \(index) name")
                guard name.prefix(nameLength).contains(0) else {
                    throw body.failure("filter \(index) name is not NUL-terminated")
                }
            }
            var values: [Int] = []
            for value in 0..<valueCount { values.append(try body.u32("filter \(index) client data \(value)")) }
            if version == 1, valueCount % 2 == 1 { try body.skip(4, "filter \(index) padding") }
            switch id {
            case 1:
                guard values.count == 1, values[0] <= 9 else {
                    throw body.failure("deflate filter with client data \(values)")
                }
            case 2: break
            default: throw body.failure("filter \(id) is not supported (only deflate and shuffle)", kind: .unsupported)
            }
            filters.append(HDF5Filter(id: id, values: values))
        }
        return filters
    }

    /// Attribute message (IV.A.2.m), versions 1 to 3: name, datatype and dataspace inside the message, and
    /// the data they imply too (libhdf5 copies that many bytes without checking).
    private func attribute(_ body: inout HDF5Cursor, path: String) throws {
        let version = try body.u8("attribute version")
        guard (1...3).contains(version) else { throw body.failure("attribute version \(version), expected 1 to 3") }
        let flags = try body.u8("attribute flags")
        guard version == 1 || flags == 0 else {
            throw body.failure("attribute with shared datatype or dataspace (flags \(flags))", kind: .unsupported)
        }
        let nameSize = try body.u16("name size")
        let datatypeSize = try body.u16("datatype size")
        let dataspaceSize = try body.u16("dataspace size")
        if version == 3 {
            let encoding = try body.u8("name encoding")
            guard encoding <= 1 else {
                throw body.failure("name encoding \(encoding), expected 0 (ASCII) or 1 (UTF-8)")
            }
        }
        let padded: (Int) -> Int = { version == 1 ? ($0 + 7) / 8 * 8 : $0 }
        let name = try body.take(padded(nameSize), "attribute name")
        guard nameSize >= 2, name[nameSize - 1] == 0, !name.prefix(nameSize - 1).contains(0) else {
            throw body.failure("attribute name of \(nameSize) bytes is empty or not NUL-terminated")
        }
        let attributeName = String(decoding: name.prefix(nameSize - 1), as: UTF8.self)
        let label = "\(body.label), attribute '\(attributeName)'"
        note("attribute:\(path):\(attributeName)", body.origin - 8)
        var typeCursor = try body.sub(padded(datatypeSize), "attribute datatype", label: label)
        let type = try datatype(&typeCursor)
        guard typeCursor.position <= datatypeSize else {
            throw typeCursor.failure("datatype runs past its \(datatypeSize) bytes")
        }
        var spaceCursor = try body.sub(padded(dataspaceSize), "attribute dataspace", label: label)
        let space = try dataspace(&spaceCursor)
        guard spaceCursor.position <= dataspaceSize else {
            throw spaceCursor.failure("dataspace runs past its \(dataspaceSize) bytes")
        }
        let (dataSize, overflow) = (space.elementCount ?? Int.max).multipliedReportingOverflow(by: type.size)
        guard !overflow, dataSize <= body.remaining else {
            throw body.failure("attribute data of \(space.dimensions) × \(type.size) bytes does not fit in the "
                               + "message's \(body.remaining) remaining bytes")
        }
        var data = try body.sub(dataSize, "attribute data", label: label)
        if type.kind == .variableString {
            for _ in 0..<(space.elementCount ?? 0) { try variableLengthString(&data) }
        }
    }

    // MARK: Global heap (III.E), for variable-length strings

    /// One variable-length string reference (length, collection address, object index) and its heap object.
    private func variableLengthString(_ data: inout HDF5Cursor) throws {
        let length = try data.u32("string length")
        let collection = try data.address("global heap collection address")
        let index = try data.u32("global heap object index")
        guard length > 0 else { return }  // empty string: libhdf5 does not look at the heap
        guard let collection else {
            throw data.failure("string of \(length) bytes in an undefined global heap collection")
        }
        let objects = try globalHeap(collection)
        guard index > 0, let size = objects[index] else {
            throw data.failure("string refers to object \(index) of the global heap collection at byte \(collection), "
                               + "which has no such object")
        }
        guard size == UInt64(length) else {
            throw data.failure("string of \(length) bytes refers to a global heap object of \(size) bytes")
        }
    }

    /// Checks the global heap collection at `address` as libhdf5 parses it; returns object index → size.
    private func globalHeap(_ address: UInt64) throws -> [Int: UInt64] {
        if let known = globalHeaps[address] { return known }
        try spend("global heap collection at \(address)")
        let label = "global heap collection at byte \(address)"
        var header = try signed("GCOL", at: address, 16, label, name: "gcol")
        try header.version(1, of: "global heap")
        try header.skip(3, "reserved")
        let size = try header.length("collection size")
        guard size >= 16, size <= UInt64(Self.maximumStructureBytes) else {
            throw header.failure("collection size \(size)")
        }
        var heap = try read(address, Int(size), label)
        try heap.skip(16, "header")
        var objects: [Int: UInt64] = [:]
        while heap.remaining > 0 {
            if heap.remaining < 16 { break }  // too small for an object header: free space, as libhdf5 treats it
            let start = heap.offset
            let index = try heap.u16("object index")
            _ = try heap.u16("reference count")
            try heap.skip(4, "reserved")
            let objectSize = try heap.length("object size")
            if index == 0 {
                // Free space: its size counts its own 16-byte header (a smaller one would loop forever).
                guard objectSize >= 16, objectSize - 16 <= UInt64(heap.remaining) else {
                    throw heap.failure("free space object at byte \(start) has size \(objectSize) "
                                       + "(\(heap.remaining + 16) bytes left)")
                }
                try heap.skip(Int(objectSize) - 16, "free space")
            } else {
                let padded = objectSize <= UInt64(Int.max - 7) ? (objectSize + 7) / 8 * 8 : UInt64.max
                guard padded <= UInt64(heap.remaining) else {
                    throw heap.failure("object \(index) at byte \(start) has size \(objectSize), past the "
                                       + "collection's end")
                }
                guard objects[index] == nil else { throw heap.failure("object index \(index) appears twice") }
                objects[index] = objectSize
                try heap.skip(Int(padded), "object \(index) data")
            }
        }
        globalHeaps[address] = objects
        return objects
    }

    // MARK: Datasets

    /// Checks that a dataset's layout, fill value and filters agree with its dataspace and datatype.
    private func dataset(space: HDF5Dataspace, type: HDF5Datatype, layout: HDF5DataLayout, fillValueSize: Int?,
                         filters: [HDF5Filter], path: String, label: String) throws {
        func fail(_ problem: String, _ kind: FormatError.Kind = .malformed) -> HDF5PreflightFailure {
            HDF5PreflightFailure(kind: kind, problem: "\(label): \(problem)")
        }
        guard type.kind != .variableString else {
            throw fail("variable-length string datasets are not supported", .unsupported)
        }
        if let fillValueSize, fillValueSize != 0, fillValueSize != type.size {
            throw fail("fill value of \(fillValueSize) bytes for \(type.size)-byte elements")
        }
        guard let count = space.elementCount else { throw fail("dimensions \(space.dimensions) overflow") }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: type.size)
        guard !overflow else { throw fail("\(space.dimensions) elements of \(type.size) bytes overflow") }
        if case .chunked = layout {} else if !filters.isEmpty {
            throw fail("a filter pipeline on a dataset that is not chunked")
        }
        switch layout {
        case .compact(let size):
            guard size == bytes else { throw fail("compact data of \(size) bytes for \(bytes) bytes of elements") }
        case .contiguous(let address, let size):
            guard size == UInt64(bytes) else {
                throw fail("contiguous data of \(size) bytes for \(bytes) bytes of elements")
            }
            if let address, !inside(address, size) {
                throw fail("contiguous data \(address)..<\(address &+ size) lies outside the file")
            }
        case .chunked(let btree, let dimensions):
            guard space.kind == .simple, dimensions.count == space.dimensions.count + 1,
                  dimensions.last == type.size else {
                throw fail("chunk dimensions \(dimensions) do not fit dataspace \(space.dimensions) of "
                           + "\(type.size)-byte elements")
            }
            var chunkBytes = 1
            for dimension in dimensions {
                let (product, overflow) = chunkBytes.multipliedReportingOverflow(by: dimension)
                guard !overflow, product < 1 << 32 else { throw fail("chunks of \(dimensions) are 4 GiB or more") }
                chunkBytes = product
            }
            if let btree {
                var visited: Set<UInt64> = []
                try chunkNode(btree, level: nil, dimensions: dimensions, extent: space.dimensions,
                              chunkBytes: chunkBytes,
                              filters: filters, path: path, label: label, visited: &visited)
            }
        }
    }

    /// Size of one v1 B-tree node (III.A.1): signature, type, level, entries, siblings, 2K children, 2K+1 keys.
    private func btreeNodeBytes(k: Int, keyBytes: Int) -> Int { 8 + 16 + 2 * k * 8 + (2 * k + 1) * keyBytes }

    /// Reads and checks a v1 B-tree node's fixed part; returns the cursor at the first key and the entry count.
    private func btreeNode(_ address: UInt64, type: Int, k: Int, keyBytes: Int, level expected: Int?,
                           label: String, structure: String) throws -> (HDF5Cursor, level: Int, entries: Int) {
        try spend(label)
        guard visitedNodes.insert(address).inserted else {
            throw HDF5PreflightFailure(kind: .malformed, problem: "\(label) is reached twice (a cycle or shared node)")
        }
        var node = try signed("TREE", at: address, btreeNodeBytes(k: k, keyBytes: keyBytes), label, name: structure)
        let nodeType = try node.u8("node type")
        let level = try node.u8("node level")
        let entries = try node.u16("entries used")
        guard nodeType == type else { throw node.failure("node type \(nodeType), expected \(type)") }
        guard level <= Self.maximumBTreeLevel, expected == nil || level == expected else {
            throw node.failure("node level \(level), expected "
                               + "\(expected.map(String.init) ?? "at most \(Self.maximumBTreeLevel)")")
        }
        guard entries <= 2 * k else { throw node.failure("\(entries) entries used, capacity \(2 * k)") }
        for side in ["left", "right"] {
            if let sibling = try node.address("\(side) sibling address"), !inside(sibling, 8) {
                throw node.failure("\(side) sibling address \(sibling) lies outside the file")
            }
        }
        return (node, level, entries)
    }

    /// A chunk B-tree node (type 1): keys are chunk size, filter mask and chunk offsets; leaves point at chunks.
    private func chunkNode(_ address: UInt64, level expected: Int?, dimensions: [Int], extent: [UInt64],
                           chunkBytes: Int,
                           filters: [HDF5Filter], path: String, label: String, visited: inout Set<UInt64>) throws {
        let nodeLabel = "\(label), chunk B-tree node at byte \(address)"
        let keyBytes = 8 + 8 * dimensions.count
        var (node, level, entries) = try btreeNode(address, type: 1, k: chunkInternalK, keyBytes: keyBytes,
                                                   level: expected, label: nodeLabel, structure: "chunkbtree:\(path)")
        for entry in 0..<entries {
            let chunkSize = try node.u32("chunk \(entry) size")
            let mask = try node.u32("chunk \(entry) filter mask")
            for (axis, dimension) in dimensions.enumerated() {
                let start = try node.unsigned(8, "chunk \(entry) offset \(axis)")
                if axis == dimensions.count - 1 {
                    guard start == 0 else { throw node.failure("chunk \(entry) element offset \(start), expected 0") }
                } else {
                    guard start % UInt64(dimension) == 0, start < max(extent[axis], 1) else {
                        throw node.failure("chunk \(entry) offset \(start) on axis \(axis) is not a chunk boundary "
                                           + "inside \(extent[axis])")
                    }
                }
            }
            guard let child = try node.address("child \(entry) address") else {
                throw node.failure("child \(entry) address is undefined")
            }
            if level > 0 {
                try chunkNode(child, level: level - 1, dimensions: dimensions, extent: extent, chunkBytes: chunkBytes,
                              filters: filters, path: path, label: label, visited: &visited)
            } else {
                // Unless deflate ran on the chunk, libhdf5 reads exactly chunkBytes from it.
                let deflated = filters.enumerated().contains { $0.element.id == 1 && mask & (1 << $0.offset) == 0 }
                guard chunkSize > 0, deflated || chunkSize == chunkBytes else {
                    throw node.failure("chunk \(entry) of \(chunkSize) bytes, expected \(chunkBytes)")
                }
                guard inside(child, UInt64(chunkSize)) else {
                    throw node.failure("chunk \(entry) at \(child)..<\(child &+ UInt64(chunkSize)) lies "
                                       + "outside the file")
                }
                guard visited.insert(child).inserted else {
                    throw node.failure("chunk \(entry) at \(child) is used twice")
                }
            }
        }
    }

    // MARK: Groups

    /// An old-style group: local heap of names, v1 B-tree (type 0) of symbol table nodes, members.
    private func group(_ table: (btree: UInt64, heap: UInt64), path: String, depth: Int) throws {
        let heap = try localHeap(table.heap, path: path)
        try groupNode(table.btree, level: nil, heap: heap, path: path, depth: depth)
    }

    /// Local heap (III.D): "HEAP", version 0, data segment size, free list head, data segment address.
    private func localHeap(_ address: UInt64, path: String) throws -> HDF5LocalHeap {
        if let known = localHeaps[address] { return known }
        try spend("local heap at \(address)")
        let label = "local heap of group '\(path)' at byte \(address)"
        var header = try signed("HEAP", at: address, 32, label, name: "heap:\(path)")
        try header.version(0, of: "local heap")
        try header.skip(3, "reserved")
        let size = try header.length("data segment size")
        let freeList = try header.length("offset to head of free list")
        guard let dataAddress = try header.address("data segment address") else {
            throw header.failure("data segment address is undefined")
        }
        guard size > 0, size <= UInt64(Self.maximumStructureBytes) else {
            throw header.failure("data segment size \(size)")
        }
        let data = try read(dataAddress, Int(size), "\(label), data segment")
        // The free list is a chain of (next offset, size) blocks inside the segment; 1 ends it.
        var block = freeList
        var seen: Set<UInt64> = []
        while block != 1 {
            guard block <= size - min(size, 16), seen.insert(block).inserted, seen.count <= 1 << 16 else {
                throw header.failure("free list block at offset \(block) lies outside the \(size)-byte data "
                                     + "segment or repeats")
            }
            var cursor = HDF5Cursor(Array(data.bytes[Int(block)..<(Int(block) + 16)]), origin: data.origin + Int(block),
                                    label: label)
            let next = try cursor.length("next free block")
            let blockSize = try cursor.length("free block size")
            guard blockSize >= 16, blockSize <= size - block else {
                throw header.failure("free block at offset \(block) has size \(blockSize) in a \(size)-byte "
                                     + "data segment")
            }
            block = next
        }
        let heap = HDF5LocalHeap(address: address, data: data.bytes, dataOrigin: data.origin)
        localHeaps[address] = heap
        return heap
    }

    /// The NUL-terminated name at `offset` of a local heap's data segment.
    private func name(at offset: UInt64, in heap: HDF5LocalHeap, _ what: String, label: String) throws -> String {
        guard offset < UInt64(heap.data.count), let nul = heap.data[Int(offset)...].firstIndex(of: 0) else {
            throw HDF5PreflightFailure(kind: .malformed,
                                       problem: "\(label): \(what) at heap offset \(offset) is not a NUL-terminated "
                                                + "name inside the \(heap.data.count)-byte heap of byte "
                                                + "\(heap.dataOrigin)")
        }
        return String(decoding: heap.data[Int(offset)..<nul], as: UTF8.self)
    }

    /// A group B-tree node (type 0): keys are heap offsets of names; leaves point at symbol table nodes.
    private func groupNode(_ address: UInt64, level expected: Int?, heap: HDF5LocalHeap, path: String,
                           depth: Int) throws {
        let label = "group '\(path)' B-tree node at byte \(address)"
        var (node, level, entries) = try btreeNode(address, type: 0, k: groupInternalK, keyBytes: 8, level: expected,
                                                   label: label,
                                                   structure: "btree:\(path)")
        for entry in 0...entries {
            _ = try name(at: try node.length("key \(entry)"), in: heap, "key \(entry)", label: label)
            guard entry < entries else { break }
            guard let child = try node.address("child \(entry) address") else {
                throw node.failure("child \(entry) address is undefined")
            }
            if level > 0 {
                try groupNode(child, level: level - 1, heap: heap, path: path, depth: depth)
            } else {
                try symbolNode(child, heap: heap, path: path, depth: depth)
            }
        }
    }

    /// Symbol table node (III.B): "SNOD", version 1, up to 2K symbol table entries; each member is checked.
    private func symbolNode(_ address: UInt64, heap: HDF5LocalHeap, path: String, depth: Int) throws {
        let label = "group '\(path)' symbol table node at byte \(address)"
        try spend(label)
        guard visitedNodes.insert(address).inserted else {
            throw HDF5PreflightFailure(kind: .malformed, problem: "\(label) is reached twice")
        }
        var node = try signed("SNOD", at: address, 8 + 2 * groupLeafK * Self.symbolEntryBytes, label,
                              name: "snod:\(path)")
        try node.version(1, of: "symbol table node")
        try node.skip(1, "reserved")
        let count = try node.u16("number of symbols")
        guard count <= 2 * groupLeafK else { throw node.failure("\(count) symbols, capacity \(2 * groupLeafK)") }
        for index in 0..<count {
            let member = try name(at: try node.length("entry \(index) name offset"), in: heap, "entry \(index) name",
                                  label: label)
            guard !member.isEmpty, !member.contains("/") else {
                throw node.failure("entry \(index) has an invalid name '\(member)'")
            }
            let memberPath = path == "/" ? "/\(member)" : "\(path)/\(member)"
            guard let header = try node.address("entry \(index) object header address"), inside(header, 16) else {
                throw node.failure("entry \(index) ('\(member)') object header address is undefined or "
                                   + "outside the file")
            }
            let cacheType = try node.u32("entry \(index) cache type")
            try node.skip(4, "reserved")
            // The scratch pad caches a member group's symbol table addresses (cache type 1); libhdf5 reads
            // the member's own symbol table message instead, which is what gets checked.
            try node.skip(16, "entry \(index) scratch pad")
            switch cacheType {
            case 0, 1: break
            case 2: throw node.failure("entry \(index) ('\(member)') is a soft link, not supported", kind: .unsupported)
            default: throw node.failure("entry \(index) ('\(member)') has cache type \(cacheType), expected 0 or 1")
            }
            try objectHeader(header, path: memberPath, depth: depth + 1)
        }
    }
}
