// Shared helpers of the HDF5 and golden-file tests: scratch folders, fixtures, error expectations.
import ArbiterTensor
import Foundation
import Testing
@testable import ArbiterFormats

/// A fresh folder under the system temporary directory, removed by `remove()`.
struct HDF5ScratchFolder {
    let url: URL

    init(_ label: String = "hdf5") throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("arbiter-\(label)-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    /// Names of every entry in the folder (hidden ones included).
    func contents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: url.path).sorted()
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

enum HDF5Fixtures {
    /// Folder of committed fixture files (tests locate them from the source tree, not as bundle resources).
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    /// Written by Fixtures/make_h5_fixture.py with h5py.
    static let h5py = folder.appendingPathComponent("h5py_fixture.h5")

    /// Whether every dataset and attribute of `url` reads through HDF5Reader (no content digest check).
    static func structureReads(_ url: URL) -> Bool {
        do {
            let reader = try HDF5Reader(url: url)
            for name in try reader.datasetNames() {
                if try reader.isFloatingPoint(name) { _ = try reader.readFloat32(name) } else { _ = try reader.readInt64(name) }
            }
            return true
        } catch { return false }
    }

    /// A deterministic tensor of `shape` (values distinct and exactly representable).
    static func ramp(_ shape: [Int], scale: Float = 0.25, offset: Float = -1) -> Tensor {
        let count = shape.reduce(1, *)
        return Tensor(shape: shape, scalars: (0..<count).map { Float($0) * scale + offset })
    }

    /// Writes a small valid golden file (T = 3 tokens, d = 4, H = 2, vocab 5) and returns its bytes.
    @discardableResult
    static func writeGolden(to url: URL, version: Int? = GoldenActivations.formatVersion, omitAttribute: String? = nil, omitDataset: String? = nil,
                            inputIDsShape: [Int] = [3], patternShape: [Int] = [2, 3, 3],
                            contentDigests: Bool = true) throws -> Data {
        let writer = try HDF5Writer(url: url, contentDigests: contentDigests)
        let attributes: [(String, Any)] = [
            ("format_version", version as Any), ("model_id", "tiny-llama"), ("model_type", "llama"),
            ("source", "Swift test"), ("seed", 7), ("case", "text-short"), ("prompt", "Hello"),
        ]
        for (name, value) in attributes where name != omitAttribute {
            switch value {
            case let text as String: try writer.setAttribute(name, text)
            case let number as Int: try writer.setAttribute(name, number)
            default: break  // nil version: no attribute
            }
        }
        let datasets: [(String, () throws -> Void)] = [
            ("input_ids", { try writer.write("input_ids", int64: Array(repeating: 5, count: inputIDsShape.reduce(1, *)),
                                             shape: inputIDsShape) }),
            ("hook_embed", { try writer.write("hook_embed", ramp([3, 4])) }),
            ("blocks.0.hook_resid_post", { try writer.write("blocks.0.hook_resid_post", ramp([3, 4], offset: 2)) }),
            ("blocks.0.attn.hook_pattern", { try writer.write("blocks.0.attn.hook_pattern", ramp(patternShape, scale: 0.125)) }),
            ("logits", { try writer.write("logits", ramp([3, 5], scale: 0.5)) }),
        ]
        for (name, write) in datasets where name != omitDataset { try write() }
        try writer.commit()
        return try Data(contentsOf: url)
    }
}

/// Expects `body` to throw a FormatError whose description names `file`; returns it for further checks.
@discardableResult
func expectHDF5Error<T>(naming file: URL, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                          _ body: () throws -> T) -> FormatError? {
    do {
        _ = try body()
        Issue.record("expected a FormatError naming \(file.lastPathComponent)\(comment.map { ": \($0)" } ?? "")",
                     sourceLocation: sourceLocation)
        return nil
    } catch let error as FormatError {
        #expect(error.description.contains(file.path), "\(error.description)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected a FormatError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
