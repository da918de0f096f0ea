// The only Swift file that imports CHDF5: thin wrappers over the HDF5 C API (Debian's libhdf5 1.10).
// Every call runs under one global lock (HDF5 built without --enable-threadsafe is not thread-safe, and Swift
// Testing runs tests in parallel); negative return codes become FormatErrors naming the file, the object and
// HDF5's own reason. Only version-stable entry points are used (no H5Oget_info/H5Literate, changed in 1.12).
import CHDF5
import Foundation

/// The global HDF5 lock and one-time library initialization.
enum HDF5Library {
    /// Recursive so that wrappers can nest and handles can close (in `deinit`) inside a locked section.
    private static let lock = NSRecursiveLock()
    nonisolated(unsafe) private static var initialized = false  // guarded by `lock`

    /// Runs `body` holding the HDF5 lock, initializing the library on first use.
    static func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        if !initialized {
            _ = H5open()
            initialized = true
        }
        // Error stacks are per thread in thread-safe builds (Debian's is one), so silence on every entry.
        arbiter_H5_silence_errors()
        return try body()
    }

    /// Largest dataset or attribute Arbiter reads or writes, in bytes of its in-memory representation.
    static let maximumBytes = 4 << 30
    /// Largest string attribute, in bytes.
    static let maximumStringBytes = 16 << 20
    /// Most links in the root group or attributes on one object Arbiter lists.
    static let maximumEntries = 1 << 20
}

/// An open HDF5 identifier (file, dataset, object, attribute, dataspace, datatype); closed on deinit.
final class H5Handle {
    enum Kind { case file, dataset, object, attribute, dataspace, datatype, propertyList }

    let id: Int64
    let kind: Kind
    private var isOpen = true

    fileprivate init(_ id: hid_t, _ kind: Kind) {
        self.id = id
        self.kind = kind
    }

    /// Closes now and reports failure (for files, this is when buffered metadata reaches the disk).
    func close() -> Bool {
        HDF5Library.locked {
            guard isOpen else { return true }
            isOpen = false
            let status: herr_t
            switch kind {
            case .file: status = H5Fclose(id)
            case .dataset: status = H5Dclose(id)
            case .object: status = H5Oclose(id)
            case .attribute: status = H5Aclose(id)
            case .dataspace: status = H5Sclose(id)
            case .datatype: status = H5Tclose(id)
            case .propertyList: status = H5Pclose(id)
            }
            return status >= 0
        }
    }

    deinit { _ = close() }
}

/// What a dataset or attribute stores, as far as Arbiter cares.
enum H5ElementType: Equatable, CustomStringConvertible {
    case float(bytes: Int)
    case integer(bytes: Int, signed: Bool)
    case string(variableLength: Bool)
    case other(String)

    var description: String {
        switch self {
        case .float(let bytes): return "float\(bytes * 8)"
        case .integer(let bytes, let signed): return "\(signed ? "" : "u")int\(bytes * 8)"
        case .string(let variable): return variable ? "variable-length string" : "fixed-length string"
        case .other(let name): return name
        }
    }
}

/// Shape (nil for a null dataspace) and element type of a dataset or attribute.
struct H5Layout {
    let shape: [Int]?
    let element: H5ElementType
}

/// Thin wrappers over the C API. `file` is the path named in errors; `object` the dataset or attribute.
enum H5 {
    // MARK: Errors

    /// HDF5's error stack as one line (outermost reason, then innermost), and clears it.
    static func errorStack() -> String {
        final class Messages { var list: [String] = [] }
        let messages = Messages()
        let unmanaged = Unmanaged.passRetained(messages)
        _ = H5Ewalk2(arbiter_H5E_DEFAULT(), H5E_WALK_DOWNWARD, { _, entry, data in
            guard let entry, let data, let text = entry.pointee.desc else { return 0 }
            Unmanaged<Messages>.fromOpaque(data).takeUnretainedValue().list.append(String(cString: text))
            return 0
        }, unmanaged.toOpaque())
        unmanaged.release()
        _ = H5Eclear2(arbiter_H5E_DEFAULT())
        let list = messages.list.filter { !$0.isEmpty }
        guard let first = list.first else { return "no reason given by HDF5" }
        guard let last = list.last, last != first else { return first }
        return "\(first): \(last)"
    }

