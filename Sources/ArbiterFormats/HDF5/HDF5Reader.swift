// Reading HDF5 files written by h5py (golden activations) or by HDF5Writer: root-level datasets as Float32
// tensors or integer arrays, and scalar attributes. Every problem is a FormatError naming the file.
import ArbiterTensor
import Foundation

/// A read-only HDF5 file. Thread-safe: all HDF5 calls go through one global lock.
public final class HDF5Reader: @unchecked Sendable {  // immutable after init; HDF5 access is serialized
    public let url: URL
    private let file: H5Handle
    private let fileSize: Int
    private var path: String { url.path }

    /// Opens `url`; throws for a missing file, a file without an HDF5 signature, or a corrupt one.
    public init(url: URL) throws {
        self.url = url
        // Before libhdf5 opens it: a named pipe would block H5Fis_hdf5.
        fileSize = try FileCheck.regularFile(url)
        guard FileManager.default.isReadableFile(atPath: url.path) else {
            throw FormatError(.unreadable, file: url, "cannot open: file is not readable (permissions)")
        }
        guard try H5.hasSignature(url.path) else {
            throw FormatError(.malformed, file: url, "not an HDF5 file (no HDF5 signature found)")
        }
        // libhdf5 1.10 crashes on some corrupt metadata: check every structure it will parse first.
        try HDF5Preflight.check(url)
        file = try H5.openReadOnly(url.path)
    }

    /// The descriptor HDF5 reads the file through (tests check it is close-on-exec).
    var descriptor: Int32 { H5.descriptor(file) }

    // MARK: Datasets

    /// Names of the datasets at the root (groups and nested datasets excluded), sorted.
    public func datasetNames() throws -> [String] {
        try HDF5Library.locked {
            try H5.rootLinkNames(file, path).filter { H5.isDataset(file, $0) }.sorted()
        }
    }

    /// Whether a dataset `name` exists.
    public func contains(_ name: String) -> Bool {
        H5.isDataset(file, name)
    }

    /// The dimensions of dataset `name` (`[]` for a scalar).
    public func shape(of name: String) throws -> [Int] {
        try HDF5Library.locked { try open(name).1 }
    }

    /// The stored element type of dataset `name`: `float32`, `float64`, `int64`, `uint8`, `variable-length string`, …
    public func dtype(of name: String) throws -> String {
        try HDF5Library.locked { try open(name).2.description }
    }

    /// Whether dataset `name` stores floating-point values (what `readFloat32` reads).
    public func isFloatingPoint(_ name: String) throws -> Bool {
        try HDF5Library.locked {
            if case .float = try open(name).2 { return true }
            return false
        }
    }

    /// Reads a floating-point dataset as Float32 (float64 and float16 storage are converted); integer and
    /// other datasets are refused.
    public func readFloat32(_ name: String) throws -> Tensor {
        try HDF5Library.locked {
            let (dataset, shape, element) = try open(name)
            guard case .float(let bytes) = element, [2, 4, 8].contains(bytes) else {
                throw FormatError(.unsupported, file: url,
                                  "dataset '\(name)' is \(element), expected a floating-point dataset "
                                  + "(float32 or float64)")
            }
            let count = try checkedCount(name, shape, bytesPerElement: 4)
            let values = try H5.readFloats(dataset, count: count, path, name)
            return try tensor(name, shape, values)
        }
    }

    /// Reads an integer dataset (int8…int64, uint8…uint32 storage) as Int64 values.
    public func readInt64(_ name: String) throws -> (shape: [Int], values: [Int64]) {
        try HDF5Library.locked {
            let (dataset, shape, element) = try open(name)
            try requireInteger(name, element)
            let count = try checkedCount(name, shape, bytesPerElement: 8)
            return (shape, try H5.readInt64s(dataset, count: count, path, name))
        }
    }

