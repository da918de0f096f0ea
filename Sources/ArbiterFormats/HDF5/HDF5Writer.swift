// Writing HDF5 files atomically: everything goes to a temporary file beside the destination, which replaces
// the destination only on commit(). Files are readable by h5py (strings are variable-length UTF-8, as h5py
// writes `str` attributes; numbers are little-endian IEEE floats and two's-complement integers).
import ArbiterTensor
import Foundation

/// Writes root-level datasets and scalar attributes; nothing appears under `url` until `commit()`.
public final class HDF5Writer {
    public let url: URL
    /// The temporary file being written (in the destination's folder, so that the final rename is atomic).
    public let temporaryURL: URL
    private var file: H5Handle?
    private var written: Set<String> = []
    /// What the file holds, for its content digests (HDF5ContentDigests), by owner and name.
    private var contents: [String: HDF5ContentDigests.Entry] = [:]
    /// The kind of Arbiter output this file is (marked by the root attribute `arbiter_output`), when the writer
    /// guards its destination: then an existing file is replaced only if Arbiter wrote it as the same kind.
    public let output: OutputKind?
    /// Whether `commit()` records the content digests.
    var recordsContentDigests: Bool

    /// Starts a new file that will replace `url` on `commit()`. With `output`, the destination is checked by
    /// `OutputSafety.checkFile` now and again on commit, and the file carries the marker attribute. With
    /// `contentDigests` (the default) `commit()` records them (HDF5ContentDigests; at most about 600 datasets):
    /// only exports Arbiter never reads back leave them out.
    public init(url: URL, output: OutputKind? = nil, contentDigests: Bool = true) throws {
        self.url = url
        self.output = output
        self.recordsContentDigests = contentDigests
        if let output { try OutputSafety.checkFile(url.path, kind: output, option: "output file") }
        let folder = url.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory),
              isDirectory.boolValue else {
            throw FormatError(.unreadable, file: url, "cannot write: folder \(folder.path) does not exist")
        }
        temporaryURL = folder.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
        file = try H5.create(temporaryURL.path)
        if let output { try setAttribute(OutputMarker.attributeName, output.rawValue) }
    }

    /// The descriptor HDF5 writes the temporary file through until commit (tests check it is close-on-exec).
    var descriptor: Int32? { file.map(H5.descriptor) }

    deinit {
        if file != nil {
            _ = file?.close()
            file = nil
            try? FileManager.default.removeItem(at: temporaryURL)
        }
    }

    /// Writes a float32 dataset.
    public func write(_ name: String, _ tensor: Tensor) throws {
        let file = try begin(name, shape: tensor.shape, count: tensor.count, bytesPerElement: 4)
        try tensor.scalars.withUnsafeBytes { bytes in
            try H5.writeDataset(file, name, type: .float32, shape: tensor.shape, bytes: bytes, url.path)
        }
        record(name, "float32", tensor.shape, tensor.scalars.map { $0.bitPattern.littleEndian })
        written.insert(name)
    }

    /// Writes an int64 dataset.
    public func write(_ name: String, int64 values: [Int64], shape: [Int]) throws {
        let file = try begin(name, shape: shape, count: values.count, bytesPerElement: 8)
        try values.withUnsafeBytes { bytes in
            try H5.writeDataset(file, name, type: .int64, shape: shape, bytes: bytes, url.path)
        }
        record(name, "int64", shape, values.map { $0.littleEndian })
        written.insert(name)
    }

    /// Writes a uint8 dataset of `bytes` (one dimension): an embedded document, e.g. JSON.
    public func write(_ name: String, bytes values: [UInt8]) throws {
        let file = try begin(name, shape: [values.count], count: values.count, bytesPerElement: 1)
        try values.withUnsafeBytes { bytes in
            try H5.writeDataset(file, name, type: .uint8, shape: [values.count], bytes: bytes, url.path)
        }
        record(name, "uint8", [values.count], values.map { Int64($0).littleEndian })
        written.insert(name)
    }

    /// Writes an int32 dataset.
    public func write(_ name: String, int32 values: [Int32], shape: [Int]) throws {
        let file = try begin(name, shape: shape, count: values.count, bytesPerElement: 4)
        try values.withUnsafeBytes { bytes in
            try H5.writeDataset(file, name, type: .int32, shape: shape, bytes: bytes, url.path)
        }
        record(name, "int32", shape, values.map { Int64($0).littleEndian })
        written.insert(name)
    }

    /// Sets a string attribute (variable-length UTF-8) on the root group or on a dataset already written.
    public func setAttribute(_ name: String, _ value: String, on object: String? = nil) throws {
        try setAttribute(name, .string(value), on: object)
    }

    /// Sets an integer attribute (int64) on the root group or on a dataset already written.
    public func setAttribute(_ name: String, _ value: Int, on object: String? = nil) throws {
        try setAttribute(name, .int(Int64(value)), on: object)
    }

    /// Sets a floating-point attribute (float64) on the root group or on a dataset already written.
    public func setAttribute(_ name: String, _ value: Double, on object: String? = nil) throws {
        try setAttribute(name, .double(value), on: object)
    }

    /// Records the content digests (root attribute `content_digests`, HDF5ContentDigests), closes the temporary
    /// file and renames it over `url`. The writer cannot be used afterwards.
    public func commit() throws {
        guard let file else { throw FormatError(.unexpected, file: url, "already committed") }
        if recordsContentDigests {
            do {
                let record = HDF5ContentDigests.record(Array(contents.values))
                guard record.utf8.count <= HDF5ContentDigests.maximumRecordBytes else {
                    throw FormatError(.tooLarge, file: url, "\(contents.count) datasets and attributes need a "
                                      + "\(record.utf8.count)-byte content digest record, over the "
                                      + "\(HDF5ContentDigests.maximumRecordBytes)-byte limit of an HDF5 attribute; "
                                      + "not written")
                }
                try H5.writeAttribute(file, object: nil, HDF5ContentDigests.attributeName, .string(record), url.path)
            } catch {
                self.file = nil  // the writer is spent; nothing stays behind
                _ = file.close()
                try? FileManager.default.removeItem(at: temporaryURL)
                throw error
            }
        }
        self.file = nil
        guard file.close() else {
            try? FileManager.default.removeItem(at: temporaryURL)
            throw FormatError(.unreadable, file: url, "cannot close the temporary HDF5 file \(temporaryURL.path)")
        }
        if let output {
            do { try OutputSafety.checkFile(url.path, kind: output, option: "output file") } catch {
                try? FileManager.default.removeItem(at: temporaryURL)
                throw error
            }
        }
        if rename(temporaryURL.path, url.path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporaryURL)
            throw FormatError(.unreadable, file: url, "cannot move the written file into place: \(reason)")
        }
    }

    // MARK: Internals

    private func setAttribute(_ name: String, _ value: H5.AttributeValue, on object: String?) throws {
        let file = try openFile()
        guard !name.isEmpty, !name.contains("\t"), !name.contains("\n") else {
            throw FormatError(.malformed, file: url,
                              "invalid attribute name '\(name)' (empty, or with a tab or newline)")
        }
        guard !(object == nil && name == HDF5ContentDigests.attributeName) else {
            throw FormatError(.unexpected, file: url, "attribute '\(name)' is reserved for the content digests")
        }
        if let object, !written.contains(object) {
            throw FormatError(.missing, file: url, "cannot set attribute '\(name)': no dataset '\(object)' written yet")
        }
        try H5.writeAttribute(file, object: object, name, value, url.path)
        let recorded: HDF5ContentDigests.Value
        switch value {
        case .string(let s): recorded = .string(s)
        case .int(let v): recorded = .int(v)
        case .double(let v): recorded = .double(v)
        }
        contents["attribute\t\(object ?? "/")\t\(name)"] = .attribute(owner: object, name: name, value: recorded)
    }

    /// Records a dataset's canonical little-endian elements for the content digests.
    private func record<Element>(_ name: String, _ type: String, _ shape: [Int], _ canonical: [Element]) {
        var hasher = SHA256()
        canonical.withUnsafeBytes { hasher.update($0) }
        contents["dataset\t\(name)"] = .dataset(name: name, type: type, shape: shape, digest: hasher.finalize())
    }

    private func openFile() throws -> H5Handle {
        guard let file else { throw FormatError(.unexpected, file: url, "writer already committed") }
        return file
    }

    /// Validates a dataset about to be written and returns the open file.
    private func begin(_ name: String, shape: [Int], count: Int, bytesPerElement: Int) throws -> H5Handle {
        let file = try openFile()
        guard !name.isEmpty, name != ".", !name.contains("/"), !name.contains("\t"), !name.contains("\n") else {
            throw FormatError(.malformed, file: url,
                              "invalid dataset name '\(name)' (empty, '.', or with a '/', tab or newline)")
        }
        guard !written.contains(name) else {
            throw FormatError(.unexpected, file: url, "dataset '\(name)' written twice")
        }
        guard shape.allSatisfy({ $0 >= 0 }), shape.count <= 32 else {
            throw FormatError(.malformed, file: url, "dataset '\(name)': invalid shape \(shape)")
        }
        var expected = 1
        for dimension in shape {
            let (product, overflow) = expected.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= HDF5Library.maximumBytes / bytesPerElement else {
                throw FormatError(.tooLarge, file: url,
                                  "dataset '\(name)' with shape \(shape) is over the "
                                  + "\(HDF5Library.maximumBytes)-byte limit")
            }
            expected = product
        }
        guard expected == count else {
            throw FormatError(.inconsistent, file: url,
                              "dataset '\(name)': shape \(shape) holds \(expected) elements, got \(count)")
        }
        return file
    }
}