    private static func failure(_ kind: FormatError.Kind, _ file: String, _ what: String) -> FormatError {
        FormatError(kind, file: file, "\(what) (HDF5: \(errorStack()))")
    }

    private static func handle(_ id: hid_t, _ kind: H5Handle.Kind, _ file: String, _ what: @autoclosure () -> String,
                               failKind: FormatError.Kind = .malformed) throws -> H5Handle {
        guard id >= 0 else { throw failure(failKind, file, what()) }
        return H5Handle(id, kind)
    }

    private static func check(_ status: herr_t, _ file: String, _ what: @autoclosure () -> String,
                              kind: FormatError.Kind = .malformed) throws {
        if status < 0 { throw failure(kind, file, what()) }
    }

    // MARK: Files

    /// Whether the file carries an HDF5 signature (H5Fis_hdf5); throws if it cannot be checked at all.
    static func hasSignature(_ path: String) throws -> Bool {
        try HDF5Library.locked {
            let result = H5Fis_hdf5(path)
            if result < 0 { throw failure(.unreadable, path, "cannot check for an HDF5 signature") }
            return result > 0
        }
    }

    static func openReadOnly(_ path: String) throws -> H5Handle {
        try HDF5Library.locked {
            let id = H5Fopen(path, arbiter_H5F_ACC_RDONLY(), arbiter_H5P_DEFAULT())
            if id < 0 {
                let reason = errorStack()
                if reason.contains("unable to lock file") {  // flock(): another program has it open to write
                    throw FormatError(.unreadable, file: path, "cannot open: another process holds HDF5's lock on "
                                      + "the file (a program is writing it in place) (HDF5: \(reason))")
                }
                let kind: FormatError.Kind = reason.contains("truncated") ? .truncated : .malformed
                throw FormatError(kind, file: path, "cannot open as HDF5, corrupt or truncated (HDF5: \(reason))")
            }
            let file = H5Handle(id, .file)
            try closeOnExec(file, path)
            return file
        }
    }

    /// Creates `path` (always a writer's own temporary file, a fresh name nobody else opens, renamed into place
    /// when complete) without HDF5's file lock. HDF5 locks a file it writes with flock(LOCK_EX), which would
    /// guard it against readers while it is written; here none can see it before the rename. And the lock
    /// outlived the writer: a process spawned between H5Fcreate's open() and `closeOnExec` (a window a loaded
    /// host can stretch to a time slice) kept a copy of the descriptor, and with it the lock on the committed
    /// file, so every later open of it failed with "unable to lock file, errno = 11" for as long as that process
    /// ran. Reads keep HDF5's shared lock: it refuses a file another program is writing in place.
    static func create(_ path: String) throws -> H5Handle {
        try HDF5Library.locked {
            let access = try handle(H5Pcreate(arbiter_H5P_FILE_ACCESS()), .propertyList, path,
                                    "cannot create a file access property list")
            try check(H5Pset_file_locking(access.id, false, true), path, "cannot turn off HDF5's lock of the new file")
            let file = try handle(H5Fcreate(path, arbiter_H5F_ACC_TRUNC(), arbiter_H5P_DEFAULT(), access.id),
                                  .file, path, "cannot create HDF5 file", failKind: .unreadable)
            do {
                try closeOnExec(file, path)
            } catch {  // no partial file left behind
                _ = file.close()
                unlink(path)
                throw error
            }
            return file
        }
    }

    /// HDF5 opens files without O_CLOEXEC: a process spawned while one is open (a verify shard, a test's
    /// subprocess) inherited the descriptor, and with a reader's, its shared lock, as long as it ran. Marked
    /// close-on-exec at once (a spawn in the instant before still inherits it: see `create`).
    private static func closeOnExec(_ file: H5Handle, _ path: String) throws {
        guard arbiter_H5F_set_close_on_exec(file.id) == 0 else {
            throw FormatError(.unreadable, file: path, "cannot mark the open file close-on-exec")
        }
    }