    /// Reads an integer dataset as Int32 values; values outside Int32's range are an error.
    public func readInt32(_ name: String) throws -> (shape: [Int], values: [Int32]) {
        let (shape, wide) = try readInt64(name)
        var values = [Int32]()
        values.reserveCapacity(wide.count)
        for (index, value) in wide.enumerated() {
            guard let narrow = Int32(exactly: value) else {
                throw FormatError(.unsupported, file: url,
                                  "dataset '\(name)' element \(index) = \(value) does not fit in int32")
            }
            values.append(narrow)
        }
        return (shape, values)
    }

    /// Byte ranges of the file holding the raw data of contiguous root datasets, by dataset name.
    func contiguousDataRanges() throws -> [String: Range<Int>] {
        try HDF5Library.locked {
            var ranges: [String: Range<Int>] = [:]
            for name in try datasetNames() {
                let dataset = try H5.openDataset(file, name, path)
                if let range = H5.contiguousStorage(dataset), !range.isEmpty { ranges[name] = range }
            }
            return ranges
        }
    }

    // MARK: Attributes

    /// Names of the attributes of the root group, or of dataset/group `object`, sorted.
    public func attributeNames(of object: String? = nil) throws -> [String] {
        try HDF5Library.locked {
            if let object { try requireObject(object) }
            return try H5.attributeNames(file, object: object, path).sorted()
        }
    }

    /// A string attribute (fixed-length or variable-length, as h5py writes `bytes` and `str`).
    public func stringAttribute(_ name: String, of object: String? = nil) throws -> String {
        try HDF5Library.locked {
            let (attribute, element, label) = try openAttribute(name, of: object)
            guard case .string(let variable) = element else {
                throw FormatError(.unsupported, file: url, "\(label) is \(element), expected a string")
            }
            return try H5.readString(attribute, variableLength: variable, path, label)
        }
    }

    /// An integer attribute.
    public func intAttribute(_ name: String, of object: String? = nil) throws -> Int {
        try HDF5Library.locked {
            let (attribute, element, label) = try openAttribute(name, of: object)
            guard case .integer(let bytes, let signed) = element, bytes <= 8, signed || bytes < 8 else {
                throw FormatError(.unsupported, file: url, "\(label) is \(element), expected an integer")
            }
            return Int(try H5.readInt64(attribute, path, label))
        }
    }

    /// A floating-point attribute (integer attributes are converted).
    public func doubleAttribute(_ name: String, of object: String? = nil) throws -> Double {
        try HDF5Library.locked {
            let (attribute, element, label) = try openAttribute(name, of: object)
            switch element {
            case .float(let bytes) where [2, 4, 8].contains(bytes): break
            case .integer(let bytes, _) where bytes <= 8: break
            default: throw FormatError(.unsupported, file: url, "\(label) is \(element), expected a number")
            }
            return try H5.readDouble(attribute, path, label)
        }
    }

    /// Whether the root group (or `object`) has attribute `name`.
    public func hasAttribute(_ name: String, of object: String? = nil) -> Bool {
        HDF5Library.locked {
            if let object, !H5.linkExists(file, object) { return false }
            return H5.attributeExists(file, object: object, name)
        }
    }

    // MARK: Content digests

    /// The content digests recorded when the file was written (root attribute `content_digests`, see
    /// HDF5ContentDigests), or nil when it records none (files written before Arbiter 0.13 or by other tools).
    public func recordedContentDigests() throws -> HDF5ContentDigests.Record? {
        guard hasAttribute(HDF5ContentDigests.attributeName) else { return nil }
        return try HDF5ContentDigests.Record(try stringAttribute(HDF5ContentDigests.attributeName), file: url)
    }

    /// Checks every attribute (of the root group and of root datasets) and every root dataset's name, type and
    /// shape against `record`, reading no dataset values; throws `.inconsistent`, naming what changed.
    public func checkContentStructure(_ record: HDF5ContentDigests.Record) throws {
        try HDF5ContentDigests.compare(record, current: try currentContentEntries(readingValues: false),
                                       complete: true, file: url)
    }

    /// Reads dataset `name` and checks its values against `record`; throws `.inconsistent` naming it.
    public func checkContentDigest(ofDataset name: String, _ record: HDF5ContentDigests.Record) throws {
        try HDF5ContentDigests.compare(record, current: [try datasetEntry(name, readingValues: true)],
                                       complete: false, file: url)
    }