    /// The descriptor HDF5 holds the file open with (for tests of `closeOnExec`), or -1.
    static func descriptor(_ file: H5Handle) -> Int32 {
        HDF5Library.locked { arbiter_H5F_descriptor(file.id) }
    }

    // MARK: Links and objects

    /// Names of the links in the root group, in HDF5's name order.
    static func rootLinkNames(_ file: H5Handle, _ path: String) throws -> [String] {
        try HDF5Library.locked {
            var info = H5G_info_t()
            try check(H5Gget_info(file.id, &info), path, "cannot read the root group")
            guard info.nlinks <= UInt64(HDF5Library.maximumEntries) else {
                throw FormatError(.tooLarge, file: path,
                                  "root group claims \(info.nlinks) links (limit \(HDF5Library.maximumEntries))")
            }
            var names: [String] = []
            for index in 0..<info.nlinks {
                let length = H5Lget_name_by_idx(file.id, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0,
                                                arbiter_H5P_DEFAULT())
                guard length >= 0, length < HDF5Library.maximumStringBytes else {
                    throw failure(.malformed, path, "cannot read the name of root link #\(index)")
                }
                var buffer = [CChar](repeating: 0, count: Int(length) + 1)
                let written = H5Lget_name_by_idx(file.id, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, buffer.count,
                                                 arbiter_H5P_DEFAULT())
                guard written >= 0 else {
                    throw failure(.malformed, path, "cannot read the name of root link #\(index)")
                }
                names.append(decodeCString(buffer))
            }
            return names
        }
    }

    /// Whether `name` resolves to a dataset (false for groups, missing links and anything unreadable).
    static func isDataset(_ file: H5Handle, _ name: String) -> Bool {
        HDF5Library.locked {
            guard linkExists(file, name) else { return false }
            let id = H5Oopen(file.id, name, arbiter_H5P_DEFAULT())
            guard id >= 0 else { _ = H5Eclear2(arbiter_H5E_DEFAULT()); return false }
            defer { _ = H5Oclose(id) }
            return H5Iget_type(id) == H5I_DATASET
        }
    }

    /// Whether a link `name` exists at the root (false for nested paths whose parents are missing).
    static func linkExists(_ file: H5Handle, _ name: String) -> Bool {
        HDF5Library.locked {
            guard !name.isEmpty else { return false }
            let result = H5Lexists(file.id, name, arbiter_H5P_DEFAULT())
            if result < 0 { _ = H5Eclear2(arbiter_H5E_DEFAULT()) }
            return result > 0
        }
    }

    static func openDataset(_ file: H5Handle, _ name: String, _ path: String) throws -> H5Handle {
        try HDF5Library.locked {
            try handle(H5Dopen2(file.id, name, arbiter_H5P_DEFAULT()), .dataset, path, "cannot open dataset '\(name)'")
        }
    }

    /// Opens any object (dataset or group) by name, for its attributes.
    static func openObject(_ file: H5Handle, _ name: String, _ path: String) throws -> H5Handle {
        try HDF5Library.locked {
            try handle(H5Oopen(file.id, name, arbiter_H5P_DEFAULT()), .object, path, "cannot open object '\(name)'")
        }
    }

    // MARK: Types and shapes

    static func datasetLayout(_ dataset: H5Handle, _ path: String, _ name: String) throws -> H5Layout {
        try HDF5Library.locked {
            let space = try handle(H5Dget_space(dataset.id), .dataspace, path, "cannot read the dataspace of '\(name)'")
            let type = try handle(H5Dget_type(dataset.id), .datatype, path, "cannot read the datatype of '\(name)'")
            return try layout(space: space, type: type, path, "dataset '\(name)'")
        }
    }

    static func attributeLayout(_ attribute: H5Handle, _ path: String, _ label: String) throws -> H5Layout {
        try HDF5Library.locked {
            let space = try handle(H5Aget_space(attribute.id), .dataspace, path,
                                   "cannot read the dataspace of \(label)")
            let type = try handle(H5Aget_type(attribute.id), .datatype, path, "cannot read the datatype of \(label)")
            return try layout(space: space, type: type, path, label)
        }
    }

    private static func layout(space: H5Handle, type: H5Handle, _ path: String, _ label: String) throws -> H5Layout {
        let shape: [Int]?
        let spaceClass = H5Sget_simple_extent_type(space.id)
        if spaceClass == H5S_SCALAR {
            shape = []
        } else if spaceClass == H5S_NULL {
            shape = nil
        } else if spaceClass == H5S_SIMPLE {
            let rank = H5Sget_simple_extent_ndims(space.id)
            guard rank >= 0, rank <= 32 else { throw failure(.malformed, path, "\(label) has an invalid rank \(rank)") }
            var dims = [hsize_t](repeating: 0, count: Int(rank))
            if rank > 0 {
                try check(H5Sget_simple_extent_dims(space.id, &dims, nil), path,
                          "cannot read the dimensions of \(label)")
            }
            guard dims.allSatisfy({ $0 <= UInt64(Int.max) }) else {
                throw FormatError(.tooLarge, file: path, "\(label) has an absurd dimension in \(dims)")
            }
            shape = dims.map { Int($0) }
        } else {
            throw failure(.malformed, path, "\(label) has an unreadable dataspace")
        }

        let element: H5ElementType
        let size = H5Tget_size(type.id)
        let typeClass = H5Tget_class(type.id)
        if typeClass == H5T_FLOAT {
            element = .float(bytes: size)
        } else if typeClass == H5T_INTEGER {
            element = .integer(bytes: size, signed: H5Tget_sign(type.id) != H5T_SGN_NONE)
        } else if typeClass == H5T_STRING {
            let variable = H5Tis_variable_str(type.id)
            guard variable >= 0 else { throw failure(.malformed, path, "cannot read the string type of \(label)") }
            element = .string(variableLength: variable > 0)
        } else if typeClass == H5T_NO_CLASS {
            throw failure(.malformed, path, "cannot read the datatype class of \(label)")
        } else {
            element = .other(className(typeClass))
        }
        return H5Layout(shape: shape, element: element)
    }

    private static func className(_ typeClass: H5T_class_t) -> String {
        switch typeClass {
        case H5T_TIME: return "time"
        case H5T_BITFIELD: return "bitfield"
        case H5T_OPAQUE: return "opaque"
        case H5T_COMPOUND: return "compound"
        case H5T_REFERENCE: return "reference"
        case H5T_ENUM: return "enum"
        case H5T_VLEN: return "variable-length sequence"
        case H5T_ARRAY: return "array"
        default: return "datatype class \(typeClass.rawValue)"
        }
    }

    // MARK: Reading datasets

    /// Reads every element as Float (HDF5 converts from float64 or float16 storage).
    static func readFloats(_ dataset: H5Handle, count: Int, _ path: String, _ name: String) throws -> [Float] {
        try HDF5Library.locked {
            var values = [Float](repeating: 0, count: count)
            guard count > 0 else { return values }
            try values.withUnsafeMutableBytes { buffer in
                try check(H5Dread(dataset.id, arbiter_H5T_NATIVE_FLOAT(), arbiter_H5S_ALL(), arbiter_H5S_ALL(),
                                  arbiter_H5P_DEFAULT(), buffer.baseAddress),
                          path, "cannot read dataset '\(name)'")
            }
            return values
        }
    }

    /// Reads every element as Double (HDF5 converts from narrower float storage).
    static func readDoubles(_ dataset: H5Handle, count: Int, _ path: String, _ name: String) throws -> [Double] {
        try HDF5Library.locked {
            var values = [Double](repeating: 0, count: count)
            guard count > 0 else { return values }
            try values.withUnsafeMutableBytes { buffer in
                try check(H5Dread(dataset.id, arbiter_H5T_NATIVE_DOUBLE(), arbiter_H5S_ALL(), arbiter_H5S_ALL(),
                                  arbiter_H5P_DEFAULT(), buffer.baseAddress),
                          path, "cannot read dataset '\(name)'")
            }
            return values
        }
    }