    /// Checks the whole file against its recorded digests, every value read. Returns false when the file records
    /// none; throws `.inconsistent`, naming what changed, when anything differs, `.malformed` for a bad record.
    public func checkContentDigests() throws -> Bool {
        guard let record = try recordedContentDigests() else { return false }
        try HDF5ContentDigests.compare(record, current: try currentContentEntries(readingValues: true),
                                       complete: true, file: url)
        return true
    }

    /// The content entries of the file as it is now (dataset values digested when `readingValues`).
    func currentContentEntries(readingValues: Bool = true) throws -> [HDF5ContentDigests.Entry] {
        var entries: [HDF5ContentDigests.Entry] = []
        let datasets = try datasetNames()
        for object in [String?.none] + datasets.map(Optional.some) {
            for name in try attributeNames(of: object)
            where !(object == nil && name == HDF5ContentDigests.attributeName) {
                entries.append(try attributeEntry(name, of: object))
            }
        }
        for name in datasets { entries.append(try datasetEntry(name, readingValues: readingValues)) }
        return entries
    }

    private func attributeEntry(_ name: String, of object: String?) throws -> HDF5ContentDigests.Entry {
        let (_, element, label) = try HDF5Library.locked { try openAttribute(name, of: object) }
        switch element {
        case .string:
            let value = try stringAttribute(name, of: object)
            return .attribute(owner: object, name: name, value: .string(value))
        case .integer(let bytes, let signed) where bytes <= 8 && (signed || bytes < 8):
            return .attribute(owner: object, name: name, value: .int(Int64(try intAttribute(name, of: object))))
        case .float(let bytes) where [2, 4, 8].contains(bytes):
            return .attribute(owner: object, name: name, value: .double(try doubleAttribute(name, of: object)))
        default:
            throw FormatError(.unsupported, file: url, "\(label) is \(element): its content cannot be checked "
                              + "against the recorded digests (strings, integers and floats can)")
        }
    }

    private func datasetEntry(_ name: String, readingValues: Bool) throws -> HDF5ContentDigests.Entry {
        try HDF5Library.locked {
            let (dataset, shape, element) = try open(name)
            guard readingValues else {
                return .dataset(name: name, type: element.description, shape: shape, digest: nil)
            }
            var hasher = SHA256()
            switch element {
            case .float(let bytes) where bytes == 2 || bytes == 4:
                let values = try H5.readFloats(dataset, count: try checkedCount(name, shape, bytesPerElement: 4),
                                               path, name)
                values.map { $0.bitPattern.littleEndian }.withUnsafeBytes { hasher.update($0) }
            case .float(8):
                let values = try H5.readDoubles(dataset, count: try checkedCount(name, shape, bytesPerElement: 8),
                                                path, name)
                values.map { $0.bitPattern.littleEndian }.withUnsafeBytes { hasher.update($0) }
            case .integer(let bytes, let signed) where bytes <= 8 && (signed || bytes < 8):
                let values = try H5.readInt64s(dataset, count: try checkedCount(name, shape, bytesPerElement: 8),
                                               path, name)
                values.map { $0.littleEndian }.withUnsafeBytes { hasher.update($0) }
            default:
                throw FormatError(.unsupported, file: url, "dataset '\(name)' is \(element): its content cannot be "
                                  + "checked against the recorded digests (floating-point and integer datasets can)")
            }
            return .dataset(name: name, type: element.description, shape: shape, digest: hasher.finalize())
        }
    }

    // MARK: Internals

    private func requireObject(_ name: String) throws {
        guard H5.linkExists(file, name) else {
            let available = (try? H5.rootLinkNames(file, path)) ?? []
            throw FormatError(.missing, file: url, "no dataset or group '\(name)'\(Self.listing(available))")
        }
    }