    /// Reads every element as Int64 (HDF5 converts from narrower integer storage).
    static func readInt64s(_ dataset: H5Handle, count: Int, _ path: String, _ name: String) throws -> [Int64] {
        try HDF5Library.locked {
            var values = [Int64](repeating: 0, count: count)
            guard count > 0 else { return values }
            try values.withUnsafeMutableBytes { buffer in
                try check(H5Dread(dataset.id, arbiter_H5T_NATIVE_INT64(), arbiter_H5S_ALL(), arbiter_H5S_ALL(),
                                  arbiter_H5P_DEFAULT(), buffer.baseAddress),
                          path, "cannot read dataset '\(name)'")
            }
            return values
        }
    }

    /// File offset and byte count of a dataset's raw data when stored contiguously (nil when chunked, compact
    /// or not allocated). Used by the mutation tests to find bytes HDF5 never parses as metadata.
    static func contiguousStorage(_ dataset: H5Handle) -> Range<Int>? {
        HDF5Library.locked {
            let offset = H5Dget_offset(dataset.id)  // HADDR_UNDEF (all ones) when not contiguous
            _ = H5Eclear2(arbiter_H5E_DEFAULT())
            let size = H5Dget_storage_size(dataset.id)
            guard offset != haddr_t.max, offset <= UInt64(Int.max), size <= UInt64(Int.max - Int(offset)) else {
                return nil
            }
            return Int(offset)..<(Int(offset) + Int(size))
        }
    }

    // MARK: Writing datasets

    enum StoredType { case float32, int32, int64, uint8 }

    /// Creates dataset `name` at the root with `shape` and writes `bytes` (native layout of `type`).
    static func writeDataset(_ file: H5Handle, _ name: String, type: StoredType, shape: [Int],
                             bytes: UnsafeRawBufferPointer, _ path: String) throws {
        try HDF5Library.locked {
            let (fileType, memoryType): (hid_t, hid_t)
            switch type {
            case .float32: (fileType, memoryType) = (arbiter_H5T_IEEE_F32LE(), arbiter_H5T_NATIVE_FLOAT())
            case .int32: (fileType, memoryType) = (arbiter_H5T_STD_I32LE(), arbiter_H5T_NATIVE_INT32())
            case .int64: (fileType, memoryType) = (arbiter_H5T_STD_I64LE(), arbiter_H5T_NATIVE_INT64())
            case .uint8: (fileType, memoryType) = (arbiter_H5T_STD_U8LE(), arbiter_H5T_NATIVE_UINT8())
            }
            let space = try dataspace(shape, path, "dataset '\(name)'")
            // No modification times in object headers (as Tools/ writes with h5py's track_times=False):
            // the same content gives the same bytes.
            let creation = try handle(H5Pcreate(arbiter_H5P_DATASET_CREATE()), .propertyList, path,
                                      "cannot create a dataset property list", failKind: .unreadable)
            try check(H5Pset_obj_track_times(creation.id, false), path, "cannot turn off time tracking",
                      kind: .unreadable)
            let dataset = try handle(H5Dcreate2(file.id, name, fileType, space.id, arbiter_H5P_DEFAULT(),
                                                creation.id, arbiter_H5P_DEFAULT()),
                                     .dataset, path, "cannot create dataset '\(name)'", failKind: .unreadable)
            if bytes.count > 0 {
                try check(H5Dwrite(dataset.id, memoryType, arbiter_H5S_ALL(), arbiter_H5S_ALL(), arbiter_H5P_DEFAULT(),
                                   bytes.baseAddress),
                          path, "cannot write dataset '\(name)'", kind: .unreadable)
            }
            guard dataset.close() else { throw failure(.unreadable, path, "cannot close dataset '\(name)'") }
        }
    }

    private static func dataspace(_ shape: [Int], _ path: String, _ label: String) throws -> H5Handle {
        if shape.isEmpty {
            return try handle(H5Screate(H5S_SCALAR), .dataspace, path, "cannot create a scalar dataspace for \(label)",
                              failKind: .unreadable)
        }
        let dims = shape.map { hsize_t($0) }
        return try handle(H5Screate_simple(Int32(dims.count), dims, nil), .dataspace, path,
                          "cannot create a dataspace \(shape) for \(label)", failKind: .unreadable)
    }

    // MARK: Attributes

    /// Names of the attributes of `object` (the root group when nil), in HDF5's name order.
    static func attributeNames(_ file: H5Handle, object: String?, _ path: String) throws -> [String] {
        try HDF5Library.locked {
            let target = try object.map { try openObject(file, $0, path) }
            final class Names { var list: [String] = [] }
            let names = Names()
            let unmanaged = Unmanaged.passRetained(names)
            defer { unmanaged.release() }
            var index: hsize_t = 0
            let status = H5Aiterate2(target?.id ?? file.id, H5_INDEX_NAME, H5_ITER_INC, &index, { _, name, _, data in
                guard let name, let data else { return -1 }
                let names = Unmanaged<Names>.fromOpaque(data).takeUnretainedValue()
                names.list.append(String(cString: name))
                return names.list.count > HDF5Library.maximumEntries ? -1 : 0
            }, unmanaged.toOpaque())
            try check(status, path, "cannot list the attributes of \(object.map { "'\($0)'" } ?? "the root group")")
            return names.list
        }
    }

    static func attributeExists(_ file: H5Handle, object: String?, _ name: String) -> Bool {
        HDF5Library.locked {
            let result = H5Aexists_by_name(file.id, object ?? ".", name, arbiter_H5P_DEFAULT())
            if result < 0 { _ = H5Eclear2(arbiter_H5E_DEFAULT()) }
            return result > 0
        }
    }

    static func openAttribute(_ file: H5Handle, object: String?, _ name: String, _ path: String) throws -> H5Handle {
        try HDF5Library.locked {
            try handle(H5Aopen_by_name(file.id, object ?? ".", name, arbiter_H5P_DEFAULT(), arbiter_H5P_DEFAULT()),
                       .attribute, path, "cannot open attribute '\(name)'")
        }
    }

    /// Reads a one-element string attribute (fixed- or variable-length). `label` names it in errors.
    static func readString(_ attribute: H5Handle, variableLength: Bool, _ path: String,
                           _ label: String) throws -> String {
        try HDF5Library.locked {
            let fileType = try handle(H5Aget_type(attribute.id), .datatype, path,
                                      "cannot read the datatype of \(label)")
            let bytes: [UInt8]
            if variableLength {
                let memoryType = try handle(H5Tcopy(arbiter_H5T_C_S1()), .datatype, path, "cannot copy a string type")
                try check(H5Tset_size(memoryType.id, arbiter_H5T_VARIABLE()), path, "cannot size a string type")
                try check(H5Tset_cset(memoryType.id, H5Tget_cset(fileType.id)), path, "cannot set a character set")
                var pointer: UnsafeMutablePointer<CChar>? = nil
                try check(H5Aread(attribute.id, memoryType.id, &pointer), path, "cannot read \(label)")
                defer { if let pointer { _ = H5free_memory(pointer) } }
                guard let pointer else { return "" }
                let length = strnlen(pointer, HDF5Library.maximumStringBytes + 1)
                guard length <= HDF5Library.maximumStringBytes else {
                    throw FormatError(.tooLarge, file: path, "\(label) is over \(HDF5Library.maximumStringBytes) bytes")
                }
                bytes = [UInt8](UnsafeRawBufferPointer(start: pointer, count: length))
            } else {
                let size = H5Tget_size(fileType.id)
                guard size > 0, size <= HDF5Library.maximumStringBytes else {
                    throw FormatError(.malformed, file: path, "\(label) has an invalid fixed string size \(size)")
                }
                let memoryType = try handle(H5Tcopy(fileType.id), .datatype, path, "cannot copy a string type")
                var buffer = [UInt8](repeating: 0, count: size)
                try buffer.withUnsafeMutableBytes { raw in
                    try check(H5Aread(attribute.id, memoryType.id, raw.baseAddress), path, "cannot read \(label)")
                }
                var text = buffer.prefix { $0 != 0 }
                if H5Tget_strpad(fileType.id) == H5T_STR_SPACEPAD {
                    while text.last == 0x20 { text = text.dropLast() }
                }
                bytes = Array(text)
            }
            guard let string = String(validating: bytes, as: UTF8.self) else {
                throw FormatError(.malformed, file: path, "\(label) is not valid UTF-8")
            }
            return string
        }
    }