    private func open(_ name: String) throws -> (H5Handle, [Int], H5ElementType) {
        guard H5.isDataset(file, name) else {
            let available = (try? datasetNames()) ?? []
            throw FormatError(.missing, file: url, "no dataset '\(name)'\(Self.listing(available))")
        }
        let dataset = try H5.openDataset(file, name, path)
        let layout = try H5.datasetLayout(dataset, path, name)
        guard let shape = layout.shape else {
            throw FormatError(.malformed, file: url, "dataset '\(name)' has a null dataspace (no elements)")
        }
        // Contiguous raw data is stored uncompressed: it must lie inside the file (checked before allocating).
        if let storage = H5.contiguousStorage(dataset) {
            guard storage.upperBound <= fileSize else {
                throw FormatError(.truncated, file: url,
                                  "dataset '\(name)' claims bytes \(storage.lowerBound)..<\(storage.upperBound) of a "
                                  + "\(fileSize)-byte file")
            }
            let elementBytes: Int
            switch layout.element {
            case .float(let bytes), .integer(let bytes, _): elementBytes = bytes
            default: elementBytes = 0
            }
            let (count, overflow) = shape.reduce((1, false)) { acc, d in
                let r = acc.0.multipliedReportingOverflow(by: d); return (r.partialValue, acc.1 || r.overflow)
            }
            let stored = count.multipliedReportingOverflow(by: elementBytes)
            if elementBytes > 0, overflow || stored.overflow || stored.partialValue != storage.count {
                throw FormatError(.inconsistent, file: url,
                                  "dataset '\(name)': shape \(shape) of \(layout.element) does not match its "
                                  + "\(storage.count) stored bytes")
            }
        }
        return (dataset, shape, layout.element)
    }

    private func openAttribute(_ name: String, of object: String?) throws -> (H5Handle, H5ElementType, String) {
        let owner = object.map { "'\($0)'" } ?? "the root group"
        let label = "attribute '\(name)' of \(owner)"
        if let object { try requireObject(object) }
        guard H5.attributeExists(file, object: object, name) else {
            let available = (try? H5.attributeNames(file, object: object, path)) ?? []
            throw FormatError(.missing, file: url, "no \(label)\(Self.listing(available))")
        }
        let attribute = try H5.openAttribute(file, object: object, name, path)
        let layout = try H5.attributeLayout(attribute, path, label)
        guard let shape = layout.shape, shape.reduce(1, *) == 1 else {
            throw FormatError(.unsupported, file: url,
                              "\(label) has shape \(layout.shape.map { "\($0)" } ?? "null"), expected a single value")
        }
        return (attribute, layout.element, label)
    }

    private func requireInteger(_ name: String, _ element: H5ElementType) throws {
        guard case .integer(let bytes, let signed) = element, bytes <= 8, signed || bytes < 8 else {
            throw FormatError(.unsupported, file: url,
                              "dataset '\(name)' is \(element), expected an integer dataset (int32 or int64)")
        }
    }

    /// Element count of `shape`, refusing overflow and datasets over `HDF5Library.maximumBytes` in memory.
    private func checkedCount(_ name: String, _ shape: [Int], bytesPerElement: Int) throws -> Int {
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= HDF5Library.maximumBytes / bytesPerElement else {
                throw FormatError(.tooLarge, file: url,
                                  "dataset '\(name)' with shape \(shape) is over the "
                                  + "\(HDF5Library.maximumBytes)-byte limit")
            }
            count = product
        }
        return count
    }

    private func tensor(_ name: String, _ shape: [Int], _ values: [Float]) throws -> Tensor {
        do { return try Tensor(validatingShape: shape, scalars: values, source: name) } catch {
            throw FormatError(.inconsistent, file: url, "dataset '\(name)': \(error)")
        }
    }

    /// ", available: a, b, c, … (N in all)" for error messages.
    static func listing(_ names: [String], limit: Int = 8) -> String {
        guard !names.isEmpty else { return " (the file has none)" }
        let shown = names.prefix(limit).joined(separator: ", ")
        return "; available: \(shown)\(names.count > limit ? ", … (\(names.count) in all)" : "")"
    }
}