    /// Reads a one-element integer attribute as Int64.
    static func readInt64(_ attribute: H5Handle, _ path: String, _ label: String) throws -> Int64 {
        try HDF5Library.locked {
            var value: Int64 = 0
            try check(H5Aread(attribute.id, arbiter_H5T_NATIVE_INT64(), &value), path, "cannot read \(label)")
            return value
        }
    }

    /// Reads a one-element numeric attribute as Double.
    static func readDouble(_ attribute: H5Handle, _ path: String, _ label: String) throws -> Double {
        try HDF5Library.locked {
            var value: Double = 0
            try check(H5Aread(attribute.id, arbiter_H5T_NATIVE_DOUBLE(), &value), path, "cannot read \(label)")
            return value
        }
    }

    enum AttributeValue { case string(String), int(Int64), double(Double) }

    /// Writes a scalar attribute on `object` (the root group when nil), replacing one of the same name.
    static func writeAttribute(_ file: H5Handle, object: String?, _ name: String, _ value: AttributeValue,
                               _ path: String) throws {
        try HDF5Library.locked {
            let owner = object ?? "."
            let label = "attribute '\(name)' of \(object.map { "'\($0)'" } ?? "the root group")"
            if attributeExists(file, object: object, name) {
                try check(H5Adelete_by_name(file.id, owner, name, arbiter_H5P_DEFAULT()), path,
                          "cannot replace \(label)", kind: .unreadable)
            }
            let space = try dataspace([], path, label)
            let type: H5Handle
            switch value {
            case .string:
                // What h5py writes for `str`: a variable-length, UTF-8, null-terminated string.
                type = try handle(H5Tcopy(arbiter_H5T_C_S1()), .datatype, path, "cannot copy a string type")
                try check(H5Tset_size(type.id, arbiter_H5T_VARIABLE()), path, "cannot size a string type")
                try check(H5Tset_cset(type.id, H5T_CSET_UTF8), path, "cannot set a character set")
                try check(H5Tset_strpad(type.id, H5T_STR_NULLTERM), path, "cannot set string padding")
            case .int:
                type = try handle(H5Tcopy(arbiter_H5T_STD_I64LE()), .datatype, path, "cannot copy an integer type")
            case .double:
                type = try handle(H5Tcopy(arbiter_H5T_IEEE_F64LE()), .datatype, path, "cannot copy a float type")
            }
            let attribute = try handle(H5Acreate_by_name(file.id, owner, name, type.id, space.id, arbiter_H5P_DEFAULT(),
                                                         arbiter_H5P_DEFAULT(), arbiter_H5P_DEFAULT()),
                                       .attribute, path, "cannot create \(label)", failKind: .unreadable)
            let status: herr_t
            switch value {
            case .string(let text):
                status = text.withCString { cString in
                    var pointer: UnsafePointer<CChar>? = cString
                    return H5Awrite(attribute.id, type.id, &pointer)
                }
            case .int(var number):
                status = H5Awrite(attribute.id, arbiter_H5T_NATIVE_INT64(), &number)
            case .double(var number):
                status = H5Awrite(attribute.id, arbiter_H5T_NATIVE_DOUBLE(), &number)
            }
            try check(status, path, "cannot write \(label)", kind: .unreadable)
            guard attribute.close() else { throw failure(.unreadable, path, "cannot close \(label)") }
        }
    }

    // MARK: Helpers

    private static func decodeCString(_ buffer: [CChar]) -> String {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
